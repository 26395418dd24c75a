/**
 * The collector against a busy registry: a real Berth, many clients pushing for a bounded time while
 * the collector runs back to back with a grace period of 0 or 50 ms, so the link gate, not the grace
 * period, carries the safety. The clients:
 *
 *   - tracked pushers: images with a unique config and layers that already exist in the store as
 *     garbage (orphans written ahead of time, as a deleted image leaves them), so the upload commit that
 *     finds its blob present and only links it races with the sweep deleting that very blob; some mount
 *     their blobs from another repository; some re-push an earlier manifest whose layers exist; some are
 *     slow between their last upload and the manifest PUT;
 *   - churn: images pushed and deleted again, so there is always garbage;
 *   - the sweep chaser: the moment a run has listed what it will delete, it uploads orphans from that
 *     list as the layers of an image, waits a second (a slow client), and PUTs the manifest. The store
 *     starts with a few hundred orphans, so the first run's deletions overlap the chaser's uploads.
 *
 * What must hold:
 *   - every manifest the registry acknowledged (201) pulls completely afterwards: the manifest and
 *     every blob answer 200 with the right digest;
 *   - a push is refused (MANIFEST_BLOB_UNKNOWN) only when the blob it lacks was deleted by a run that
 *     began after the client started getting that blob into the repository: what a client links while
 *     a run is already going must survive that run. Bypass the gate in a link operation (e.g. the upload
 *     commit in uploads.ts publish) and this fails.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage } from '../src/gc/run.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, v2 } from './helpers/layout.js';
import { type Blob, MT, blob, descriptor, manifestBlob, randomBytesSeeded } from './helpers/oci.js';

/** Clients push for at least this long, and until MIN_RUNS collections have run among them. */
const PUSH_MS = 10_000;
/** The fewest collections that must run while clients push (on a slow machine the window grows to reach it). */
const MIN_RUNS = 3;
/** The window never grows past this, so a collector that cannot finish 3 runs fails the test instead of hanging it. */
const PUSH_MS_MAX = 45_000;
const TRACKED_CLIENTS = 4;
const CHURN_CLIENTS = 2;
const TRACKED_REPOS = ['track/a', 'track/b', 'track/c'];
/** Each tracked client's layers change every GENERATION_MS; the next generation is written ahead as orphans. */
const GENERATION_MS = 300;
const LAYERS_PER_IMAGE = 3;
/** Orphans in the store before the pushing starts: the first runs have a long list to delete. */
const JUNK_AT_START = 200;
/** Layers of the sweep chaser's image: orphans the run it chases is about to delete. */
const CHASED_LAYERS = 10;
const CONFIG_POOL: Blob[] = Array.from({ length: 4 }, (_, i) => blob(JSON.stringify({ pool: i, os: 'linux' })));

let berth: TestBerth;
beforeAll(async () => {
  berth = await startBerth();
});
afterAll(async () => {
  await berth.close();
});

let epoch = 0;
const generationNow = (): number => Math.floor((Date.now() - epoch) / GENERATION_MS);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const layers = new Map<string, Blob>();
/** Layer `j` of tracked client `client` in `generation`. */
function layerOf(client: number, generation: number, j: number): Blob {
  const key = `${client}/${generation}/${j}`;
  let b = layers.get(key);
  if (!b) {
    b = blob(randomBytesSeeded(2048 + j * 97, 1 + client * 100_000 + generation * 10 + j));
    layers.set(key, b);
  }
  return b;
}

/**
 * Writes a blob straight into the tree with no link anywhere: an orphan, as a deleted image leaves it.
 * Synchronously, so the writer keeps up however busy the I/O threads are.
 */
function writeOrphan(b: Blob): void {
  const path = join(v2(berth.root), blobData(b.digest));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, b.bytes);
}

interface Image {
  readonly repo: string;
  readonly tag: string;
  readonly manifest: Blob;
  readonly blobs: readonly Blob[];
}

interface Attempt {
  readonly outcome: 'acked' | 'refused';
  readonly image: Image;
  /** Refused: the blob the registry found missing, and when the client began getting it into the repository. */
  readonly missing?: { readonly digest: string; readonly since: number };
}

function imageOf(repo: string, tag: string, config: Blob, layerBlobs: readonly Blob[]): Image {
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: descriptor(MT.ociConfig, config),
    layers: layerBlobs.map((l) => descriptor(MT.ociLayer, l)),
  });
  return { repo, tag, manifest, blobs: [config, ...layerBlobs] };
}

function request(method: string, path: string, init: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(`${berth.url}${path}`, { method, ...(init.body && { body: init.body }), ...(init.headers && { headers: init.headers }) });
}

/** Gets `b` into `repo`: already there (HEAD), mounted from `from`, or uploaded. */
async function ensureBlob(repo: string, b: Blob, from: string | undefined): Promise<void> {
  const head = await request('HEAD', `/v2/${repo}/blobs/${b.digest}`);
  if (head.status === 200) return;
  if (from !== undefined) {
    const mount = await request('POST', `/v2/${repo}/blobs/uploads/?mount=${b.digest}&from=${from}`);
    await mount.arrayBuffer();
    if (mount.status === 201) return;
    if (mount.status !== 202) throw new Error(`mount ${b.digest} into ${repo}: ${mount.status}`);
  }
  const put = await request('POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
    body: b.bytes,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`upload ${b.digest} into ${repo}: ${put.status} ${text}`);
}

/** Pushes an image (waiting `pauseMs` before the manifest); answers whether the registry acknowledged it. */
async function push(image: Image, opts: { from?: string; pauseMs?: number; parallel?: boolean } = {}): Promise<Attempt> {
  const since = new Map<string, number>();
  const ensure = async (b: Blob): Promise<void> => {
    since.set(b.digest, Date.now());
    await ensureBlob(image.repo, b, opts.from);
  };
  if (opts.parallel) await Promise.all(image.blobs.map(ensure));
  else for (const b of image.blobs) await ensure(b);
  if (opts.pauseMs) await sleep(opts.pauseMs);
  const res = await request('PUT', `/v2/${image.repo}/manifests/${image.tag}`, {
    body: image.manifest.bytes,
    headers: { 'Content-Type': MT.ociManifest },
  });
  const text = await res.text();
  if (res.status === 201) return { outcome: 'acked', image };
  if (res.status === 400 && text.includes('MANIFEST_BLOB_UNKNOWN')) {
    const digest = String((JSON.parse(text) as { errors: { detail?: { digest?: string } }[] }).errors[0]?.detail?.digest);
    return { outcome: 'refused', image, missing: { digest, since: since.get(digest) ?? Number.NaN } };
  }
  throw new Error(`PUT manifest ${image.repo}:${image.tag}: ${res.status} ${text}`);
}

async function trackedClient(id: number, pushing: () => boolean, attempts: Attempt[]): Promise<void> {
  const mine: Image[] = [];
  for (let n = 0; pushing(); n++) {
    const repo = TRACKED_REPOS[(id + n) % TRACKED_REPOS.length]!;
    if (n % 5 === 4 && mine.length > 0) {
      // A manifest whose layers already exist: an earlier image of ours under a new tag.
      const earlier = mine[n % mine.length]!;
      attempts.push(await push({ ...earlier, tag: `c${id}-again-${n}` }));
      continue;
    }
    const g = generationNow();
    const config = blob(JSON.stringify({ client: id, n, os: 'linux' }));
    const image = imageOf(repo, `c${id}-${n}`, config, Array.from({ length: LAYERS_PER_IMAGE }, (_, j) => layerOf(id, g, j)));
    const from = n % 3 === 1 ? TRACKED_REPOS[(id + n + 1) % TRACKED_REPOS.length] : undefined;
    const attempt = await push(image, { ...(from && { from }), pauseMs: n % 2 === 0 ? 100 : 0 });
    attempts.push(attempt);
    if (attempt.outcome === 'acked') mine.push(image);
  }
}

async function churnClient(id: number, pushing: () => boolean): Promise<void> {
  const repo = `churn/c${id}`;
  for (let n = 0; pushing(); n++) {
    const image = imageOf(repo, `t${n}`, CONFIG_POOL[n % CONFIG_POOL.length]!, [blob(`churn ${id} ${n}`)]);
    const attempt = await push(image);
    if (attempt.outcome === 'acked') {
      const del = await request('DELETE', `/v2/${repo}/manifests/${image.manifest.digest}`);
      await del.arrayBuffer();
    }
  }
}

/** Junk orphans written so far, with when (oldest first): what a run that began later finds eligible. */
const junk: { readonly blob: Blob; readonly at: number }[] = [];

function writeJunk(prefix: string, count: number): void {
  for (let i = 0; i < count; i++) {
    const b = blob(`junk ${prefix} ${i}`);
    writeOrphan(b);
    junk.push({ blob: b, at: Date.now() });
  }
}

/** Writes every tracked client's next-generation layers as orphans ahead of time. */
async function orphanWriter(pushing: () => boolean): Promise<void> {
  let seeded = -1;
  for (let round = 0; pushing(); round++) {
    const next = generationNow() + 1;
    if (next > seeded) {
      for (let g = Math.max(seeded + 1, 0); g <= next; g++) {
        for (let c = 0; c < TRACKED_CLIENTS; c++) for (let j = 0; j < LAYERS_PER_IMAGE; j++) writeOrphan(layerOf(c, g, j));
      }
      seeded = next;
    }
    await sleep(50);
  }
}

interface Runs {
  /** Every blob a run deleted, with when that run began. */
  readonly deletions: { readonly digest: string; readonly runStart: number }[];
  swept: number;
  count: number;
}

/**
 * The sweep chaser: the moment a run has listed what it will delete, push an image whose layers are
 * orphans that run listed (written before it began) while it is deleting them.
 */
function chase(run: { start: number; previousListing: number }, n: number, attempts: Attempt[], pending: Promise<void>[]): void {
  // Written after the previous run listed the store (so no earlier run deleted them) and older than any grace.
  const eligible = junk.filter((j) => j.at > run.previousListing && j.at < run.start - 60);
  if (eligible.length < CHASED_LAYERS) return;
  const picked = Array.from({ length: CHASED_LAYERS }, (_, i) => eligible[Math.floor((i * eligible.length) / CHASED_LAYERS)]!.blob);
  const image = imageOf('chase/app', `run${n}`, blob(JSON.stringify({ chase: n })), picked);
  pending.push(push(image, { pauseMs: 1_000, parallel: true }).then((a) => void attempts.push(a)));
}

async function collectorLoop(pushing: () => boolean, runs: Runs, attempts: Attempt[]): Promise<void> {
  const chasing: Promise<void>[] = [];
  let previousListing = 0;
  while (pushing()) {
    let started: number | undefined;
    const report = await collectGarbage(berth.registry, {
      graceMs: runs.count % 2 === 0 ? 0 : 50,
      deleteUntagged: false,
      dryRun: false,
      now: () => {
        const t = Date.now();
        started ??= t;
        return t;
      },
      onEvent: (e) => {
        if (e.type === 'blob-deleted') runs.deletions.push({ digest: e.digest, runStart: started ?? Number.NaN });
        if (e.type === 'summary' && started !== undefined) {
          chase({ start: started, previousListing }, runs.count, attempts, chasing);
          previousListing = Date.now();
        }
      },
    });
    runs.count += 1;
    runs.swept += report.swept;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(chasing);
}

async function pullProblems(image: Image): Promise<string[]> {
  const problems: string[] = [];
  const m = await request('GET', `/v2/${image.repo}/manifests/${image.tag}`, { headers: { Accept: MT.ociManifest } });
  const body = Buffer.from(await m.arrayBuffer());
  if (m.status !== 200 || sha256(body) !== image.manifest.digest) problems.push(`${image.repo}:${image.tag} manifest: ${m.status}`);
  for (const b of image.blobs) {
    const res = await request('GET', `/v2/${image.repo}/blobs/${b.digest}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || sha256(bytes) !== b.digest) problems.push(`${image.repo}:${image.tag} blob ${b.digest}: ${res.status}`);
  }
  return problems;
}

describe('garbage collection while clients push', () => {
  it('never loses a blob of an acknowledged manifest, and refuses a push only when a later run deleted its blob', async () => {
    writeJunk('start', JUNK_AT_START);
    await sleep(100); // older than any grace period
    epoch = Date.now();
    const runs: Runs = { deletions: [], swept: 0, count: 0 };
    // Open until PUSH_MS have passed and MIN_RUNS collections have finished (at most PUSH_MS_MAX).
    const pushing = (): boolean =>
      Date.now() < epoch + PUSH_MS_MAX && (Date.now() < epoch + PUSH_MS || runs.count < MIN_RUNS);
    const attempts: Attempt[] = [];
    await Promise.all([
      ...Array.from({ length: TRACKED_CLIENTS }, (_, i) => trackedClient(i, pushing, attempts)),
      ...Array.from({ length: CHURN_CLIENTS }, (_, i) => churnClient(i, pushing)),
      orphanWriter(pushing),
      collectorLoop(pushing, runs, attempts),
    ]);
    // One more collection with nobody pushing: what is acknowledged must survive it too.
    await collectGarbage(berth.registry, { graceMs: 0, deleteUntagged: false, dryRun: false });

    const acked = attempts.filter((a) => a.outcome === 'acked');
    const refused = attempts.filter((a) => a.outcome === 'refused');
    // A refusal is fair only if a run that began after the client started linking the blob deleted it.
    const unexplained = refused.filter(
      (a) => !runs.deletions.some((d) => d.digest === a.missing?.digest && d.runStart >= a.missing.since),
    );
    console.log(
      `gc race: ${runs.count} collections swept ${runs.swept} blobs; ${acked.length} pushes acknowledged, ` +
        `${refused.length - unexplained.length} refused fairly (a run that began later deleted a blob), ${unexplained.length} unfairly`,
    );
    expect(runs.count).toBeGreaterThanOrEqual(MIN_RUNS);
    expect(runs.swept).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(20);
    expect(unexplained.map((a) => `${a.image.repo}:${a.image.tag} lost ${a.missing?.digest ?? '?'}`)).toEqual([]);
    const problems: string[] = [];
    for (const a of acked) problems.push(...(await pullProblems(a.image)));
    expect(problems).toEqual([]);
    expect(berth.errors).toEqual([]);
  }, 60_000);
});
