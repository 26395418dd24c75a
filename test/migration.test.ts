/**
 * Migration with real clients, both ways, against Debian's docker-registry (CNCF distribution 2.8.2):
 * a realistic set (nested repository names, 25 tags on one repository with tags sharing manifests, a
 * multi-platform index, a Docker schema-2 image, an artifact with a subject, a deleted tag, unfinished
 * uploads) is pushed with skopeo (raw HTTP where no client does it) to one server, the server is
 * stopped, its root copied with `rsync -a`, the other server started on the copy, and everything is
 * pulled back with skopeo and compared with what the first server answered: catalog, tag lists, every
 * manifest's bytes and digest by tag, every blob. Then a round trip registry:2 → Berth → registry:2
 * with pushes on each side in between.
 *
 * (test/registry2-layout.test.ts proves the byte-level layout with raw HTTP; this file is the matrix
 * with real clients.)
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDriver } from '../src/storage/driver/factory.js';
import { createRegistry } from '../src/storage/registry.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { uploadDir, uploadsDir, v2 } from './helpers/layout.js';
import {
  type ArtifactContent, type ImageContent, type Stored, type Top, artifactFor, closure, isIndex, ociImage, twoPlatformIndex,
  writeContentLayout,
} from './helpers/migration-content.js';
import { ACCEPT_ALL, MT, blob, errorCode, locationPath, pushBlobPostPut, putManifest, raw, randomBytesSeeded, sha256 } from './helpers/oci.js';
import { type Registry2, expectNoRegistry2Errors, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { type ToolAvailability, describeWithTool, toolsAvailable, which } from './helpers/tools.js';

const SECRET = 'migration-shared-http-secret';
const TOOL_TIMEOUT_MS = 30_000;

// ---- The tools ----

const SKOPEO = which('skopeo');
const RSYNC = which('rsync');

function migrationToolsAvailable(): ToolAvailability {
  const reg = registry2Available();
  if (!reg.ok) return reg;
  return toolsAvailable({ skopeo: 'skopeo', rsync: 'rsync' });
}

interface ToolResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs one child process (killed by its PID, SIGKILL, after `TOOL_TIMEOUT_MS`); never throws on exit codes. */
function runTool(bin: string | undefined, args: readonly string[]): Promise<ToolResult> {
  if (bin === undefined) return Promise.reject(new Error('tool not installed'));
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { encoding: 'buffer', timeout: TOOL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
        if (e && typeof e.code !== 'number') {
          reject(new Error(`${bin} ${args.join(' ')}: ${e.killed === true ? `killed after ${TOOL_TIMEOUT_MS} ms` : e.message}`));
          return;
        }
        resolve({ code: e ? (e.code as number) : 0, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

async function mustRun(bin: string | undefined, args: readonly string[]): Promise<Buffer> {
  const res = await runTool(bin, args);
  if (res.code !== 0) throw new Error(`${bin ?? '?'} ${args.join(' ')} exited ${res.code}: ${res.stderr.trim()}`);
  return res.stdout;
}

/** skopeo with the trust policy out of the way (local test content, nothing is signed). */
const skopeo = (args: readonly string[]): Promise<Buffer> => mustRun(SKOPEO, ['--insecure-policy', ...args]);

const hostOf = (url: string): string => new URL(url).host;
const imageRef = (url: string, repo: string, ref: string): string =>
  `docker://${hostOf(url)}/${repo}${ref.startsWith('sha256:') ? '@' : ':'}${ref}`;

/** `skopeo copy` from an OCI layout to a registry; digests preserved unless converted to Docker schema 2. */
async function skopeoPush(url: string, layout: string, p: ImagePush): Promise<void> {
  const format = p.format === 'v2s2' ? ['--format', 'v2s2'] : ['--preserve-digests'];
  await skopeo(['copy', '-q', '--dest-tls-verify=false', ...(isIndex(p.top) ? ['--all'] : []), ...format, `oci:${layout}:${p.layoutRef}`, imageRef(url, p.repo, p.tag)]);
}

/** `skopeo copy` a tag within one registry (a retag, as `skopeo copy docker://r/a:x docker://r/a:y` does it). */
const skopeoRetag = (url: string, repo: string, from: string, to: string): Promise<Buffer> =>
  skopeo(['copy', '-q', '--all', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', imageRef(url, repo, from), imageRef(url, repo, to)]);

const skopeoInspectRaw = (url: string, repo: string, ref: string): Promise<Buffer> =>
  skopeo(['inspect', '--raw', '--tls-verify=false', imageRef(url, repo, ref)]);

async function skopeoListTags(url: string, repo: string): Promise<string[]> {
  const out = JSON.parse((await skopeo(['list-tags', '--tls-verify=false', `docker://${hostOf(url)}/${repo}`])).toString('utf8')) as { Tags?: string[] };
  return out.Tags ?? [];
}

/** `rsync -a src/ dst/`: how an operator copies a registry root. */
async function rsyncCopy(src: string, dst: string): Promise<void> {
  await mustRun(RSYNC, ['-a', `${src}/`, `${dst}/`]);
}

// ---- What is pushed ----

interface ImagePush {
  readonly repo: string;
  readonly tag: string;
  readonly top: Top;
  /** Its name in the OCI layout skopeo copies from. */
  readonly layoutRef: string;
  /** Push converted to Docker schema 2 (then the registry's digest is not the layout's). */
  readonly format?: 'v2s2';
}

interface ArtifactPush {
  readonly repo: string;
  readonly artifact: ArtifactContent;
}

interface PushPlan {
  readonly images: ImagePush[];
  readonly artifacts: ArtifactPush[];
}

/** Builds a plan: each `add` names a repo, tags and content; layout refs are numbered. */
function plan(): PushPlan & { add(repo: string, tags: readonly string[], top: Top, format?: 'v2s2'): void; artifact(repo: string, a: ArtifactContent): void } {
  const images: ImagePush[] = [];
  const artifacts: ArtifactPush[] = [];
  return {
    images,
    artifacts,
    add(repo, tags, top, format) {
      for (const tag of tags) {
        images.push({ repo, tag, top, layoutRef: `ref${images.length}`, ...(format !== undefined ? { format } : {}) });
      }
    },
    artifact(repo, artifact) {
      artifacts.push({ repo, artifact });
    },
  };
}

const asStored = (img: ImageContent): Stored => ({ blob: img.manifest, mediaType: img.mediaType });

/**
 * The realistic set: `library/app` with 25 tags over 5 images (tags share manifests), `team/sub/service`
 * with a two-platform index under two tags and an artifact whose subject is its amd64 image, `solo`
 * with an OCI image and a Docker schema-2 conversion of it.
 */
function realisticSet(seed: number): PushPlan & { app: ImageContent[]; index: ReturnType<typeof twoPlatformIndex>; signature: ArtifactContent } {
  const p = plan();
  const app = Array.from({ length: 5 }, (_, i) => ociImage(seed + i, { layerCount: 1 + (i % 2) }));
  app.forEach((img, i) => p.add('library/app', [`1.${i}.0`, `1.${i}`, `1.${i}.0-slim`, `build-${seed + i}`], img));
  const newest = app[4] as ImageContent;
  p.add('library/app', ['latest', '1', 'stable', 'edge', 'current'], newest); // 20 + 5 = 25 tags
  const index = twoPlatformIndex(seed + 20);
  p.add('team/sub/service', ['v2', 'latest'], index);
  const signature = artifactFor(asStored(index.images[0] as ImageContent), seed + 30);
  p.artifact('team/sub/service', signature);
  const solo = ociImage(seed + 40, { layerCount: 2 });
  p.add('solo', ['1.0'], solo);
  p.add('solo', ['docker'], solo, 'v2s2');
  return { ...p, app, index, signature };
}

/** Pushes an artifact by digest over raw HTTP (skopeo does not push artifacts with a subject). */
async function pushArtifact(url: string, a: ArtifactPush): Promise<void> {
  for (const b of a.artifact.blobs) await pushBlobPostPut(url, a.repo, b);
  const res = await putManifest(url, a.repo, a.artifact.manifest.digest, a.artifact.manifest, a.artifact.mediaType);
  if (res.status !== 201) throw new Error(`PUT artifact ${a.repo}: ${res.status} ${res.body.toString()}`);
  expect(res.header('Docker-Content-Digest')).toBe(a.artifact.manifest.digest);
}

async function pushPlan(url: string, layout: string, p: PushPlan): Promise<void> {
  for (const img of p.images) await skopeoPush(url, layout, img);
  for (const a of p.artifacts) await pushArtifact(url, a);
}

const layoutOf = (dir: string, p: PushPlan): Promise<string> =>
  writeContentLayout(dir, p.images.map((i) => ({ ref: i.layoutRef, top: i.top })));

// ---- What a server answers ----

interface View {
  /** `GET /v2/_catalog` as answered. */
  readonly catalog: string[];
  /** `GET /v2/<repo>/tags/list` tags, in the server's order. */
  readonly tagLists: Map<string, string[]>;
  /** `skopeo list-tags`, in the server's order. */
  readonly skopeoTags: Map<string, string[]>;
  /** `<repo>:<tag>` → `skopeo inspect --raw` bytes. */
  readonly manifests: Map<string, Buffer>;
  /** `<repo>:<tag>` → the Docker-Content-Digest of `HEAD /v2/<repo>/manifests/<tag>`. */
  readonly headDigests: Map<string, string | undefined>;
}

async function recordView(url: string): Promise<View> {
  const catalogRes = await raw(url, 'GET', '/v2/_catalog');
  expect(catalogRes.status).toBe(200);
  const catalog = (catalogRes.json() as { repositories: string[] }).repositories;
  const view: View = { catalog, tagLists: new Map(), skopeoTags: new Map(), manifests: new Map(), headDigests: new Map() };
  for (const repo of catalog) {
    const list = await raw(url, 'GET', `/v2/${repo}/tags/list`);
    expect(list.status, `tags of ${repo}`).toBe(200);
    const tags = (list.json() as { tags: string[] | null }).tags ?? [];
    view.tagLists.set(repo, tags);
    view.skopeoTags.set(repo, await skopeoListTags(url, repo));
    for (const tag of tags) {
      view.manifests.set(`${repo}:${tag}`, await skopeoInspectRaw(url, repo, tag));
      const head = await raw(url, 'HEAD', `/v2/${repo}/manifests/${tag}`, { headers: { Accept: ACCEPT_ALL } });
      view.headDigests.set(`${repo}:${tag}`, head.header('Docker-Content-Digest'));
    }
  }
  return view;
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();
const sortedMap = (m: Map<string, string[]>): Map<string, string[]> => new Map([...m].map(([k, v]) => [k, sorted(v)]));
/** `<repo>:<tag>` → sha256 of the manifest bytes skopeo got. */
const digestsByTag = (v: View): Map<string, string> => new Map([...v.manifests].map(([k, b]) => [k, sha256(b)]));

/** The target answers what the source answered: catalog, tag sets, and every tag's manifest bytes. */
function expectSameView(got: View, want: View): void {
  expect(got.catalog, 'catalog').toEqual(want.catalog);
  // registry:2 2.8 lists tags in directory order, Berth in lexical order: the sets must be equal.
  expect(sortedMap(got.tagLists), 'tags/list').toEqual(sortedMap(want.tagLists));
  expect(sortedMap(got.skopeoTags), 'skopeo list-tags').toEqual(sortedMap(want.skopeoTags));
  expect([...got.manifests.keys()].sort()).toEqual([...want.manifests.keys()].sort());
  for (const [key, bytes] of want.manifests) {
    const g = got.manifests.get(key);
    expect(g && sha256(g), `${key}: digest`).toBe(sha256(bytes));
    expect(g?.equals(bytes), `${key}: same bytes`).toBe(true);
    expect(got.headDigests.get(key), `${key}: HEAD Docker-Content-Digest`).toBe(sha256(bytes));
  }
}

/** Every pushed tag is there with the digest the content has (Docker conversions: any digest). */
function expectPlanServed(view: View, p: PushPlan): void {
  for (const img of p.images) {
    const key = `${img.repo}:${img.tag}`;
    const got = view.manifests.get(key);
    expect(got, key).toBeDefined();
    if (img.format === 'v2s2') {
      expect((JSON.parse(got?.toString('utf8') ?? '{}') as { mediaType?: string }).mediaType, key).toBe(MT.dockerManifest);
    } else {
      expect(got && sha256(got), key).toBe(img.top.manifest.digest);
      expect(got?.equals(img.top.manifest.bytes), `${key}: the layout's bytes`).toBe(true);
    }
  }
}

// ---- Pulling everything with skopeo ----

interface Pulled {
  /** `<repo>@<digest>` → the digest skopeo wrote into the layout's index.json for that pull. */
  readonly tops: Map<string, string>;
  /** Every blob (manifests, configs, layers) in the layout, sorted digests, each verified against its bytes. */
  readonly blobs: string[];
}

/**
 * `skopeo copy --all --preserve-digests docker://… oci:DIR:…` once per distinct manifest of the view
 * (by one of its tags), into one layout; then reads the layout back.
 */
async function pullAll(url: string, view: View, dir: string): Promise<Pulled> {
  await mkdir(dir, { recursive: true });
  const byDigest = new Map<string, { repo: string; tag: string }>();
  for (const [key, bytes] of view.manifests) {
    const at = key.lastIndexOf(':');
    const id = `${key.slice(0, at)}@${sha256(bytes)}`;
    if (!byDigest.has(id)) byDigest.set(id, { repo: key.slice(0, at), tag: key.slice(at + 1) });
  }
  const refOf = new Map<string, string>();
  let n = 0;
  for (const [id, { repo, tag }] of byDigest) {
    const ref = `pull${n++}`;
    refOf.set(ref, id);
    await skopeo(['copy', '-q', '--all', '--preserve-digests', '--src-tls-verify=false', imageRef(url, repo, tag), `oci:${dir}:${ref}`]);
  }
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const tops = new Map<string, string>();
  for (const m of index.manifests) {
    const id = refOf.get(m.annotations?.['org.opencontainers.image.ref.name'] ?? '');
    if (id !== undefined) tops.set(id, m.digest);
  }
  const blobs: string[] = [];
  for (const hex of await readdir(join(dir, 'blobs/sha256'))) {
    const digest = `sha256:${hex}`;
    expect(sha256(await readFile(join(dir, 'blobs/sha256', hex))), `pulled blob ${digest}`).toBe(digest);
    blobs.push(digest);
  }
  return { tops, blobs: blobs.sort() };
}

function expectPulledMatches(got: Pulled, want: Pulled, p: PushPlan): void {
  expect(got.tops).toEqual(want.tops);
  for (const [id, digest] of got.tops) expect(id.endsWith(`@${digest}`), id).toBe(true);
  expect(got.blobs).toEqual(want.blobs);
  // Everything pushed from the layouts (not converted) is there, blob for blob.
  for (const img of p.images) {
    if (img.format === 'v2s2') continue;
    for (const d of closure(img.top).keys()) expect(got.blobs, `${img.repo}:${img.tag} needs ${d}`).toContain(d);
  }
}

// ---- Artifacts, deletes, unfinished uploads ----

/** The artifact is served by digest (manifest bytes, its blobs) and skopeo inspects it. */
async function expectArtifactServed(url: string, a: ArtifactPush): Promise<void> {
  const m = await raw(url, 'GET', `/v2/${a.repo}/manifests/${a.artifact.manifest.digest}`, { headers: { Accept: MT.ociManifest } });
  expect(m.status, `${a.repo}@${a.artifact.manifest.digest}`).toBe(200);
  expect(m.header('Docker-Content-Digest')).toBe(a.artifact.manifest.digest);
  expect(m.body.equals(a.artifact.manifest.bytes)).toBe(true);
  expect((await skopeoInspectRaw(url, a.repo, a.artifact.manifest.digest)).equals(a.artifact.manifest.bytes)).toBe(true);
  for (const b of a.artifact.blobs) {
    const res = await raw(url, 'GET', `/v2/${a.repo}/blobs/${b.digest}`);
    expect(res.status, b.digest).toBe(200);
    expect(res.body.equals(b.bytes), `${b.digest}: same bytes`).toBe(true);
  }
}

/** Berth lists the artifact among the referrers of its subject. */
async function expectReferrer(url: string, a: ArtifactPush): Promise<void> {
  const res = await raw(url, 'GET', `/v2/${a.repo}/referrers/${a.artifact.subject.blob.digest}`);
  expect(res.status).toBe(200);
  expect(res.header('Content-Type')).toBe(MT.ociIndex);
  const doc = res.json() as { manifests: { digest: string; artifactType?: string; mediaType: string; size: number }[] };
  expect(doc.manifests).toContainEqual(
    expect.objectContaining({
      mediaType: MT.ociManifest,
      digest: a.artifact.manifest.digest,
      size: a.artifact.manifest.size,
      artifactType: a.artifact.artifactType,
    }),
  );
}

/** A manifest that was deleted by digest: no tag lists it, skopeo cannot inspect the tag, the digest is 404. */
async function expectDeleted(url: string, repo: string, tag: string, digest: string): Promise<void> {
  const tags = (await raw(url, 'GET', `/v2/${repo}/tags/list`)).json() as { tags: string[] };
  expect(tags.tags).not.toContain(tag);
  const inspect = await runTool(SKOPEO, ['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', imageRef(url, repo, tag)]);
  expect(inspect.code, 'skopeo inspect of a deleted tag fails').not.toBe(0);
  expect(inspect.stderr).toMatch(/manifest unknown/i);
  const byDigest = await raw(url, 'GET', `/v2/${repo}/manifests/${digest}`, { headers: { Accept: ACCEPT_ALL } });
  expect(byDigest.status).toBe(404);
  expect(errorCode(byDigest)).toBe('MANIFEST_UNKNOWN');
}

interface Unfinished {
  readonly repo: string;
  readonly bytes: Buffer;
  readonly sent: number;
  /** Path and query of the Location the server gave after the PATCH. */
  location: string;
  uuid: string;
}

/** POST + one PATCH of the first `sent` bytes, then nothing: an upload left unfinished. */
async function leaveUnfinished(url: string, u: Unfinished): Promise<void> {
  const post = await raw(url, 'POST', `/v2/${u.repo}/blobs/uploads/`);
  expect(post.status).toBe(202);
  const patch = await raw(url, 'PATCH', locationPath(post), {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${u.sent - 1}`, 'Content-Length': String(u.sent) },
    body: u.bytes.subarray(0, u.sent),
  });
  expect(patch.status, patch.body.toString()).toBe(202);
  expect(patch.header('Range')).toBe(`0-${u.sent - 1}`);
  u.location = locationPath(patch);
  u.uuid = patch.header('Docker-Upload-UUID') ?? '';
  expect(u.uuid).toMatch(/^[0-9a-f-]{36}$/);
  expect(u.location).toMatch(/[?&]_state=/);
}

/** Finishes an upload another server began, at the Location it gave: PATCH the rest, PUT ?digest= → 201. */
async function finishUnfinished(url: string, u: Unfinished): Promise<void> {
  const status = await raw(url, 'GET', u.location);
  expect(status.status, status.body.toString()).toBe(204);
  expect(status.header('Range')).toBe(`0-${u.sent - 1}`);
  const rest = u.bytes.subarray(u.sent);
  const patch = await raw(url, 'PATCH', u.location, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${u.sent}-${u.bytes.length - 1}`, 'Content-Length': String(rest.length) },
    body: rest,
  });
  expect(patch.status, patch.body.toString()).toBe(202);
  expect(patch.header('Range')).toBe(`0-${u.bytes.length - 1}`);
  const b = blob(u.bytes);
  const next = locationPath(patch);
  const put = await raw(url, 'PUT', `${next}${next.includes('?') ? '&' : '?'}digest=${encodeURIComponent(b.digest)}`, { headers: { 'Content-Length': '0' } });
  expect(put.status, put.body.toString()).toBe(201);
  expect(put.header('Docker-Content-Digest')).toBe(b.digest);
  const get = await raw(url, 'GET', `/v2/${u.repo}/blobs/${b.digest}`);
  expect(get.status).toBe(200);
  expect(get.body.equals(u.bytes)).toBe(true);
}

const uploadDirOf = (root: string, u: Unfinished): string => join(v2(root), uploadDir(u.repo, u.uuid));
const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
const entries = (p: string): Promise<string[]> => readdir(p).catch(() => []);

/**
 * registry:2 logs every 4xx answer at level=error (`response completed with error`, e.g. skopeo's HEAD
 * of a blob it is about to push): those are the client's errors, not the server's, so allowed here.
 */
const CLIENT_ERRORS = /msg="response completed with error" .*http\.response\.status=4\d\d /;

/** The URL of a server an earlier step started, or a failure saying that step did not get that far. */
function urlOf(server: { readonly url: string } | undefined, what: string): string {
  if (server === undefined) throw new Error(`${what} is not running: an earlier step of this sequence failed`);
  return server.url;
}

const rmAll = (dirs: readonly string[]): Promise<unknown> => Promise.all(dirs.filter((d) => d !== '').map((d) => rm(d, { recursive: true, force: true })));

// ---- The tests ----

describeWithTool('docker-registry, skopeo and rsync', migrationToolsAvailable(), 'migration with real clients (docker-registry 2.8.2, skopeo, rsync)', () => {
  describe('1. registry:2 → Berth', () => {
    const set = realisticSet(1000);
    const doomed = ociImage(1090);
    const resume: Unfinished = { repo: 'team/sub/service', bytes: randomBytesSeeded(5000, 11), sent: 2048, location: '', uuid: '' };
    const purge: Unfinished = { repo: 'team/sub/service', bytes: randomBytesSeeded(3000, 12), sent: 1000, location: '', uuid: '' };
    let work = '';
    let root = '';
    let copy = '';
    let layout = '';
    let reg: Registry2 | undefined;
    let berth: TestBerth | undefined;
    let before: View;
    let pulledBefore: Pulled;
    const regUrl = (): string => urlOf(reg, 'docker-registry');
    const berthUrl = (): string => urlOf(berth, 'Berth');

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-migration-1-'));
      root = join(work, 'registry2-root');
      copy = join(work, 'copy');
      layout = await layoutOf(join(work, 'layout'), set);
      await writeContentLayout(join(work, 'doomed'), [{ ref: 'doomed', top: doomed }]);
      reg = await startRegistry2({ root, secret: SECRET });
    });
    afterAll(async () => {
      await berth?.close();
      await reg?.close();
      await rmAll([work]);
    });

    it('registry:2 takes the set from skopeo (25 tags on library/app, an index with --all, a schema-2 conversion) and an artifact over HTTP', async () => {
      await pushPlan(regUrl(), layout, set);
      const view = await recordView(regUrl());
      expectPlanServed(view, set);
      expect(view.catalog).toEqual(['library/app', 'solo', 'team/sub/service']);
      expect(view.tagLists.get('library/app')).toHaveLength(25);
      expect(new Set([...view.manifests].filter(([k]) => k.startsWith('library/app:')).map(([, b]) => sha256(b))).size).toBe(5);
      for (const a of set.artifacts) await expectArtifactServed(regUrl(), a);
    });

    it('registry:2 2.8 refuses DELETE by tag (400 DIGEST_INVALID); DELETE by digest removes the manifest and its tag', async () => {
      await skopeoPush(regUrl(), join(work, 'doomed'), { repo: 'library/app', tag: '0.9.0-rc1', top: doomed, layoutRef: 'doomed' });
      const byTag = await raw(regUrl(), 'DELETE', '/v2/library/app/manifests/0.9.0-rc1');
      expect(byTag.status).toBe(400);
      expect(errorCode(byTag)).toBe('DIGEST_INVALID');
      const byDigest = await raw(regUrl(), 'DELETE', `/v2/library/app/manifests/${doomed.manifest.digest}`);
      expect(byDigest.status).toBe(202);
      await expectDeleted(regUrl(), 'library/app', '0.9.0-rc1', doomed.manifest.digest);
    });

    it('two uploads are left unfinished on registry:2 (POST + one PATCH each)', async () => {
      await leaveUnfinished(regUrl(), resume);
      await leaveUnfinished(regUrl(), purge);
      expect((await stat(join(uploadDirOf(root, purge), 'data'))).size).toBe(purge.sent);
    });

    it('registry:2 is recorded (catalog, tags, skopeo inspect --raw, skopeo copy --all), stopped, its root copied with rsync -a; Berth starts on the copy', async () => {
      before = await recordView(regUrl());
      pulledBefore = await pullAll(regUrl(), before, join(work, 'pull-registry2'));
      expectNoRegistry2Errors(reg as Registry2, [CLIENT_ERRORS]);
      await reg?.close();
      reg = undefined;
      await rsyncCopy(root, copy);
      expect(await exists(join(uploadDirOf(copy, resume), 'startedat'))).toBe(true);
      berth = await startBerth({ root: copy, secret: SECRET });
      expect((await raw(berthUrl(), 'GET', '/v2/')).status).toBe(200);
    });

    it('Berth answers the same catalog, tag lists and, for every tag, the same manifest bytes and digest (skopeo inspect --raw, HEAD)', async () => {
      const after = await recordView(berthUrl());
      expectSameView(after, before);
      expectPlanServed(after, set);
      for (const tags of after.tagLists.values()) expect(tags).toEqual(sorted(tags));
    });

    it('Berth pages the 25 tags of library/app (n=10: 10 + 10 + 5, Link to the next page) to the same list', async () => {
      const seen: string[] = [];
      let path: string | undefined = '/v2/library/app/tags/list?n=10';
      const pages: number[] = [];
      for (let i = 0; path !== undefined && i < 10; i++) {
        const res = await raw(berthUrl(), 'GET', path);
        expect(res.status).toBe(200);
        const page = (res.json() as { tags: string[] }).tags;
        pages.push(page.length);
        seen.push(...page);
        const link = res.header('Link');
        path = link === undefined ? undefined : /<([^>]+)>/.exec(link)?.[1];
      }
      expect(pages).toEqual([10, 10, 5]);
      expect(seen).toEqual(sorted(before.tagLists.get('library/app') ?? []));
    });

    it('skopeo copy --all pulls every image and index from Berth with the same digests and blobs as from registry:2', async () => {
      const pulled = await pullAll(berthUrl(), before, join(work, 'pull-berth'));
      expectPulledMatches(pulled, pulledBefore, set);
      expect(pulled.tops.size).toBe(8); // 5 app images, the index, solo's OCI image and its schema-2 twin
    });

    it('the artifact is served by digest with its bytes, and Berth lists it as a referrer of its subject', async () => {
      for (const a of set.artifacts) {
        await expectArtifactServed(berthUrl(), a);
        await expectReferrer(berthUrl(), a);
      }
    });

    it('the tag deleted on registry:2 stays deleted on Berth', async () => {
      await expectDeleted(berthUrl(), 'library/app', '0.9.0-rc1', doomed.manifest.digest);
    });

    it("an upload begun on registry:2 is finished on Berth at registry:2's Location: PATCH the rest, PUT → 201", async () => {
      await finishUnfinished(berthUrl(), resume);
      expect(await exists(uploadDirOf(copy, resume))).toBe(false);
    });

    it("the other is purged by the storage API (createRegistry over the copy, purgeUploads after its startedat); Berth then 404s it", async () => {
      const dir = uploadDirOf(copy, purge);
      const startedAt = new Date((await readFile(join(dir, 'startedat'), 'utf8')).trim());
      expect(Number.isNaN(startedAt.getTime())).toBe(false);
      const storage = createRegistry({ driver: createDriver({ kind: 'filesystem', root: copy }), deleteEnabled: true });
      const notYet = await storage.purgeUploads({ olderThan: startedAt, dryRun: false });
      expect(notYet.purged, 'a cut-off at startedat itself purges nothing').toEqual([]);
      const olderThan = new Date(startedAt.getTime() + 1000);
      const dry = await storage.purgeUploads({ olderThan, dryRun: true });
      expect(dry.purged).toHaveLength(1);
      expect(dry.purged[0]).toMatch(new RegExp(`/repositories/team/sub/service/_uploads/${purge.uuid}$`));
      expect(await exists(dir), 'a dry run removes nothing').toBe(true);
      const report = await storage.purgeUploads({ olderThan, dryRun: false });
      expect(report.purged).toEqual(dry.purged);
      expect(await exists(dir)).toBe(false);
      expect(await entries(join(v2(copy), uploadsDir('team/sub/service'))), 'no upload is left').toEqual([]);
      const res = await raw(berthUrl(), 'GET', purge.location);
      expect(res.status).toBe(404);
      expect(errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    });

    it('Berth logged no errors', () => {
      expect(berth?.errors).toEqual([]);
    });
  });

  describe('2. Berth → registry:2', () => {
    const set = realisticSet(2000);
    const doomed = ociImage(2090);
    const resume: Unfinished = { repo: 'library/app', bytes: randomBytesSeeded(6000, 21), sent: 2500, location: '', uuid: '' };
    let work = '';
    let root = '';
    let copy = '';
    let layout = '';
    let berth: TestBerth | undefined;
    let reg: Registry2 | undefined;
    let before: View;
    let pulledBefore: Pulled;
    let edgeDigest = '';
    const regUrl = (): string => urlOf(reg, 'docker-registry');
    const berthUrl = (): string => urlOf(berth, 'Berth');

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-migration-2-'));
      root = join(work, 'berth-root');
      copy = join(work, 'copy');
      layout = await layoutOf(join(work, 'layout'), set);
      await writeContentLayout(join(work, 'doomed'), [{ ref: 'doomed', top: doomed }]);
      await mkdir(root);
      berth = await startBerth({ root, secret: SECRET });
    });
    afterAll(async () => {
      await berth?.close();
      await reg?.close();
      await rmAll([work]);
    });

    it('Berth takes the same kind of set from skopeo and the artifact over HTTP, and lists it as a referrer', async () => {
      await pushPlan(berthUrl(), layout, set);
      const view = await recordView(berthUrl());
      expectPlanServed(view, set);
      expect(view.catalog).toEqual(['library/app', 'solo', 'team/sub/service']);
      expect(view.tagLists.get('library/app')).toHaveLength(25);
      for (const a of set.artifacts) {
        await expectArtifactServed(berthUrl(), a);
        await expectReferrer(berthUrl(), a);
      }
    });

    it('on Berth a manifest is deleted by digest (its tag goes), and a tag sharing a manifest is deleted by tag (the manifest stays)', async () => {
      await skopeoPush(berthUrl(), join(work, 'doomed'), { repo: 'library/app', tag: '0.9.0-rc1', top: doomed, layoutRef: 'doomed' });
      const byDigest = await raw(berthUrl(), 'DELETE', `/v2/library/app/manifests/${doomed.manifest.digest}`);
      expect(byDigest.status).toBe(202);
      await expectDeleted(berthUrl(), 'library/app', '0.9.0-rc1', doomed.manifest.digest);
      edgeDigest = sha256(await skopeoInspectRaw(berthUrl(), 'library/app', 'edge'));
      const byTag = await raw(berthUrl(), 'DELETE', '/v2/library/app/manifests/edge');
      expect(byTag.status).toBe(202);
      expect(((await raw(berthUrl(), 'GET', '/v2/library/app/tags/list')).json() as { tags: string[] }).tags).toHaveLength(24);
      expect(sha256(await skopeoInspectRaw(berthUrl(), 'library/app', 'latest'))).toBe(edgeDigest);
    });

    it('an upload is left unfinished on Berth (POST + one PATCH)', async () => {
      await leaveUnfinished(berthUrl(), resume);
      expect(await readFile(join(uploadDirOf(root, resume), 'startedat'), 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    });

    it('Berth is recorded, stopped, its root copied with rsync -a; registry:2 starts on the copy with the same http.secret', async () => {
      before = await recordView(berthUrl());
      pulledBefore = await pullAll(berthUrl(), before, join(work, 'pull-berth'));
      expect(berth?.errors).toEqual([]);
      await berth?.close();
      berth = undefined;
      await rsyncCopy(root, copy);
      reg = await startRegistry2({ root: copy, secret: SECRET });
    });

    it('registry:2 answers the same catalog, tag lists and, for every tag, the same manifest bytes and digest', async () => {
      const after = await recordView(regUrl());
      expectSameView(after, before);
      expect(after.tagLists.get('library/app')).toHaveLength(24);
      expect(after.tagLists.get('library/app')).not.toContain('edge');
    });

    it('skopeo copy --all pulls every image and index from registry:2 with the same digests and blobs as from Berth', async () => {
      const pulled = await pullAll(regUrl(), before, join(work, 'pull-registry2'));
      expectPulledMatches(pulled, pulledBefore, set);
      expect(pulled.tops.size).toBe(8);
    });

    it('the artifact is still fetchable by digest on registry:2 (which has no referrers API: 404)', async () => {
      for (const a of set.artifacts) {
        await expectArtifactServed(regUrl(), a);
        expect((await raw(regUrl(), 'GET', `/v2/${a.repo}/referrers/${a.artifact.subject.blob.digest}`)).status).toBe(404);
      }
    });

    it('deletes made on Berth hold on registry:2: the digest-deleted manifest is gone, the tag-deleted manifest is still served by digest', async () => {
      await expectDeleted(regUrl(), 'library/app', '0.9.0-rc1', doomed.manifest.digest);
      const edge = await raw(regUrl(), 'GET', `/v2/library/app/manifests/${edgeDigest}`, { headers: { Accept: ACCEPT_ALL } });
      expect(edge.status).toBe(200);
      expect(sha256(edge.body)).toBe(edgeDigest);
    });

    it("an upload begun on Berth is finished on registry:2 at Berth's Location: PATCH the rest, PUT → 201", async () => {
      await finishUnfinished(regUrl(), resume);
      expectNoRegistry2Errors(reg as Registry2, [CLIENT_ERRORS]);
    });
  });

  describe('3. round trip registry:2 → Berth → registry:2, with pushes on each side', () => {
    // Phase A on registry:2, B on Berth after the first move, C on registry:2 after the second.
    const a = plan();
    const aImage = ociImage(3000, { layerCount: 2 });
    const aIndex = twoPlatformIndex(3010);
    a.add('library/app', ['a1', 'latest'], aImage);
    a.add('team/sub/service', ['multi-a'], aIndex);
    const aOld = ociImage(3030);
    a.add('library/app', ['old'], aOld); // deleted by digest on Berth in phase B
    a.artifact('team/sub/service', artifactFor(asStored(aIndex.images[1] as ImageContent), 3020));
    const b = plan();
    const bImage = ociImage(3100);
    const bIndex = twoPlatformIndex(3110);
    b.add('library/app', ['b1', 'latest'], bImage); // moves latest
    b.add('berth/only', ['1'], bIndex);
    b.artifact('library/app', artifactFor(asStored(bImage), 3120));
    const c = plan();
    const cImage = ociImage(3200, { layerCount: 3 });
    c.add('library/app', ['c1'], cImage);
    c.add('solo', ['c'], cImage);
    let work = '';
    // One variable per server, so a step that fails half-way never leaves one running unseen.
    let regA: Registry2 | undefined;
    let berthB: TestBerth | undefined;
    let regC: Registry2 | undefined;
    const done = { a: false, b: false };
    const after = (step: keyof typeof done): void => {
      if (!done[step]) throw new Error(`step ${step.toUpperCase()} did not complete, so this one cannot run`);
    };
    const roots = { a: '', b: '', c: '' };
    /** `<repo>:<tag>` → digest, as each phase left it. */
    const expected = new Map<string, string>();
    const expectTags = (p: PushPlan): void => {
      for (const img of p.images) expected.set(`${img.repo}:${img.tag}`, img.top.manifest.digest);
    };
    const all = [a, b, c];

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-migration-3-'));
      roots.a = join(work, 'a');
      roots.b = join(work, 'b');
      roots.c = join(work, 'c');
      await Promise.all([layoutOf(join(work, 'layout-a'), a), layoutOf(join(work, 'layout-b'), b), layoutOf(join(work, 'layout-c'), c)]);
    });
    afterAll(async () => {
      await regA?.close();
      await berthB?.close();
      await regC?.close();
      await rmAll([work]);
    });

    it('A: pushed to registry:2; stopped, rsync -a', async () => {
      const reg = (regA = await startRegistry2({ root: roots.a, secret: SECRET }));
      await pushPlan(reg.url, join(work, 'layout-a'), a);
      expectTags(a);
      expectPlanServed(await recordView(reg.url), a);
      expectNoRegistry2Errors(reg, [CLIENT_ERRORS]);
      await reg.close();
      regA = undefined;
      await rsyncCopy(roots.a, roots.b);
      done.a = true;
    });

    it('B: Berth on the copy serves A, takes new pushes (a new repository, a moved tag, a retag by skopeo, an artifact), deletes one of A; stopped, rsync -a', async () => {
      after('a');
      const berth = (berthB = await startBerth({ root: roots.b, secret: SECRET }));
      const url = berth.url;
      expect(digestsByTag(await recordView(url))).toEqual(expected);
      await pushPlan(url, join(work, 'layout-b'), b);
      expectTags(b);
      await skopeoRetag(url, 'team/sub/service', 'multi-a', 'multi-a-again');
      expected.set('team/sub/service:multi-a-again', aIndex.manifest.digest);
      expect((await raw(url, 'DELETE', `/v2/library/app/manifests/${aOld.manifest.digest}`)).status).toBe(202);
      expected.delete('library/app:old');
      await expectDeleted(url, 'library/app', 'old', aOld.manifest.digest);
      expect(digestsByTag(await recordView(url))).toEqual(expected);
      for (const p of [a, b]) for (const art of p.artifacts) await expectReferrer(url, art);
      expect(berth.errors).toEqual([]);
      await berth.close();
      berthB = undefined;
      await rsyncCopy(roots.b, roots.c);
      done.b = true;
    });

    it('C: registry:2 on the second copy takes more pushes; everything from A, B and C pulls from it with identical digests', async () => {
      after('b');
      const reg = (regC = await startRegistry2({ root: roots.c, secret: SECRET }));
      await pushPlan(reg.url, join(work, 'layout-c'), c);
      expectTags(c);
      const view = await recordView(reg.url);
      expect(view.catalog).toEqual(['berth/only', 'library/app', 'solo', 'team/sub/service']);
      expect(digestsByTag(view)).toEqual(expected);
      expect(expected.get('library/app:latest')).toBe(bImage.manifest.digest);
      await expectDeleted(reg.url, 'library/app', 'old', aOld.manifest.digest);
      const pulled = await pullAll(reg.url, view, join(work, 'pull-c'));
      for (const [key, digest] of expected) {
        const repo = key.slice(0, key.lastIndexOf(':'));
        expect(pulled.tops.get(`${repo}@${digest}`), key).toBe(digest);
      }
      for (const p of all) {
        for (const img of p.images) {
          if (img.top === aOld) continue;
          for (const d of closure(img.top).keys()) expect(pulled.blobs, `${img.repo}:${img.tag} needs ${d}`).toContain(d);
        }
        for (const art of p.artifacts) await expectArtifactServed(reg.url, art);
      }
      expectNoRegistry2Errors(reg, [CLIENT_ERRORS]);
    });
  });
});
