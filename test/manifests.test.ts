/**
 * Manifests, tags, catalog and referrers against a real listening Berth: every manifest kind, the
 * checks on PUT (each refusal leaves the disk as it was), deletion, and the listing APIs.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, repoDir as repoPath, revisionLink as revisionPath, v2 } from './helpers/layout.js';
import {
  MT, artifactManifest, blob, descriptor, emptyConfig, errorCode, makeImage, manifestBlob, onLinux, platformIndex, pushBlob, pushImage,
  putManifest, raw,
} from './helpers/oci.js';

let berth: TestBerth;
beforeAll(async () => {
  berth = await startBerth();
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

const repoDir = (repo: string): string => join(v2(berth.root), repoPath(repo));
const revisionLink = (repo: string, digest: string): string => join(v2(berth.root), revisionPath(repo, digest));

describe('push and pull each manifest kind', () => {
  it('Docker schema 2 by tag: GET and HEAD by tag and digest with the right headers', async () => {
    const image = makeImage(1, { docker: true });
    const put = await pushImage(berth.url, 'kinds/docker', 'v1', image);
    expect(put.header('Docker-Content-Digest')).toBe(image.manifest.digest);
    expect(put.header('Location')).toMatch(new RegExp(`/v2/kinds/docker/manifests/${image.manifest.digest}$`));
    for (const ref of ['v1', image.manifest.digest]) {
      const get = await raw(berth.url, 'GET', `/v2/kinds/docker/manifests/${ref}`, { headers: { Accept: MT.dockerManifest } });
      expect(get.status).toBe(200);
      expect(get.body).toEqual(image.manifest.bytes);
      expect(get.header('Content-Type')).toBe(MT.dockerManifest);
      expect(get.header('Docker-Content-Digest')).toBe(image.manifest.digest);
      expect(get.header('Content-Length')).toBe(String(image.manifest.size));
      expect(get.header('ETag')).toBe(`"${image.manifest.digest}"`);
      const head = await raw(berth.url, 'HEAD', `/v2/kinds/docker/manifests/${ref}`);
      expect(head.status).toBe(200);
      expect(head.header('Content-Length')).toBe(String(image.manifest.size));
      expect(head.body.length).toBe(0);
    }
    const cached = await raw(berth.url, 'GET', '/v2/kinds/docker/manifests/v1', {
      headers: { 'If-None-Match': `"${image.manifest.digest}"` },
    });
    expect(cached.status).toBe(304);
  });

  it('OCI image index of two platform manifests, and a Docker manifest list', async () => {
    const amd = makeImage(2);
    const arm = makeImage(3);
    for (const img of [amd, arm]) await pushImage(berth.url, 'kinds/multi', img.manifest.digest, img);
    const platforms = [onLinux('amd64', amd), onLinux('arm64', arm)];
    const index = platformIndex(MT.ociIndex, platforms);
    expect((await putManifest(berth.url, 'kinds/multi', 'latest', index, MT.ociIndex)).status).toBe(201);
    const get = await raw(berth.url, 'GET', '/v2/kinds/multi/manifests/latest');
    expect(get.header('Content-Type')).toBe(MT.ociIndex);
    expect(get.body).toEqual(index.bytes);
    const list = platformIndex(MT.dockerList, platforms);
    expect((await putManifest(berth.url, 'kinds/multi', 'list', list, MT.dockerList)).status).toBe(201);
    expect((await raw(berth.url, 'GET', '/v2/kinds/multi/manifests/list')).header('Content-Type')).toBe(MT.dockerList);
  });

  it('an OCI manifest without a mediaType field is served as an OCI manifest', async () => {
    const img = makeImage(4);
    for (const b of [img.config, ...img.layers]) await pushBlob(berth.url, 'kinds/bare', b);
    const doc = JSON.parse(img.manifest.bytes.toString()) as Record<string, unknown>;
    delete doc['mediaType'];
    const bare = manifestBlob(doc);
    expect((await putManifest(berth.url, 'kinds/bare', 'v1', bare, MT.ociManifest)).status).toBe(201);
    expect((await raw(berth.url, 'GET', '/v2/kinds/bare/manifests/v1')).header('Content-Type')).toBe(MT.ociManifest);
  });

  it('PUT by digest stores without a tag; a body that does not match the digest is DIGEST_INVALID', async () => {
    const img = makeImage(5);
    await pushImage(berth.url, 'kinds/bydigest', img.manifest.digest, img);
    expect(existsSync(join(repoDir('kinds/bydigest'), '_manifests/tags'))).toBe(false);
    const other = makeImage(6);
    for (const b of [other.config, ...other.layers]) await pushBlob(berth.url, 'kinds/bydigest', b);
    const res = await putManifest(berth.url, 'kinds/bydigest', img.manifest.digest, other.manifest, MT.ociManifest);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
    expect(existsSync(revisionLink('kinds/bydigest', other.manifest.digest))).toBe(false);
  });
});

describe('artifacts, subjects and referrers', () => {
  const subject = makeImage(10);
  const empty = emptyConfig();
  const artifact = (seed: number, artifactType: string): ReturnType<typeof manifestBlob> =>
    artifactManifest(
      artifactType,
      [descriptor('text/plain', blob(`signature ${seed}`))],
      descriptor(MT.ociManifest, subject.manifest),
      { 'org.example.seed': String(seed) },
    );

  beforeAll(async () => {
    await pushImage(berth.url, 'art/repo', 'v1', subject);
    await pushBlob(berth.url, 'art/repo', empty);
    for (const seed of [1, 2]) await pushBlob(berth.url, 'art/repo', blob(`signature ${seed}`));
  });

  it('a PUT with a subject answers OCI-Subject, and the referrers API lists it', async () => {
    const sig = artifact(1, 'application/vnd.example.signature');
    const sbom = artifact(2, 'application/vnd.example.sbom');
    const put = await putManifest(berth.url, 'art/repo', sig.digest, sig, MT.ociManifest);
    expect(put.status).toBe(201);
    expect(put.header('OCI-Subject')).toBe(subject.manifest.digest);
    await putManifest(berth.url, 'art/repo', sbom.digest, sbom, MT.ociManifest);

    const all = await raw(berth.url, 'GET', `/v2/art/repo/referrers/${subject.manifest.digest}`);
    expect(all.status).toBe(200);
    expect(all.header('Content-Type')).toBe(MT.ociIndex);
    const index = all.json() as { mediaType: string; manifests: { digest: string; artifactType: string; size: number; annotations: object }[] };
    expect(index.mediaType).toBe(MT.ociIndex);
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sig.digest, sbom.digest].sort());
    const sigEntry = index.manifests.find((m) => m.digest === sig.digest);
    expect(sigEntry).toMatchObject({ artifactType: 'application/vnd.example.signature', size: sig.size, annotations: { 'org.example.seed': '1' } });

    const filtered = await raw(berth.url, 'GET', `/v2/art/repo/referrers/${subject.manifest.digest}?artifactType=application/vnd.example.sbom`);
    expect(filtered.header('OCI-Filters-Applied')).toBe('artifactType');
    expect((filtered.json() as { manifests: { digest: string }[] }).manifests.map((m) => m.digest)).toEqual([sbom.digest]);
  });

  it('referrers of a digest nobody refers to is an empty index; a bad digest is DIGEST_INVALID', async () => {
    const none = await raw(berth.url, 'GET', `/v2/art/repo/referrers/${blob('nothing').digest}`);
    expect(none.status).toBe(200);
    expect((none.json() as { manifests: unknown[] }).manifests).toEqual([]);
    expect(errorCode(await raw(berth.url, 'GET', '/v2/art/repo/referrers/sha256:123'))).toBe('DIGEST_INVALID');
  });

  it('a subject need not exist in the repository', async () => {
    const lonely = manifestBlob({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: descriptor(MT.ociEmpty, empty),
      layers: [],
      subject: { mediaType: MT.ociManifest, digest: blob('absent').digest, size: 7 },
    });
    const put = await putManifest(berth.url, 'art/repo', lonely.digest, lonely, MT.ociManifest);
    expect(put.status).toBe(201);
    expect(put.header('OCI-Subject')).toBe(blob('absent').digest);
  });
});

describe('refused manifests change nothing', () => {
  const repo = 'refused/repo';
  const img = makeImage(20);
  beforeAll(async () => {
    for (const b of [img.config, ...img.layers]) await pushBlob(berth.url, repo, b);
  });

  async function expectRefused(body: Buffer | string, contentType: string, code: string, status: number): Promise<void> {
    const before = await listTree(repoDir(repo));
    const res = await raw(berth.url, 'PUT', `/v2/${repo}/manifests/t`, { headers: { 'Content-Type': contentType }, body });
    expect(res.status).toBe(status);
    expect(errorCode(res)).toBe(code);
    expect(await listTree(repoDir(repo))).toEqual(before);
  }

  it('not JSON, a JSON array, a wrong mediaType, schema 1, an unknown type', async () => {
    await expectRefused('{not json', MT.ociManifest, 'MANIFEST_INVALID', 400);
    await expectRefused('[]', MT.ociManifest, 'MANIFEST_INVALID', 400);
    const asDocker = JSON.stringify({ ...JSON.parse(img.manifest.bytes.toString()), mediaType: MT.dockerManifest });
    await expectRefused(asDocker, MT.ociManifest, 'MANIFEST_INVALID', 400);
    await expectRefused(JSON.stringify({ schemaVersion: 1, name: repo, tag: 't', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'MANIFEST_INVALID', 400);
    await expectRefused(JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown' }), 'application/x-unknown', 'MANIFEST_INVALID', 400);
  });

  it('a layer or index child the repository lacks is MANIFEST_BLOB_UNKNOWN', async () => {
    const missing = makeImage(21);
    await expectRefused(missing.manifest.bytes, MT.ociManifest, 'MANIFEST_BLOB_UNKNOWN', 400);
    const index = manifestBlob({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [descriptor(MT.ociManifest, missing.manifest)] });
    await expectRefused(index.bytes, MT.ociIndex, 'MANIFEST_BLOB_UNKNOWN', 400);
  });

  it('a manifest over 4 MiB is 413, and the client can read that answer every time', async () => {
    const doc = { ...JSON.parse(img.manifest.bytes.toString()), annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } };
    // Sent in one go: were the connection closed with the body unread, the client would get a reset.
    for (let i = 0; i < 10; i++) await expectRefused(JSON.stringify(doc), MT.ociManifest, 'MANIFEST_INVALID', 413);
  });

  it('an invalid tag is TAG_INVALID on PUT, and names no manifest (404) on GET, HEAD and DELETE', async () => {
    const res = await putManifest(berth.url, repo, '-bad', img.manifest, MT.ociManifest);
    expect(errorCode(res)).toBe('TAG_INVALID');
    for (const method of ['GET', 'HEAD', 'DELETE']) {
      const read = await raw(berth.url, method, `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`);
      expect(read.status, method).toBe(404);
      if (method !== 'HEAD') expect(errorCode(read), method).toBe('MANIFEST_UNKNOWN');
    }
  });
});

describe('deletion', () => {
  it('by tag removes that tag only; by digest removes the revision and every tag naming it', async () => {
    const img = makeImage(30);
    await pushImage(berth.url, 'del/repo', 'a', img);
    await putManifest(berth.url, 'del/repo', 'b', img.manifest, img.mediaType);
    await putManifest(berth.url, 'del/repo', 'c', img.manifest, img.mediaType);
    expect((await raw(berth.url, 'DELETE', '/v2/del/repo/manifests/a')).status).toBe(202);
    expect(errorCode(await raw(berth.url, 'GET', '/v2/del/repo/manifests/a'))).toBe('MANIFEST_UNKNOWN');
    expect((await raw(berth.url, 'GET', '/v2/del/repo/manifests/b')).status).toBe(200);
    expect(existsSync(revisionLink('del/repo', img.manifest.digest))).toBe(true);

    expect((await raw(berth.url, 'DELETE', `/v2/del/repo/manifests/${img.manifest.digest}`)).status).toBe(202);
    expect(existsSync(revisionLink('del/repo', img.manifest.digest))).toBe(false);
    expect(await readdir(join(repoDir('del/repo'), '_manifests/tags'))).toEqual([]);
    expect(errorCode(await raw(berth.url, 'GET', `/v2/del/repo/manifests/${img.manifest.digest}`))).toBe('MANIFEST_UNKNOWN');
    expect(errorCode(await raw(berth.url, 'DELETE', `/v2/del/repo/manifests/${img.manifest.digest}`))).toBe('MANIFEST_UNKNOWN');
    expect(await readFile(join(v2(berth.root), blobData(img.manifest.digest)))).toEqual(img.manifest.bytes);
  });

  it('with storage.delete disabled every delete is 405 UNSUPPORTED and nothing changes', async () => {
    const locked = await startBerth({ deleteEnabled: false });
    try {
      const img = makeImage(31);
      await pushImage(locked.url, 'nodel/repo', 'v1', img);
      for (const path of ['/v2/nodel/repo/manifests/v1', `/v2/nodel/repo/manifests/${img.manifest.digest}`, `/v2/nodel/repo/blobs/${img.config.digest}`]) {
        const res = await raw(locked.url, 'DELETE', path);
        expect(res.status, path).toBe(405);
        expect(errorCode(res)).toBe('UNSUPPORTED');
      }
      expect((await raw(locked.url, 'GET', '/v2/nodel/repo/manifests/v1')).status).toBe(200);
    } finally {
      await locked.close();
    }
  });

  it('in read-only mode every write is 405 UNSUPPORTED and reads still work', async () => {
    const img = makeImage(32);
    const root = await mkdtemp(join(tmpdir(), 'berth-ro-'));
    const writable = await startBerth({ root });
    await pushImage(writable.url, 'ro/repo', 'v1', img);
    await writable.close();
    const readOnly = await startBerth({ readOnly: true, root });
    try {
      expect(errorCode(await raw(readOnly.url, 'POST', '/v2/ro/repo/blobs/uploads/'))).toBe('UNSUPPORTED');
      expect((await putManifest(readOnly.url, 'ro/repo', 'v2', img.manifest, img.mediaType)).status).toBe(405);
      expect((await raw(readOnly.url, 'GET', '/v2/ro/repo/manifests/v1')).status).toBe(200);
    } finally {
      await readOnly.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('tags list and catalog', () => {
  const tags = ['v10', 'v2', 'A', 'latest', 'v1', '_x'];
  beforeAll(async () => {
    const img = makeImage(40);
    await pushImage(berth.url, 'list/repo', tags[0]!, img);
    for (const t of tags.slice(1)) await putManifest(berth.url, 'list/repo', t, img.manifest, img.mediaType);
  });

  it('lists every tag in lexical order', async () => {
    const res = await raw(berth.url, 'GET', '/v2/list/repo/tags/list');
    expect(res.json()).toEqual({ name: 'list/repo', tags: [...tags].sort() });
    expect(res.header('Link')).toBeUndefined();
  });

  it('pages with n and last, and a Link to the next page', async () => {
    const sorted = [...tags].sort();
    const first = await raw(berth.url, 'GET', '/v2/list/repo/tags/list?n=2');
    expect((first.json() as { tags: string[] }).tags).toEqual(sorted.slice(0, 2));
    expect(first.header('Link')).toBe(`</v2/list/repo/tags/list?n=2&last=${sorted[1]}>; rel="next"`);
    const next = await raw(berth.url, 'GET', `/v2/list/repo/tags/list?n=2&last=${sorted[1]}`);
    expect((next.json() as { tags: string[] }).tags).toEqual(sorted.slice(2, 4));
    const tail = await raw(berth.url, 'GET', `/v2/list/repo/tags/list?n=10&last=${sorted[3]}`);
    expect((tail.json() as { tags: string[] }).tags).toEqual(sorted.slice(4));
    expect(tail.header('Link')).toBeUndefined();
  });

  it('an unknown repository is NAME_UNKNOWN; a bad n is PAGINATION_NUMBER_INVALID', async () => {
    expect(errorCode(await raw(berth.url, 'GET', '/v2/no/such/repo/tags/list'))).toBe('NAME_UNKNOWN');
    expect(errorCode(await raw(berth.url, 'GET', '/v2/list/repo/tags/list?n=-1'))).toBe('PAGINATION_NUMBER_INVALID');
    expect(errorCode(await raw(berth.url, 'GET', '/v2/list/repo/tags/list?n=abc'))).toBe('PAGINATION_NUMBER_INVALID');
  });

  it('the catalog lists repositories in lexical order, with paging', async () => {
    const fresh = await startBerth();
    try {
      const names = ['b', 'a/b', 'a-b', 'a', 'c/d/e'];
      for (const [i, name] of names.entries()) await pushImage(fresh.url, name, 'v1', makeImage(50 + i));
      const all = await raw(fresh.url, 'GET', '/v2/_catalog');
      expect(all.json()).toEqual({ repositories: [...names].sort() });
      const first = await raw(fresh.url, 'GET', '/v2/_catalog?n=2');
      expect((first.json() as { repositories: string[] }).repositories).toEqual([...names].sort().slice(0, 2));
      expect(first.header('Link')).toBe(`</v2/_catalog?n=2&last=${encodeURIComponent([...names].sort()[1]!)}>; rel="next"`);
      const rest = await raw(fresh.url, 'GET', `/v2/_catalog?n=10&last=${encodeURIComponent([...names].sort()[1]!)}`);
      expect((rest.json() as { repositories: string[] }).repositories).toEqual([...names].sort().slice(2));
    } finally {
      await fresh.close();
    }
  });
});

async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}
