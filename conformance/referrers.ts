/**
 * Content Discovery, referrers half (spec "Listing Referrers", end-12a, end-12b): the OCI index of the
 * manifests whose `subject` is a digest, its Content-Type, the descriptors' artifactType (from the
 * manifest, else from an image manifest's config mediaType, else absent for an index) and annotations,
 * the `artifactType` filter with `OCI-Filters-Applied`, the empty index of a digest nothing refers to,
 * and 400 for a malformed digest. Pages linked with `Link: rel="next"` are followed.
 */
import type { CheckHandle, CheckRunner } from './check.js';
import type { Response } from './client.js';
import { type Image, type Manifest, MEDIA, imageOf, indexOf, neverPushedDigest } from './content.js';
import { expectEqual, expectHeader, expectMediaType, expectStatus, fail, jsonBody, summarize } from './expect.js';
import { type SuiteContext, nextLink, pushImage, pushManifest, referrersPath, uploadBlob } from './ops.js';

const SBOM = 'application/vnd.example.berth-conformance.sbom.v1+json';
const SIGNATURE = 'application/vnd.example.berth-conformance.signature.v1+json';
const MAX_PAGES = 100;

interface ReferrerDescriptor {
  readonly mediaType?: unknown;
  readonly digest?: unknown;
  readonly size?: unknown;
  readonly artifactType?: unknown;
  readonly annotations?: unknown;
}

interface Referrers {
  readonly subject: Image;
  readonly sbom: Image;
  readonly signature: Image;
  readonly untyped: Image;
  readonly index: Manifest;
  readonly indexChild: Image;
}

function referrersContent(): Referrers {
  const subject = imageOf('discovery/subject');
  const artifact = (label: string, artifactType: string | undefined, config: string): Image =>
    imageOf(`discovery/${label}`, {
      config,
      layers: 1,
      subject: subject.manifest,
      ...(artifactType !== undefined && { artifactType }),
      annotations: { 'org.example.berth-conformance.label': label },
    });
  const indexChild = imageOf('discovery/index-child', { layers: 1 });
  return {
    subject,
    sbom: artifact('sbom', SBOM, 'empty'),
    signature: artifact('signature', SIGNATURE, 'empty'),
    untyped: artifact('untyped', undefined, MEDIA.exampleConfig),
    index: indexOf([indexChild.manifest], { subject: subject.manifest, annotations: { 'org.example.berth-conformance.label': 'index' } }),
    indexChild,
  };
}

/** Runs the referrers checks of the Content Discovery workflow. */
export async function runReferrers(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const c = referrersContent();
  const setup = await runner.check('setup push a subject image and four manifests that refer to it', async () => {
    await pushImage(ctx, repo, 'discovery-subject', c.subject);
    await pushImage(ctx, repo, c.indexChild.manifest.digest, c.indexChild);
    for (const a of [c.sbom, c.signature, c.untyped]) {
      for (const b of a.blobs) await uploadBlob(ctx, repo, b);
      await pushManifest(ctx, repo, a.manifest.digest, a.manifest);
    }
    await pushManifest(ctx, repo, c.index.digest, c.index);
  });
  let listed: ReferrerDescriptor[] = [];
  const list = await runner.check('GET referrers answers 200 with Content-Type application/vnd.oci.image.index.v1+json', async () => {
    const res = await ctx.client.request('GET', referrersPath(repo, c.subject.manifest.digest));
    expectStatus(res, 200);
    expectMediaType(res, MEDIA.ociIndex);
    listed = await allReferrers(ctx, res);
  }, { needs: [setup] });
  await descriptorChecks(runner, c, () => listed, list);
  await otherQueries(ctx, runner, c, setup);
}

/** The descriptors of an OCI index answer, following `Link: rel="next"` pages. */
async function allReferrers(ctx: SuiteContext, first: Response): Promise<ReferrerDescriptor[]> {
  const out: ReferrerDescriptor[] = [];
  let res: Response | undefined = first;
  for (let pages = 0; res !== undefined && pages < MAX_PAGES; pages++) {
    expectStatus(res, 200);
    const doc = jsonBody(res) as { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown };
    if (doc.schemaVersion !== 2 || doc.mediaType !== MEDIA.ociIndex || !Array.isArray(doc.manifests)) {
      fail(`an OCI image index (schemaVersion 2, mediaType ${MEDIA.ociIndex}, manifests)`, summarize(res));
    }
    out.push(...(doc.manifests as ReferrerDescriptor[]));
    const next = nextLink(ctx, res);
    res = next === undefined ? undefined : await ctx.client.request('GET', next);
  }
  return out;
}

function entry(listed: readonly ReferrerDescriptor[], m: Manifest): ReferrerDescriptor {
  return listed.find((d) => d.digest === m.digest) ?? fail(`a descriptor of ${m.digest}`, `digests ${listed.map((d) => String(d.digest)).join(',')}`);
}

async function descriptorChecks(runner: CheckRunner, c: Referrers, listed: () => ReferrerDescriptor[], list: CheckHandle): Promise<void> {
  const opts = { needs: [list] };
  const label = (l: string): Record<string, string> => ({ 'org.example.berth-conformance.label': l });
  await runner.check('GET referrers lists every manifest whose subject is the digest, and only those', async () => {
    const want = [c.sbom.manifest, c.signature.manifest, c.untyped.manifest, c.index].map((m) => m.digest).sort();
    expectEqual('digests', want, listed().map((d) => d.digest).sort());
  }, opts);
  await runner.check('GET referrers descriptors carry mediaType, size, artifactType and annotations', async () => {
    for (const [img, type, l] of [[c.sbom, SBOM, 'sbom'], [c.signature, SIGNATURE, 'signature']] as const) {
      const d = entry(listed(), img.manifest);
      expectEqual(`descriptor of ${l}`, { mediaType: MEDIA.ociManifest, size: img.manifest.size, artifactType: type, annotations: label(l) },
        { mediaType: d.mediaType, size: d.size, artifactType: d.artifactType, annotations: d.annotations });
    }
  }, opts);
  await runner.check('GET referrers gives a manifest without artifactType its config mediaType as artifactType', async () => {
    expectEqual('artifactType', MEDIA.exampleConfig, entry(listed(), c.untyped.manifest).artifactType);
  }, opts);
  await runner.check('GET referrers gives an index without artifactType no artifactType, and its annotations', async () => {
    const d = entry(listed(), c.index);
    expectEqual('descriptor', { mediaType: MEDIA.ociIndex, artifactType: undefined, annotations: label('index') },
      { mediaType: d.mediaType, artifactType: d.artifactType, annotations: d.annotations });
  }, opts);
}

async function otherQueries(ctx: SuiteContext, runner: CheckRunner, c: Referrers, setup: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  await runner.check('GET referrers?artifactType= answers only matching descriptors with OCI-Filters-Applied artifactType', async () => {
    const res = await ctx.client.request('GET', `${referrersPath(repo, c.subject.manifest.digest)}?artifactType=${encodeURIComponent(SBOM)}`);
    expectStatus(res, 200);
    expectHeader(res, 'OCI-Filters-Applied', /(^|,)\s*artifactType\s*(,|$)/);
    expectEqual('digests', [c.sbom.manifest.digest], (await allReferrers(ctx, res)).map((d) => d.digest));
  }, { needs: [setup] });
  await runner.check('GET referrers of a digest nothing refers to answers 200 and an empty OCI index', async () => {
    const res = await ctx.client.request('GET', referrersPath(repo, neverPushedDigest('discovery/referrers')));
    expectStatus(res, 200);
    expectMediaType(res, MEDIA.ociIndex);
    expectEqual('manifests', [], await allReferrers(ctx, res));
  });
  await runner.check('GET referrers with a malformed digest answers 400', async () => {
    expectStatus(await ctx.client.request('GET', referrersPath(repo, 'sha256:not-a-digest')), 400);
  });
}
