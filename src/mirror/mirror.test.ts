/**
 * The mirror over a memory registry and an upstream client that counts what it is asked: a manifest
 * answered before its cache write is done, and HEADs of a blob not cached answered without asking the
 * upstream each time. (test/mirror*.test.ts run it against real upstreams over HTTP.)
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../storage/digest.js';
import { createMemoryDriver } from '../storage/driver/memory.js';
import { type Reference, parseRepoName } from '../storage/reference.js';
import { type CacheRegistry, type LocalRegistry, createRegistry } from '../storage/registry.js';
import { createBlobFetches } from './blob-fetches.js';
import { type MirrorRegistry, createMirror } from './mirror.js';
import type { UpstreamClient } from './upstream.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** An upstream holding `blobs` and one manifest tagged `latest` (`moveTag` changes it), counting each call. */
function fakeUpstream(blobs: Map<Digest, Buffer>, first: Buffer) {
  const calls = { getManifest: 0, headManifest: 0, getBlob: 0, headBlob: 0 };
  let manifest = first;
  const moveTag = (to: Buffer): void => {
    manifest = to;
  };
  const client: UpstreamClient = {
    name: 'fake',
    async headManifest() {
      calls.headManifest += 1;
      return { digest: digestOf(manifest), mediaType: OCI_MANIFEST };
    },
    async getManifest() {
      calls.getManifest += 1;
      return { digest: digestOf(manifest), mediaType: OCI_MANIFEST, content: manifest };
    },
    async getBlob(_repo, digest) {
      calls.getBlob += 1;
      const bytes = blobs.get(digest as Digest);
      if (bytes === undefined) throw new Error('no such blob');
      return { size: bytes.length, body: Readable.from([bytes]) };
    },
    async headBlob(_repo, digest) {
      calls.headBlob += 1;
      return blobs.get(digest as Digest)?.length;
    },
    tags: async () => ['latest'],
    referrers: async () => undefined,
  };
  return { client, calls, moveTag };
}

/** `local` whose manifest puts wait for `gate` before they start. */
function gatedPuts(local: LocalRegistry, gate: Promise<void>): CacheRegistry {
  return {
    repositories: (r) => local.repositories(r),
    repository(name) {
      const repo = local.repository(name);
      return {
        ...repo,
        manifests: {
          ...repo.manifests,
          put: async (ref: Reference, content: Buffer, type: string | undefined, o?: Parameters<typeof repo.manifests.put>[3]) => {
            await gate;
            return repo.manifests.put(ref, content, type, o);
          },
        },
      };
    },
  };
}

function setUp(o: { gate?: Promise<void>; revalidateMs?: number } = {}) {
  const local = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true });
  const layer = Buffer.from('layer bytes '.repeat(1000));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length }],
  }));
  const upstream = fakeUpstream(new Map([[digestOf(layer), layer], [digestOf(config), config]]), manifest);
  const fetches = createBlobFetches();
  const mirror: MirrorRegistry = createMirror({
    local: o.gate === undefined ? local : gatedPuts(local, o.gate),
    upstreams: [{ client: upstream.client, prefix: 'docker.io', revalidateMs: o.revalidateMs ?? 30_000 }],
    fetches,
    stored: { holds: async (d) => (await local.blobs.stat(d)) !== undefined, open: (d, range) => local.blobs.open(d, range) },
  });
  const repo = parseRepoName('docker.io/library/app');
  return { local, mirror, fetches, upstream, manifest, layer, repo };
}

describe('the mirror', () => {
  it('answers a fetched manifest before its cache write is done, and a GET by its digest meanwhile without asking again', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { local, mirror, upstream, manifest, repo } = setUp({ gate });
    const byTag = await mirror.repository(repo).manifests.get({ tag: 'latest' as never });
    expect(byTag.content.equals(manifest)).toBe(true);
    // The cache write has not even started, yet the client has its answer.
    await expect(local.repository(repo).manifests.get({ digest: digestOf(manifest) })).rejects.toThrow();
    const byDigest = await mirror.repository(repo).manifests.get({ digest: digestOf(manifest) });
    expect(byDigest.content.equals(manifest)).toBe(true);
    expect(upstream.calls.getManifest).toBe(1);
    release();
    await mirror.settled();
    expect((await local.repository(repo).manifests.get({ tag: 'latest' as never })).digest).toBe(digestOf(manifest));
  });

  it('counts a tag as revalidated from its fetch on: a pull by tag while the cache write is under way asks nothing upstream', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { mirror, upstream, manifest, repo } = setUp({ gate });
    for (let i = 0; i < 2; i++) expect((await mirror.repository(repo).manifests.get({ tag: 'latest' as never })).digest).toBe(digestOf(manifest));
    expect(upstream.calls).toMatchObject({ getManifest: 1, headManifest: 0 });
    release();
    await mirror.settled();
  });

  it('with revalidate 0, a tag that moved upstream while its first fetch is being written is fetched again, and its newer write lands last', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { local, mirror, upstream, manifest, repo } = setUp({ gate, revalidateMs: 0 });
    const latest = { tag: 'latest' as never };
    expect((await mirror.repository(repo).manifests.get(latest)).digest).toBe(digestOf(manifest));
    const moved = Buffer.from(JSON.stringify({ ...JSON.parse(manifest.toString()), annotations: { moved: 'yes' } }));
    upstream.moveTag(moved);
    expect((await mirror.repository(repo).manifests.get(latest)).digest).toBe(digestOf(moved));
    expect(upstream.calls).toMatchObject({ getManifest: 2, headManifest: 1 });
    release();
    await mirror.settled();
    expect((await local.repository(repo).manifests.get(latest)).digest).toBe(digestOf(moved));
  });

  it('answers repeated HEADs of a blob not cached from what the upstream told, within revalidate', async () => {
    const { mirror, upstream, layer, repo } = setUp();
    const head = () => mirror.repository(repo).blobs.serve(digestOf(layer), { method: 'HEAD' });
    for (let i = 0; i < 3; i++) expect((await head()).info.size).toBe(layer.length);
    expect(upstream.calls.headBlob).toBe(1);
    expect(upstream.calls.getBlob).toBe(0);
  });

  it('asks again once revalidate has passed (revalidate 0: every time)', async () => {
    const { mirror, upstream, layer, repo } = setUp({ revalidateMs: 0 });
    for (let i = 0; i < 2; i++) await mirror.repository(repo).blobs.serve(digestOf(layer), { method: 'HEAD' });
    expect(upstream.calls.headBlob).toBe(2);
  });

  it('answers a HEAD from the fetch of the blob in progress', async () => {
    const { mirror, fetches, upstream, layer, repo } = setUp({ revalidateMs: 0 });
    const get = await mirror.repository(repo).blobs.serve(digestOf(layer), { method: 'GET' });
    const head = await mirror.repository(repo).blobs.serve(digestOf(layer), { method: 'HEAD' });
    expect(head.info.size).toBe(layer.length);
    expect(upstream.calls.headBlob).toBe(0);
    if (get.kind === 'stream') get.stream?.resume();
    await fetches.close();
  });
});
