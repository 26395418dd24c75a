/**
 * The Push workflow, manifest half (spec "Pushing Manifests", "Pushing Manifests with Subject", end-7):
 * PUT by tag and by digest (201, Location, Docker-Content-Digest, stored byte for byte), an image index
 * with its children, a manifest with a `subject` (OCI-Subject; accepted even when the subject is
 * absent), and the refusals: a body that does not match its digest, blobs or children the repository
 * lacks, a body that is not a manifest, an invalid tag, a manifest over 4 MiB.
 */
import type { CheckHandle, CheckRunner } from './check.js';
import type { Response } from './client.js';
import { type Image, type Manifest, MEDIA, imageOf, indexOf, manifestOf, neverPushedDigest, paddedManifest } from './content.js';
import { expectBody, expectError, expectHeader, expectStatus } from './expect.js';
import {
  type SuiteContext, getManifest, locationOf, manifestPath, pushImage, putManifest, uploadBlob,
} from './ops.js';

const TAG = 'push-image';
const ARTIFACT_TYPE = 'application/vnd.example.berth-conformance.push.v1+json';
const FOUR_MIB = 4 * 1024 * 1024;

/** Runs the manifest checks of the Push workflow. */
export async function runManifestPushes(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const image = imageOf('push/image');
  const byDigest = imageOf('push/by-digest');
  const params = imageOf('push/content-type-parameters', { layers: 1 });
  const children = [imageOf('push/child/0', { layers: 1 }), imageOf('push/child/1', { layers: 1 })];
  const artifact = imageOf('push/artifact', { config: 'empty', layers: 1, subject: image.manifest, artifactType: ARTIFACT_TYPE });
  const orphan = imageOf('push/orphan', { config: 'empty', layers: 1, subject: imageOf('push/absent-subject').manifest, artifactType: ARTIFACT_TYPE });
  const setup = await runner.check('setup push the blobs the manifests name', async () => {
    for (const img of [image, byDigest, params, ...children, artifact, orphan]) for (const b of img.blobs) await uploadBlob(ctx, repo, b);
  });
  const byTag = await pushByTag(ctx, runner, image, setup);
  await runner.check('PUT manifest by digest answers 201 with Location and Docker-Content-Digest', async () => {
    await expectCreated(ctx, await putManifest(ctx, repo, byDigest.manifest.digest, byDigest.manifest), byDigest.manifest);
  }, { needs: [setup] });
  await runner.check('PUT manifest with parameters on its Content-Type answers 201, and GET answers the type without them', async () => {
    const m = params.manifest;
    const res = await ctx.client.request('PUT', manifestPath(repo, 'push-params'), { headers: { 'Content-Type': `${m.mediaType}; charset=utf-8` }, body: m.bytes });
    expectStatus(res, 201);
    ctx.pushed.manifest(repo, m.digest);
    expectHeader(await getManifest(ctx, 'GET', repo, 'push-params'), 'Content-Type', m.mediaType);
  }, { needs: [setup] });
  await refusals(ctx, runner, image, setup);
  await indexes(ctx, runner, children, setup);
  await subjects(ctx, runner, { artifact, orphan, image }, [setup, byTag]);
}

/** 201 with a Location and `Docker-Content-Digest: <digest of the body>`. */
async function expectCreated(ctx: SuiteContext, res: Response, m: Manifest): Promise<void> {
  expectStatus(res, 201);
  locationOf(ctx, res);
  expectHeader(res, 'Docker-Content-Digest', m.digest);
}

async function pushByTag(ctx: SuiteContext, runner: CheckRunner, image: Image, setup: CheckHandle): Promise<CheckHandle> {
  const repo = ctx.settings.namespace;
  const put = await runner.check('PUT manifest by tag answers 201 with Location and Docker-Content-Digest', async () => {
    await expectCreated(ctx, await putManifest(ctx, repo, TAG, image.manifest), image.manifest);
  }, { needs: [setup] });
  await runner.check('the manifest pushed by tag reads back byte for byte, by tag and by digest', async () => {
    for (const ref of [TAG, image.manifest.digest]) {
      const res = await getManifest(ctx, 'GET', repo, ref);
      expectStatus(res, 200);
      expectBody(res, image.manifest.bytes);
    }
  }, { needs: [put] });
  return put;
}

async function refusals(ctx: SuiteContext, runner: CheckRunner, image: Image, setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  const doc = JSON.parse(image.manifest.bytes.toString('utf8')) as Record<string, unknown>;
  const other = manifestOf({ ...doc, annotations: { 'org.example.berth-conformance': 'not the digest in the URL' } }, MEDIA.ociManifest);
  const cases: [string, () => Promise<void>, CheckHandle[]][] = [
    ['PUT manifest by digest with a body of another digest answers 400 DIGEST_INVALID', async () => {
      expectError(await putManifest(ctx, repo, neverPushedDigest('push/manifest'), other), [400], ['DIGEST_INVALID']);
    }, [setup]],
    ['PUT manifest naming blobs the repository lacks answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
      expectError(await putManifest(ctx, repo, 'push-missing-blobs', imageOf('push/missing-blobs').manifest), [400], ['MANIFEST_BLOB_UNKNOWN']);
    }, []],
    ['PUT manifest that is not JSON answers 400 MANIFEST_INVALID', async () => {
      const junk = { ...manifestOf({}, MEDIA.ociManifest), bytes: Buffer.from('{"schemaVersion": 2, this is not JSON') };
      expectError(await putManifest(ctx, repo, 'push-invalid', junk), [400], ['MANIFEST_INVALID']);
    }, []],
    ['PUT manifest with an invalid tag answers 400 or 404 TAG_INVALID', async () => {
      expectError(await putManifest(ctx, repo, '-invalid-tag', image.manifest), [400, 404], ['TAG_INVALID']);
    }, [setup]],
    ['PUT manifest over 4 MiB answers 413', async () => {
      const res = await putManifest(ctx, repo, 'push-too-large', paddedManifest(image, FOUR_MIB));
      expectStatus(res, 413);
    }, [setup]],
  ];
  for (const [name, body, needs] of cases) await runner.check(name, body, { needs });
}

async function indexes(ctx: SuiteContext, runner: CheckRunner, children: readonly Image[], setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  const index = indexOf(children.map((c) => c.manifest));
  await runner.check('PUT image index whose children are in the repository answers 201 with Location and Docker-Content-Digest', async () => {
    for (const child of children) await pushImage(ctx, repo, child.manifest.digest, child);
    await expectCreated(ctx, await putManifest(ctx, repo, 'push-index', index), index);
  }, { needs: [setup] });
  await runner.check('PUT image index naming a child the repository lacks answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const dangling = indexOf([imageOf('push/absent-child').manifest]);
    expectError(await putManifest(ctx, repo, 'push-dangling-index', dangling), [400], ['MANIFEST_BLOB_UNKNOWN']);
  });
}

async function subjects(
  ctx: SuiteContext,
  runner: CheckRunner,
  content: { artifact: Image; orphan: Image; image: Image },
  needs: CheckHandle[],
): Promise<void> {
  const repo = ctx.settings.namespace;
  const { artifact, orphan, image } = content;
  await runner.check('PUT manifest with a subject answers 201 and OCI-Subject with the subject digest', async () => {
    const res = await putManifest(ctx, repo, artifact.manifest.digest, artifact.manifest);
    expectStatus(res, 201);
    expectHeader(res, 'OCI-Subject', image.manifest.digest);
  }, { needs });
  await runner.check('PUT manifest whose subject is not in the repository answers 201', async () => {
    const res = await putManifest(ctx, repo, orphan.manifest.digest, orphan.manifest);
    expectStatus(res, 201);
    expectStatus(await getManifest(ctx, 'HEAD', repo, orphan.manifest.digest), 200);
  }, { needs: needs.slice(0, 1) });
}
