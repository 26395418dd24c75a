/**
 * The Pull workflow (spec "Pull", end-1, end-2, end-3): `GET /v2/`, manifests by tag and by digest
 * (GET and HEAD, with Content-Type, Docker-Content-Digest and Content-Length), an image index and its
 * children, blobs (GET, HEAD, Range), and the 404s and error codes of unknown or invalid references.
 *
 * Its set-up pushes the content it pulls (POST then PUT blobs, PUT manifests), under its own labels
 * and tags, so it can run alone (`--only pull`) against an empty repository.
 */
import type { CheckHandle, CheckRunner } from './check.js';
import type { Response } from './client.js';
import { type Image, type Manifest, MEDIA, digestOf, imageOf, indexOf, neverPushedDigest, seededBlob } from './content.js';
import {
  expectBody, expectError, expectHeader, expectMediaType, expectNoBody, expectStatus, fail,
} from './expect.js';
import { type SuiteContext, getBlob, getManifest, pushImage, pushManifest, uploadBlob } from './ops.js';

const TAG = 'pull-image';
const INDEX_TAG = 'pull-index';

/** Runs the Pull workflow's checks. */
export async function runPull(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  await runner.check('GET /v2/ answers 200', async () => {
    expectStatus(await ctx.client.request('GET', '/v2/'), 200);
  });
  await runner.check(
    'GET /v2/ without credentials answers 401 UNAUTHORIZED with WWW-Authenticate',
    async () => {
      const res = await ctx.client.request('GET', '/v2/', { anonymous: true });
      expectError(res, [401], ['UNAUTHORIZED']);
      expectHeader(res, 'WWW-Authenticate');
    },
    { skip: ctx.settings.credentials === undefined ? 'no credentials given, so the registry is taken to need none' : undefined },
  );
  const image = imageOf('pull/image');
  const children = [imageOf('pull/child/0', { layers: 1 }), imageOf('pull/child/1', { layers: 1 })];
  const index = indexOf(children.map((c) => c.manifest));
  const repo = ctx.settings.namespace;
  const other = seededBlob('pull/other', 1000);
  const setup = await runner.check('setup push an image, two platform images and their index, and a blob to the other repository', async () => {
    await pushImage(ctx, repo, TAG, image);
    for (const child of children) await pushImage(ctx, repo, child.manifest.digest, child);
    await pushManifest(ctx, repo, INDEX_TAG, index);
    await uploadBlob(ctx, ctx.settings.otherNamespace, other);
  });
  await manifestChecks(ctx, runner, image, setup);
  await isolationChecks(ctx, runner, image, setup);
  await indexChecks(ctx, runner, index, setup);
  await blobChecks(ctx, runner, image, setup);
  await unknownChecks(ctx, runner);
}

async function manifestChecks(ctx: SuiteContext, runner: CheckRunner, image: Image, setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  const m = image.manifest;
  for (const [kind, ref] of [['tag', TAG], ['digest', m.digest]] as const) {
    const opts = { needs: [setup] };
    const got = await runner.check(`GET manifest by ${kind} answers 200 with the pushed bytes`, async () => {
      const res = await getManifest(ctx, 'GET', repo, ref);
      expectStatus(res, 200);
      expectBody(res, m.bytes);
    }, opts);
    const after = { needs: [got] };
    await runner.check(`GET manifest by ${kind} answers the pushed Content-Type, without parameters`, async () => {
      expectHeader(await getManifest(ctx, 'GET', repo, ref), 'Content-Type', m.mediaType);
    }, after);
    await runner.check(`GET manifest by ${kind} answers Docker-Content-Digest and Content-Length of the body`, async () => {
      const res = await getManifest(ctx, 'GET', repo, ref);
      expectHeader(res, 'Docker-Content-Digest', m.digest);
      expectHeader(res, 'Content-Length', String(m.size));
    }, after);
    await runner.check(`HEAD manifest by ${kind} answers 200 with Content-Type, Content-Length and Docker-Content-Digest, no body`, async () => {
      const res = await getManifest(ctx, 'HEAD', repo, ref);
      expectStatus(res, 200);
      expectMediaType(res, m.mediaType);
      expectHeader(res, 'Content-Length', String(m.size));
      expectHeader(res, 'Docker-Content-Digest', m.digest);
      expectNoBody(res);
    }, opts);
  }
}

/** Content is served only by the repositories that hold it, even though the registry stores it once. */
async function isolationChecks(ctx: SuiteContext, runner: CheckRunner, image: Image, setup: CheckHandle): Promise<void> {
  const other = ctx.settings.otherNamespace;
  const layer = image.layers[0]?.digest ?? image.config.digest;
  await runner.check('GET blob that only another repository holds answers 404 BLOB_UNKNOWN', async () => {
    expectError(await getBlob(ctx, 'GET', other, layer), [404], ['BLOB_UNKNOWN']);
  }, { needs: [setup] });
  await runner.check('GET manifest that only another repository holds answers 404 MANIFEST_UNKNOWN', async () => {
    expectError(await getManifest(ctx, 'GET', other, image.manifest.digest), [404], ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);
  }, { needs: [setup] });
}

async function indexChecks(ctx: SuiteContext, runner: CheckRunner, index: Manifest, setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  await runner.check('GET image index by tag answers 200, the pushed bytes and the OCI index Content-Type', async () => {
    const res = await getManifest(ctx, 'GET', repo, INDEX_TAG);
    expectStatus(res, 200);
    expectBody(res, index.bytes);
    expectMediaType(res, MEDIA.ociIndex);
  }, { needs: [setup] });
  await runner.check('GET each child manifest of the index by digest answers 200 with its bytes', async () => {
    const doc = JSON.parse(index.bytes.toString('utf8')) as { manifests: { digest: string }[] };
    for (const child of doc.manifests) {
      const res = await getManifest(ctx, 'GET', repo, child.digest);
      expectStatus(res, 200);
      if (digestOf(res.body) !== child.digest) fail(`a body of digest ${child.digest}`, digestOf(res.body));
    }
  }, { needs: [setup] });
}

async function blobChecks(ctx: SuiteContext, runner: CheckRunner, image: Image, setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  const layer = image.layers[0];
  if (layer === undefined) throw new Error('the pull image has no layer');
  const opts = { needs: [setup] };
  await runner.check('GET blob answers 200 with the pushed bytes and their Docker-Content-Digest', async () => {
    const res = await getBlob(ctx, 'GET', repo, layer.digest);
    expectStatus(res, 200);
    expectBody(res, layer.bytes);
    expectHeader(res, 'Docker-Content-Digest', layer.digest);
  }, opts);
  await runner.check('HEAD blob answers 200 with Content-Length and Docker-Content-Digest, no body', async () => {
    const res = await getBlob(ctx, 'HEAD', repo, layer.digest);
    expectStatus(res, 200);
    expectHeader(res, 'Content-Length', String(layer.size));
    expectHeader(res, 'Docker-Content-Digest', layer.digest);
    expectNoBody(res);
  }, opts);
  await runner.check('GET blob with Range bytes=10-99 answers 206 with Content-Range and those bytes', async () => {
    const res = await getBlob(ctx, 'GET', repo, layer.digest, { Range: 'bytes=10-99' });
    expectStatus(res, 206);
    expectHeader(res, 'Content-Range', `bytes 10-99/${layer.size}`);
    expectBody(res, layer.bytes.subarray(10, 100));
  }, opts);
  await runner.check('GET blob with a Range past its end answers 416', async () => {
    const res = await getBlob(ctx, 'GET', repo, layer.digest, { Range: `bytes=${layer.size + 10}-${layer.size + 20}` });
    expectStatus(res, 416);
  }, opts);
}

/** Unknown references are 404 with their code; invalid ones are refused with theirs. */
async function unknownChecks(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const unknown = neverPushedDigest('pull');
  const cases: [string, () => Promise<Response>, number[], string[]][] = [
    ['GET manifest of an unknown tag answers 404 MANIFEST_UNKNOWN', () => getManifest(ctx, 'GET', repo, 'pull-never-pushed'), [404], ['MANIFEST_UNKNOWN']],
    ['GET manifest of an unknown digest answers 404 MANIFEST_UNKNOWN', () => getManifest(ctx, 'GET', repo, unknown), [404], ['MANIFEST_UNKNOWN']],
    ['HEAD manifest of an unknown digest answers 404', () => getManifest(ctx, 'HEAD', repo, unknown), [404], []],
    [
      'GET manifest in a repository that does not exist answers 404 NAME_UNKNOWN or MANIFEST_UNKNOWN',
      () => getManifest(ctx, 'GET', `${repo}/never-pushed`, TAG),
      [404],
      ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN'],
    ],
    ['GET unknown blob answers 404 BLOB_UNKNOWN', () => getBlob(ctx, 'GET', repo, unknown), [404], ['BLOB_UNKNOWN']],
    ['HEAD unknown blob answers 404', () => getBlob(ctx, 'HEAD', repo, unknown), [404], []],
    [
      'GET blob with a malformed digest answers 400 or 404 DIGEST_INVALID',
      () => getBlob(ctx, 'GET', repo, `sha256:${'0123456789abcdef'.repeat(2)}`),
      [400, 404],
      ['DIGEST_INVALID'],
    ],
    [
      'GET manifest of an invalid repository name answers 400 or 404 NAME_INVALID',
      () => getManifest(ctx, 'GET', `${repo}/UPPERCASE`, TAG),
      [400, 404],
      ['NAME_INVALID'],
    ],
  ];
  for (const [name, send, statuses, codes] of cases) {
    await runner.check(name, async () => expectError(await send(), statuses, codes));
  }
}

