/**
 * skopeo against Berth, offline, with images made in this test (test/helpers/images.ts): a
 * multi-platform OCI index goes to Berth with `copy --all` and back into a new OCI layout with every
 * digest and byte unchanged; `inspect --raw` returns the pushed bytes; `inspect` reports digest,
 * platform, layers and labels; `list-tags` gives exactly the tags pushed; `delete` removes a manifest,
 * after which `inspect` fails with "manifest unknown" and the other tags remain, and deleting through
 * a tag removes every tag naming that manifest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import {
  type BuiltImage, multiPlatformImage, readOciLayout, singlePlatformImage, writeImageLayout, writeIndexLayout,
} from './helpers/images.js';
import { type Blob, MT, errorCode, raw } from './helpers/oci.js';
import {
  type ContainersStore, type RunResult, containersStore, describeWithTool, logToolVersions, run, runResult, toolAvailable,
} from './helpers/tools.js';

interface IndexDoc {
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; platform?: { architecture: string; os: string } }[];
}

interface InspectDoc {
  Name: string;
  Digest: string;
  RepoTags: string[];
  Architecture: string;
  Os: string;
  Layers: string[];
  Labels: Record<string, string> | null;
}

describeWithTool('skopeo', toolAvailable('skopeo'), 'skopeo copy, inspect, list-tags and delete against Berth', () => {
  const multi = multiPlatformImage('skopeo-multi');
  const single = singlePlatformImage('skopeo-single');
  const other = singlePlatformImage('skopeo-other');
  let berth: TestBerth;
  let host = '';
  let work = '';
  let store: ContainersStore;

  const skopeo = (args: readonly string[]): Promise<RunResult> => run('skopeo', args, { env: store.env, timeoutMs: 120_000 });
  const skopeoResult = (args: readonly string[]): Promise<RunResult> => runResult('skopeo', args, { env: store.env, timeoutMs: 60_000 });
  const ref = (repoAndTag: string): string => `docker://${host}/${repoAndTag}`;

  async function pushImage(img: BuiltImage, name: string, repoAndTag: string): Promise<void> {
    const layout = join(work, name);
    await writeImageLayout(layout, 'v1', img);
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, ref(repoAndTag)]);
  }

  async function inspect(repoAndTag: string, extra: readonly string[] = []): Promise<InspectDoc> {
    const out = await skopeo(['inspect', '--tls-verify=false', ...extra, ref(repoAndTag)]);
    return JSON.parse(out.stdout) as InspectDoc;
  }

  async function listTags(repo: string): Promise<{ Repository: string; Tags: string[] }> {
    const out = await skopeo(['list-tags', '--tls-verify=false', ref(repo)]);
    return JSON.parse(out.stdout) as { Repository: string; Tags: string[] };
  }

  async function berthBytes(repo: string, reference: string, mediaType: string): Promise<Buffer> {
    const res = await raw(berth.url, 'GET', `/v2/${repo}/manifests/${reference}`, { headers: { Accept: mediaType } });
    expect(res.status, res.body.toString()).toBe(200);
    return res.body;
  }

  beforeAll(async () => {
    berth = await startBerth();
    host = new URL(berth.url).host;
    work = await mkdtemp(join(tmpdir(), 'berth-clients-skopeo-'));
    store = await containersStore(join(work, 'containers'));
    logToolVersions(['skopeo']);
    await pushImage(single, 'single', 'skopeo/single:v1');
  }, 120_000);

  afterAll(async () => {
    await berth?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('copy --all of a multi-platform OCI index to Berth and back into a new OCI layout: the index and every child, config and layer keep their digests and bytes', async () => {
    const src = join(work, 'multi-src');
    const dst = join(work, 'multi-dst');
    await writeIndexLayout(src, 'v1', multi);
    await skopeo(['copy', '--all', '--dest-tls-verify=false', `oci:${src}:v1`, ref('skopeo/multi:v1')]);
    expect(await berthBytes('skopeo/multi', 'v1', MT.ociIndex)).toEqual(multi.index.bytes);

    await skopeo(['copy', '--all', '--src-tls-verify=false', ref('skopeo/multi:v1'), `oci:${dst}:v1`]);
    const source = await readOciLayout(src);
    const copy = await readOciLayout(dst);
    const top = copy.resolve('v1');
    expect(top.digest).toBe(source.resolve('v1').digest);
    expect(top.digest).toBe(multi.index.digest);
    expect(top.mediaType).toBe(MT.ociIndex);
    const index = await copy.blob(top.digest);
    expect(index).toEqual(multi.index.bytes);

    const children = (JSON.parse(index.toString('utf8')) as IndexDoc).manifests;
    expect(children.map((c) => [c.digest, c.platform?.architecture])).toEqual([
      [multi.amd64.manifest.digest, 'amd64'],
      [multi.arm64.manifest.digest, 'arm64'],
    ]);
    // copy.blob() reads blobs/sha256/<hex> and checks that its sha256 is <hex>, so a blob is present
    // and byte-identical when it resolves (toEqual on megabyte Buffers would take seconds).
    for (const img of [multi.amd64, multi.arm64]) {
      for (const b of [img.manifest, img.config, ...img.layers.map((l) => l.gzip)]) {
        expect((await copy.blob(b.digest)).length, b.digest).toBe(b.size);
      }
    }
    expect(berth.errors).toEqual([]);
  }, 240_000);

  it('inspect --raw answers the bytes pushed, for the index (by tag) and each platform manifest and the single image (by digest)', async () => {
    const rawOf = async (reference: string): Promise<Buffer> => {
      const res = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ref(reference)], { env: store.env });
      return Buffer.from(res.stdout, 'utf8');
    };
    const cases: [string, Blob][] = [
      ['skopeo/multi:v1', multi.index],
      [`skopeo/multi@${multi.amd64.manifest.digest}`, multi.amd64.manifest],
      [`skopeo/multi@${multi.arm64.manifest.digest}`, multi.arm64.manifest],
      ['skopeo/single:v1', single.manifest],
      [`skopeo/single@${single.manifest.digest}`, single.manifest],
    ];
    for (const [reference, pushed] of cases) expect(await rawOf(reference), reference).toEqual(pushed.bytes);
  }, 120_000);

  it('inspect reports the digest, platform, layers and labels of a single image, and of the arm64 image of the index', async () => {
    const one = await inspect('skopeo/single:v1');
    expect(one.Name).toBe(`${host}/skopeo/single`);
    expect(one.Digest).toBe(single.manifest.digest);
    expect(one.RepoTags).toEqual(['v1']);
    expect([one.Architecture, one.Os]).toEqual(['amd64', 'linux']);
    expect(one.Layers).toEqual(single.layers.map((l) => l.gzip.digest));
    expect(one.Labels).toEqual({ 'org.example.berth.test': 'skopeo-single' });

    // For an index, Digest is the index's; the rest describes the platform chosen.
    const arm = await inspect('skopeo/multi:v1', ['--override-arch', 'arm64']);
    expect(arm.Digest).toBe(multi.index.digest);
    expect([arm.Architecture, arm.Os]).toEqual(['arm64', 'linux']);
    expect(arm.Layers).toEqual(multi.arm64.layers.map((l) => l.gzip.digest));
    expect(arm.Layers[0]).toBe(multi.base.gzip.digest);
  }, 120_000);

  it('list-tags gives exactly the tags pushed', async () => {
    for (const tag of ['v1', 'v2', 'latest', '1.0.0-rc_1']) await pushImage(single, `tags-${tag}`, `skopeo/tags:${tag}`);
    await pushImage(other, 'tags-other', 'skopeo/tags:other');
    const listed = await listTags('skopeo/tags');
    expect(listed.Repository).toBe(`${host}/skopeo/tags`);
    expect([...listed.Tags].sort()).toEqual(['1.0.0-rc_1', 'latest', 'other', 'v1', 'v2']);
    expect((await listTags('skopeo/multi')).Tags).toEqual(['v1']);
  }, 240_000);

  it('delete removes the manifest: inspect by tag and by digest then fails with "manifest unknown", and the other tags remain', async () => {
    expect((await inspect('skopeo/tags:other')).Digest).toBe(other.manifest.digest);
    await skopeo(['delete', '--tls-verify=false', ref('skopeo/tags:other')]);

    for (const reference of ['skopeo/tags:other', `skopeo/tags@${other.manifest.digest}`]) {
      const res = await skopeoResult(['inspect', '--tls-verify=false', ref(reference)]);
      expect(res.code, reference).not.toBe(0);
      expect(res.stderr, reference).toContain('manifest unknown');
    }
    const gone = await raw(berth.url, 'GET', `/v2/skopeo/tags/manifests/${other.manifest.digest}`, { headers: { Accept: MT.ociManifest } });
    expect([gone.status, errorCode(gone)]).toEqual([404, 'MANIFEST_UNKNOWN']);

    expect([...(await listTags('skopeo/tags')).Tags].sort()).toEqual(['1.0.0-rc_1', 'latest', 'v1', 'v2']);
    expect((await inspect('skopeo/tags:v2')).Digest).toBe(single.manifest.digest);
    expect(berth.errors).toEqual([]);
  }, 120_000);

  it('delete through one tag removes the manifest for every tag that names it (as registry:2 does); list-tags then gives none', async () => {
    await skopeo(['delete', '--tls-verify=false', ref('skopeo/tags:v2')]);
    for (const tag of ['1.0.0-rc_1', 'latest', 'v1', 'v2']) {
      const res = await skopeoResult(['inspect', '--tls-verify=false', ref(`skopeo/tags:${tag}`)]);
      expect(res.code, tag).not.toBe(0);
      expect(res.stderr, tag).toContain('manifest unknown');
    }
    expect((await listTags('skopeo/tags')).Tags ?? []).toEqual([]);
    // Other repositories that link the same blobs are untouched.
    expect((await inspect('skopeo/single:v1')).Digest).toBe(single.manifest.digest);
    expect(berth.errors).toEqual([]);
  }, 120_000);
});
