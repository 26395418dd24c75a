/**
 * The layout interoperability proof against the reference registry (CNCF distribution 2.8,
 * `docker-registry`): a root written by Berth is served unchanged by registry:2, a root written by
 * registry:2 (unfinished uploads included) is served unchanged by Berth, and both write the same files
 * with the same bytes for the same pushes. Every manifest, tag and blob digest is compared.
 */
import { cp, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, layerLink, revisionLink, tagLinks, uploadDir, uploadsDir, v2 } from './helpers/layout.js';
import {
  ACCEPT_ALL, type Blob, MT, type RawResponse, artifactManifest, blob, descriptor, emptyConfig, errorCode, locationPath, makeImage, onLinux,
  platformIndex, pushBlob, pushBlobPostPut, putManifest, raw, randomBytesSeeded,
} from './helpers/oci.js';
import { type Registry2, expectNoRegistry2Errors, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';

const SECRET = 'registry2-layout-shared-secret';
const LINK = /^sha256:[a-f0-9]{64}$/;

// ---- The content pushed in every direction ----

interface PushedManifest {
  readonly what: string;
  readonly blob: Blob;
  readonly mediaType: string;
  /** Tags to PUT it under, in order; empty: PUT by digest only. */
  readonly tags: readonly string[];
}

interface RepoContent {
  readonly name: string;
  /** Configs and layers, pushed before the manifests. */
  readonly blobs: readonly Blob[];
  /** In push order: children before the index that lists them. */
  readonly manifests: readonly PushedManifest[];
}

/**
 * A Docker schema-2 image under several tags and a Docker manifest list; a multi-platform OCI index
 * (platform manifests by digest, the index by tag) and an artifact whose subject is one platform image;
 * and an OCI image in a three-level repository name.
 */
function contentSet(seed: number): RepoContent[] {
  const d1 = makeImage(seed, { docker: true });
  const d2 = makeImage(seed + 1, { docker: true });
  const list = platformIndex(MT.dockerList, [onLinux('amd64', d1), onLinux('arm64', d2)]);
  const amd = makeImage(seed + 2);
  const arm = makeImage(seed + 3, { layerCount: 3 });
  const index = platformIndex(MT.ociIndex, [onLinux('amd64', amd), onLinux('arm64', arm)]);
  const empty = emptyConfig();
  const signature = blob(`signature ${seed} of ${amd.manifest.digest}`);
  const artifact = artifactManifest(
    'application/vnd.example.signature.v1',
    [descriptor('application/vnd.example.signature.v1+json', signature)],
    descriptor(MT.ociManifest, amd.manifest),
    { 'org.example.seed': String(seed) },
  );
  const nested = makeImage(seed + 4, { layerCount: 1 });
  const imageBlobs = (...images: ReturnType<typeof makeImage>[]): Blob[] => images.flatMap((i) => [i.config, ...i.layers]);
  return [
    {
      name: 'interop/docker',
      blobs: imageBlobs(d1, d2),
      manifests: [
        { what: 'docker image', blob: d1.manifest, mediaType: MT.dockerManifest, tags: ['v1', 'v1.0', 'stable', 'latest'] },
        { what: 'docker image (arm64)', blob: d2.manifest, mediaType: MT.dockerManifest, tags: [] },
        { what: 'docker manifest list', blob: list, mediaType: MT.dockerList, tags: ['multi'] },
      ],
    },
    {
      name: 'interop/multi',
      blobs: [...imageBlobs(amd, arm), empty, signature],
      manifests: [
        { what: 'oci amd64', blob: amd.manifest, mediaType: MT.ociManifest, tags: [] },
        { what: 'oci arm64', blob: arm.manifest, mediaType: MT.ociManifest, tags: [] },
        { what: 'oci index', blob: index, mediaType: MT.ociIndex, tags: ['latest', '1.0'] },
        { what: 'artifact with subject', blob: artifact, mediaType: MT.ociManifest, tags: [] },
      ],
    },
    {
      name: 'library/nested/app',
      blobs: imageBlobs(nested),
      manifests: [{ what: 'nested oci image', blob: nested.manifest, mediaType: MT.ociManifest, tags: ['v2'] }],
    },
  ];
}

const repoNames = (set: readonly RepoContent[]): string[] => set.map((r) => r.name).sort();
const tagsOf = (repo: RepoContent): string[] => [...new Set(repo.manifests.flatMap((m) => m.tags))].sort();
const refsOf = (m: PushedManifest): string[] => [m.blob.digest, ...m.tags];

type BlobPusher = (url: string, repo: string, b: Blob) => Promise<void>;

async function pushSet(url: string, set: readonly RepoContent[], pushOne: BlobPusher): Promise<void> {
  for (const repo of set) {
    for (const b of repo.blobs) await pushOne(url, repo.name, b);
    for (const m of repo.manifests) {
      for (const ref of m.tags.length > 0 ? m.tags : [m.blob.digest]) {
        const res = await putManifest(url, repo.name, ref, m.blob, m.mediaType);
        if (res.status !== 201) throw new Error(`PUT ${m.what} ${repo.name}:${ref}: ${res.status} ${res.body.toString()}`);
        if (res.header('Docker-Content-Digest') !== m.blob.digest) {
          throw new Error(`PUT ${m.what}: Docker-Content-Digest ${String(res.header('Docker-Content-Digest'))}, want ${m.blob.digest}`);
        }
      }
    }
  }
}

// ---- What a server answers, recorded for comparison ----

interface ManifestAnswer {
  readonly status: number;
  readonly body: Buffer;
  readonly digest: string | undefined;
  readonly contentType: string | undefined;
}

interface Answers {
  /** key `<repo>@<digest>` or `<repo>:<tag>` */
  readonly manifests: Map<string, ManifestAnswer>;
  /** key `<repo>@<digest>` */
  readonly blobs: Map<string, { status: number; body: Buffer; digest: string | undefined }>;
  readonly tags: Map<string, unknown>;
  readonly catalog: unknown;
}

const refKey = (repo: string, ref: string): string => `${repo}${ref.startsWith('sha256:') ? '@' : ':'}${ref}`;

async function getManifest(url: string, repo: string, ref: string): Promise<ManifestAnswer> {
  const res = await raw(url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL } });
  return { status: res.status, body: res.body, digest: res.header('Docker-Content-Digest'), contentType: res.header('Content-Type') };
}

async function record(url: string, set: readonly RepoContent[]): Promise<Answers> {
  const answers: Answers = { manifests: new Map(), blobs: new Map(), tags: new Map(), catalog: undefined };
  for (const repo of set) {
    for (const m of repo.manifests) {
      for (const ref of refsOf(m)) answers.manifests.set(refKey(repo.name, ref), await getManifest(url, repo.name, ref));
    }
    for (const b of repo.blobs) {
      const res = await raw(url, 'GET', `/v2/${repo.name}/blobs/${b.digest}`);
      answers.blobs.set(refKey(repo.name, b.digest), { status: res.status, body: res.body, digest: res.header('Docker-Content-Digest') });
    }
    answers.tags.set(repo.name, (await raw(url, 'GET', `/v2/${repo.name}/tags/list`)).json());
  }
  return { ...answers, catalog: (await raw(url, 'GET', '/v2/_catalog')).json() };
}

/** Every manifest by tag and by digest, and every blob, is the pushed content with the pushed digest. */
function expectContentServed(answers: Answers, set: readonly RepoContent[]): void {
  for (const repo of set) {
    for (const m of repo.manifests) {
      for (const ref of refsOf(m)) {
        const key = refKey(repo.name, ref);
        const got = answers.manifests.get(key);
        expect(got?.status, `${m.what} ${key}`).toBe(200);
        expect(got?.digest, `${m.what} ${key}`).toBe(m.blob.digest);
        expect(got?.contentType, `${m.what} ${key}`).toBe(m.mediaType);
        expect(got?.body.equals(m.blob.bytes), `${m.what} ${key}: same bytes`).toBe(true);
      }
    }
    for (const b of repo.blobs) {
      const key = refKey(repo.name, b.digest);
      const got = answers.blobs.get(key);
      expect(got?.status, key).toBe(200);
      expect(got?.digest, key).toBe(b.digest);
      expect(got?.body.equals(b.bytes), `${key}: same bytes`).toBe(true);
    }
    expect(sortedTags(answers).get(repo.name), `tags of ${repo.name}`).toEqual({ name: repo.name, tags: tagsOf(repo) });
  }
}

/** Two servers' answers are the same: status, bytes, digest and type of every manifest and blob. */
function expectSameAnswers(got: Answers, want: Answers): void {
  expect([...got.manifests.keys()]).toEqual([...want.manifests.keys()]);
  for (const [key, w] of want.manifests) {
    const g = got.manifests.get(key);
    expect({ status: g?.status, digest: g?.digest, contentType: g?.contentType }, key).toEqual({
      status: w.status,
      digest: w.digest,
      contentType: w.contentType,
    });
    expect(g?.body.equals(w.body), `${key}: same bytes`).toBe(true);
  }
  expect([...got.blobs.keys()]).toEqual([...want.blobs.keys()]);
  for (const [key, w] of want.blobs) {
    const g = got.blobs.get(key);
    expect({ status: g?.status, digest: g?.digest }, key).toEqual({ status: w.status, digest: w.digest });
    expect(g?.body.equals(w.body), `${key}: same bytes`).toBe(true);
  }
}

/** Tag lists with their tags sorted (registry:2 2.8 answers them in directory order, Berth in lexical order). */
function sortedTags(answers: Answers): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [name, doc] of answers.tags) {
    const d = doc as { name?: unknown; tags?: unknown };
    out.set(name, { name: d.name, tags: Array.isArray(d.tags) ? [...(d.tags as string[])].sort() : d.tags });
  }
  return out;
}

// ---- The files on disk ----

/** Every regular file under `dir`, as sorted paths relative to it. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out.sort();
}

const isUploadPath = (rel: string): boolean => rel.split('/').includes('_uploads');
const isLink = (rel: string): boolean => rel === 'link' || rel.endsWith('/link');

/** Every link file under the layout holds exactly `sha256:<64 hex>`, no newline. Answers how many. */
async function expectWellFormedLinks(root: string): Promise<number> {
  const links = (await listFiles(v2(root))).filter(isLink);
  for (const rel of links) {
    const text = await readFile(join(v2(root), rel), 'latin1');
    expect(text, rel).toMatch(LINK);
    expect(text.length, rel).toBe('sha256:'.length + 64);
  }
  return links.length;
}

/** The layout paths that must exist for the content: blobs, _layers, revisions, tag current and index. */
function expectedLayoutPaths(set: readonly RepoContent[]): string[] {
  const paths = new Set<string>();
  for (const repo of set) {
    for (const b of repo.blobs) {
      paths.add(blobData(b.digest));
      paths.add(layerLink(repo.name, b.digest));
    }
    for (const m of repo.manifests) {
      paths.add(blobData(m.blob.digest));
      paths.add(revisionLink(repo.name, m.blob.digest));
      for (const tag of m.tags) for (const link of tagLinks(repo.name, tag, m.blob.digest)) paths.add(link);
    }
  }
  return [...paths].sort();
}

// ---- The tests ----

describeWithTool('docker-registry (CNCF distribution 2.8)', registry2Available(), 'registry:2 layout interoperability', () => {
  describe('a. Berth writes, registry:2 serves the same root', () => {
    const set = contentSet(100);
    let root = '';
    let berth: TestBerth | undefined;
    let reg: Registry2 | undefined;
    let fromBerth: Answers;

    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'berth-interop-a-'));
      berth = await startBerth({ root, secret: SECRET });
      await pushSet(berth.url, set, pushBlob);
      fromBerth = await record(berth.url, set);
      expect(berth.errors).toEqual([]);
      await berth.close();
      berth = undefined;
      reg = await startRegistry2({ root, secret: SECRET });
    });
    afterAll(async () => {
      await berth?.close();
      await reg?.close();
      await rm(root, { recursive: true, force: true });
    });

    it('Berth itself serves what was pushed (the baseline)', () => {
      expectContentServed(fromBerth, set);
      expect(fromBerth.catalog).toEqual({ repositories: repoNames(set) });
    });

    it('registry:2 serves every manifest by tag and by digest with the same bytes, digest and type, and every blob', async () => {
      const fromReg = await record(reg?.url ?? '', set);
      expectContentServed(fromReg, set);
      expectSameAnswers(fromReg, fromBerth);
    });

    it('registry:2 lists the same tags, and every repository (nested names included) in _catalog', async () => {
      const fromReg = await record(reg?.url ?? '', set);
      expect(sortedTags(fromReg)).toEqual(fromBerth.tags);
      expect(fromReg.catalog).toEqual({ repositories: repoNames(set) });
      expect(fromReg.catalog).toEqual(fromBerth.catalog);
      if (reg) expectNoRegistry2Errors(reg);
    });

    it('every link file Berth wrote is exactly sha256:<hex> with no trailing newline', async () => {
      const count = await expectWellFormedLinks(root);
      expect(count).toBeGreaterThanOrEqual(expectedLayoutPaths(set).filter(isLink).length);
      const files = await listFiles(v2(root));
      for (const p of expectedLayoutPaths(set)) expect(files, p).toContain(p);
    });
  });

  describe('b. registry:2 writes, Berth serves a copy of its root', () => {
    const set = contentSet(200);
    const pendingBytes = randomBytesSeeded(3000, 77);
    const pendingBlob = blob(pendingBytes);
    const cancelBytes = randomBytesSeeded(2000, 78);
    const FIRST = 1200; // bytes sent to registry:2 before it stops
    let root = '';
    let copy = '';
    let reg: Registry2 | undefined;
    let berth: TestBerth | undefined;
    let fromReg: Answers;
    /** Unfinished uploads of registry:2: repo, the Location it gave last (path and query), uuid, bytes it holds. */
    const unfinished: Record<'finish' | 'cancel' | 'empty', { repo: string; location: string; uuid: string; size: number }> = {
      finish: { repo: 'interop/pending', location: '', uuid: '', size: 0 },
      cancel: { repo: 'interop/docker', location: '', uuid: '', size: 0 },
      empty: { repo: 'interop/multi', location: '', uuid: '', size: 0 },
    };
    const emptyBytes = randomBytesSeeded(1500, 79);

    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'berth-interop-b-'));
      copy = await mkdtemp(join(tmpdir(), 'berth-interop-b-copy-'));
      reg = await startRegistry2({ root, secret: SECRET });
    });
    afterAll(async () => {
      if (berth) expect(berth.errors).toEqual([]);
      await berth?.close();
      await reg?.close();
      await rm(root, { recursive: true, force: true });
      await rm(copy, { recursive: true, force: true });
    });

    const regUrl = (): string => reg?.url ?? '';
    const berthUrl = (): string => berth?.url ?? '';

    it('registry:2 2.8 has no monolithic POST ?digest=: it opens a session (202), so pushes use POST then PUT', async () => {
      const b = blob('monolithic?');
      const res = await raw(regUrl(), 'POST', `/v2/interop/docker/blobs/uploads/?digest=${b.digest}`, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
        body: b.bytes,
      });
      expect(res.status).toBe(202);
      expect(res.header('Range')).toBe('0-0');
      expect((await raw(regUrl(), 'DELETE', locationPath(res))).status).toBe(204);
    });

    it('registry:2 accepts the whole set over HTTP (POST + PUT uploads, every manifest kind)', async () => {
      await pushSet(regUrl(), set, pushBlobPostPut);
      fromReg = await record(regUrl(), set);
      expectContentServed(fromReg, set);
    });

    it('two chunked uploads are left unfinished on registry:2 (POST + one PATCH, no PUT)', async () => {
      for (const [which, bytes] of [['finish', pendingBytes], ['cancel', cancelBytes]] as const) {
        const u = unfinished[which];
        const post = await raw(regUrl(), 'POST', `/v2/${u.repo}/blobs/uploads/`);
        expect(post.status).toBe(202);
        const patch = await raw(regUrl(), 'PATCH', locationPath(post), {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${FIRST - 1}`, 'Content-Length': String(FIRST) },
          body: bytes.subarray(0, FIRST),
        });
        expect(patch.status).toBe(202);
        expect(patch.header('Range')).toBe(`0-${FIRST - 1}`);
        u.location = locationPath(patch);
        u.uuid = patch.header('Docker-Upload-UUID') ?? '';
        u.size = FIRST;
        expect(u.uuid).toMatch(/^[0-9a-f-]{36}$/);
        expect(u.location).toMatch(/[?&]_state=/);
        const dir = join(v2(root), uploadDir(u.repo, u.uuid));
        expect((await stat(join(dir, 'data'))).size).toBe(FIRST);
        expect(await readFile(join(dir, 'startedat'), 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        // registry:2 saves its Go hash state: Berth must accept an upload folder that has one.
        expect(await readdir(join(dir, 'hashstates/sha256'))).toContain(String(FIRST));
      }
      // Go's padded base64url: one token ends in `=` (sent as %3D), one needs no padding; Berth must take both.
      const stateOf = (location: string): string => new URL(location, 'http://x').searchParams.get('_state') ?? '';
      expect(unfinished.cancel.location).toMatch(/_state=[^&]*%3D/);
      expect(stateOf(unfinished.cancel.location)).toMatch(/[^=]=$/);
      expect(stateOf(unfinished.finish.location)).not.toMatch(/=$/);
    });

    it('a third upload is left as registry:2 opened it (POST only: its _state carries a nanosecond StartedAt)', async () => {
      const u = unfinished.empty;
      const post = await raw(regUrl(), 'POST', `/v2/${u.repo}/blobs/uploads/`);
      expect(post.status).toBe(202);
      u.location = locationPath(post);
      u.uuid = post.header('Docker-Upload-UUID') ?? '';
      const state = new URL(u.location, 'http://x').searchParams.get('_state') ?? '';
      const doc = JSON.parse(Buffer.from(state, 'base64url').subarray(32).toString('utf8')) as Record<string, unknown>;
      expect(doc).toMatchObject({ Name: u.repo, UUID: u.uuid, Offset: 0 });
      expect(doc['StartedAt']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    });

    it('registry:2 is stopped and its root copied; Berth starts on the copy with the same http.secret', async () => {
      fromReg = await record(regUrl(), set);
      expectNoRegistry2Errors(reg as Registry2);
      await reg?.close();
      reg = undefined;
      await cp(root, copy, { recursive: true });
      berth = await startBerth({ root: copy, secret: SECRET });
      expect((await raw(berthUrl(), 'GET', '/v2/')).status).toBe(200);
    });

    it('Berth serves every manifest by tag and by digest, and every blob, as registry:2 did', async () => {
      const fromBerth = await record(berthUrl(), set);
      expectContentServed(fromBerth, set);
      expectSameAnswers(fromBerth, fromReg);
    });

    it('tag lists and _catalog equal what registry:2 answered (an uploads-only repository is not listed)', async () => {
      const fromBerth = await record(berthUrl(), set);
      expect(fromBerth.tags).toEqual(sortedTags(fromReg));
      expect(fromBerth.catalog).toEqual(fromReg.catalog);
      expect(fromReg.catalog).toEqual({ repositories: repoNames(set) });
    });

    it("registry:2's unfinished uploads answer 204 with their Range at the Location registry:2 gave", async () => {
      for (const u of Object.values(unfinished)) {
        const res = await raw(berthUrl(), 'GET', u.location);
        expect(res.status, `${u.repo} ${res.body.toString()}`).toBe(204);
        expect(res.header('Range')).toBe(`0-${Math.max(u.size - 1, 0)}`);
        expect(res.header('Docker-Upload-UUID')).toBe(u.uuid);
        expect(res.header('Location')).toContain(`/v2/${u.repo}/blobs/uploads/${u.uuid}`);
      }
    });

    it('an upload begun on registry:2 is finished on Berth: PATCH the rest, PUT ?digest= → 201, blob readable', async () => {
      const u = unfinished.finish;
      const rest = pendingBytes.subarray(FIRST);
      const patch = await raw(berthUrl(), 'PATCH', u.location, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Range': `${FIRST}-${pendingBytes.length - 1}`,
          'Content-Length': String(rest.length),
        },
        body: rest,
      });
      expect(patch.status, patch.body.toString()).toBe(202);
      expect(patch.header('Range')).toBe(`0-${pendingBytes.length - 1}`);
      const location = locationPath(patch);
      const put = await raw(berthUrl(), 'PUT', `${location}&digest=${encodeURIComponent(pendingBlob.digest)}`, {
        headers: { 'Content-Length': '0' },
      });
      expect(put.status, put.body.toString()).toBe(201);
      expect(put.header('Docker-Content-Digest')).toBe(pendingBlob.digest);
      const get = await raw(berthUrl(), 'GET', `/v2/${u.repo}/blobs/${pendingBlob.digest}`);
      expect(get.status).toBe(200);
      expect(get.body.equals(pendingBytes)).toBe(true);
      expect(await readFile(join(v2(copy), blobData(pendingBlob.digest)))).toEqual(pendingBytes);
      expect(await readFile(join(v2(copy), layerLink(u.repo, pendingBlob.digest)), 'latin1')).toBe(pendingBlob.digest);
      expect(await readdir(join(v2(copy), uploadsDir(u.repo))).catch(() => [])).toEqual([]);
      // Now the repository has a _layers link, so it is a repository for the catalog too.
      const catalog = (await raw(berthUrl(), 'GET', '/v2/_catalog')).json();
      expect(catalog).toEqual({ repositories: [...repoNames(set), u.repo].sort() });
    });

    it('an upload registry:2 only opened is finished on Berth by one PUT ?digest= with the whole body', async () => {
      const u = unfinished.empty;
      const b = blob(emptyBytes);
      const put = await raw(berthUrl(), 'PUT', `${u.location}&digest=${encodeURIComponent(b.digest)}`, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
        body: b.bytes,
      });
      expect(put.status, put.body.toString()).toBe(201);
      expect(put.header('Docker-Content-Digest')).toBe(b.digest);
      const get = await raw(berthUrl(), 'GET', `/v2/${u.repo}/blobs/${b.digest}`);
      expect(get.status).toBe(200);
      expect(get.body.equals(b.bytes)).toBe(true);
    });

    it('an upload begun on registry:2 is cancelled on Berth: DELETE → 204, then it is unknown', async () => {
      const u = unfinished.cancel;
      const del = await raw(berthUrl(), 'DELETE', u.location);
      expect(del.status, del.body.toString()).toBe(204);
      const after: RawResponse = await raw(berthUrl(), 'GET', u.location);
      expect(after.status).toBe(404);
      expect(errorCode(after)).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await readdir(join(v2(copy), uploadsDir(u.repo))).catch(() => [])).not.toContain(u.uuid);
    });
  });

  describe('c. the same pushes write the same files, byte for byte', () => {
    const set = contentSet(300);
    let berthRoot = '';
    let regRoot = '';

    beforeAll(async () => {
      berthRoot = await mkdtemp(join(tmpdir(), 'berth-interop-c-berth-'));
      regRoot = await mkdtemp(join(tmpdir(), 'berth-interop-c-reg-'));
      const berth = await startBerth({ root: berthRoot, secret: SECRET });
      try {
        await pushSet(berth.url, set, pushBlobPostPut);
        expect(berth.errors).toEqual([]);
      } finally {
        await berth.close();
      }
      const reg = await startRegistry2({ root: regRoot, secret: SECRET });
      try {
        await pushSet(reg.url, set, pushBlobPostPut);
        expectNoRegistry2Errors(reg);
      } finally {
        await reg.close();
      }
    });
    afterAll(async () => {
      await rm(berthRoot, { recursive: true, force: true });
      await rm(regRoot, { recursive: true, force: true });
    });

    it('every link file either server wrote is exactly sha256:<hex>, no newline', async () => {
      expect(await expectWellFormedLinks(berthRoot)).toBeGreaterThan(0);
      expect(await expectWellFormedLinks(regRoot)).toBeGreaterThan(0);
    });

    it('the sorted relative file paths under docker/registry/v2 (except _uploads) are identical', async () => {
      const fromBerth = (await listFiles(v2(berthRoot))).filter((p) => !isUploadPath(p));
      const fromReg = (await listFiles(v2(regRoot))).filter((p) => !isUploadPath(p));
      expect(fromBerth).toEqual(fromReg);
      expect(fromReg).toEqual(expectedLayoutPaths(set));
    });

    it('every link file and every blob data file is identical byte for byte', async () => {
      const files = (await listFiles(v2(regRoot))).filter((p) => !isUploadPath(p));
      for (const rel of files) {
        const [a, b] = await Promise.all([readFile(join(v2(berthRoot), rel)), readFile(join(v2(regRoot), rel))]);
        expect(a.equals(b), rel).toBe(true);
      }
    });
  });
});
