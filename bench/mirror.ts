/**
 * Scenario family `mirror` (issue #13): cold and warm pulls of a 3-layer image of about `image-mb` MB
 * through Berth's pull-through cache (`proxy.upstreams`, docker.io the default upstream) and through
 * registry:2's own proxy mode (`proxy.remoteurl`), both mirroring the same upstream: a docker-registry
 * 2.8 behind a counting reverse proxy on loopback (test/helpers/mirror-clients.ts), which also gives the number
 * of requests each mirror made upstream.
 *
 * Each round seeds a new image (new digests) into the upstream, untimed; then each mirror in turn (the
 * order alternating) is pulled from cold (nothing cached: every blob comes through it from the
 * upstream), again as soon as that pull ended (the mirror may still be writing the image to its
 * cache), and warm once its root links every blob of the image (everything cached; both mirrors keep
 * registry:2's layout, so the bench looks for the same link files in each). A pull is what a client does:
 * the manifest by tag (node:http, keep-alive), then the config and the three layers in parallel, each
 * hashed with sha256 as it arrives and checked (skopeo tops out near 150 MB/s here, which would measure
 * skopeo). The blob GETs go through bench/lib/blob-client.ts, which reads each keep-alive connection
 * into one reused 1 MiB buffer: the same client for both mirrors, and cheaper than the node:http
 * streams this bench used before (the same 50 MB from a memory server: 75 against 128 ms in a probe),
 * whose cost had been most of a warm pull (the warm pull is also timed with that earlier client, a row
 * of its own). Each round also times the client's floor (the warm pull's blobs
 * from a Node server in another process sending them from memory, with both clients) and the same pull
 * straight from the upstream, and the notes give the load average (the machine is shared). Both mirrors keep their defaults for re-checking a tag: registry:2 asks the upstream on every pull
 * by tag, Berth at most every `revalidate` (30 s by default).
 *
 * Hashing 50 MB costs the client about 28 ms of CPU on the same 2 cores the servers use, so the hashed
 * lines measure the client as much as the servers (their floor, 54-84 ms, is above 2× registry:2's warm
 * pull). The servers' lines take the blobs without hashing: the same client counting each body against
 * the size the manifest gave (`counted`, a warm and a cold line, the cold one on a second image of the
 * same sizes each round), and one curl process GETting them in parallel into /dev/null (`curl`, warm: an
 * independent client; curl's --parallel runs every transfer in one thread and its start is timed, so
 * its floor is higher). Each has its own floor line from the memory server. The warm target (2×) is
 * judged on the counted line.
 *
 * Before each timed pull (but the one right after the cold pull) the client's own garbage is collected
 * (`client-gc` 1, the default): the client's major GC otherwise ran during most warm pulls, its marking
 * threads taking 20-55 ms of CPU on the cores the servers use (issue #13; bench/README).
 */
import { spawn } from 'node:child_process';
import { access, mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { type CountingProxy, type MirrorImage, type PullResult, mirrorImage, pullOverHttp, seedUpstream, startCountingProxy } from '../test/helpers/mirror-clients.js';
import { BlobClient, IDLE_CLOSE_MS } from './lib/blob-client.js';
import { curlBlobs } from './lib/curl-blobs.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, atLeastFor, formatValue, median, timed } from './lib/report.js';
import { type Snapshot, between, formatWindow, snapshot } from './lib/sched-trace.js';
import { type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';

/**
 * MIRROR_TRACE=1 (diagnostics, issue #13): Berth runs with `--trace-gc`, and around each warm counted
 * pull and its floor the log gets a `trace` line: each blob GET's headers and last byte (ms from the
 * pull's start), Berth's GC lines during the pull, and who had the cores (lib/sched-trace.ts: per thread
 * group, ms on a CPU and ms waiting for one; disk writes; dirty pages). The snapshots are taken outside
 * the timed pulls but cost 10-30 ms each, so a traced run's figures are not for the results.
 */
const TRACE = process.env['MIRROR_TRACE'] === '1';

/**
 * A full garbage collection of this process (the client), for `client-gc`: V8's `gc()` without starting
 * Node with --expose-gc (the flag set at run time, the function taken from a new context).
 */
function collectClientGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** This process's own GCs (the client's), when tracing: start (performance.now()), duration, kind. */
const benchGcs: Array<{ start: number; ms: number; kind: number }> = [];
if (TRACE) new PerformanceObserver((list) => {
  for (const e of list.getEntries()) benchGcs.push({ start: e.startTime, ms: e.duration, kind: ((e as { detail?: { kind?: number } }).detail?.kind ?? 0) });
}).observe({ entryTypes: ['gc'] });

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const SHARES = [0.5, 0.3, 0.2] as const;

interface Counts {
  cold: number[];
  warm: number[];
}

/** Starts the upstream, its counting proxy and both mirrors of it (each pushed to `running` as it starts). */
async function startAll(work: string, ctx: RunContext, running: Running[]): Promise<{ upstream: Running; proxy: CountingProxy; url: Record<Target, string>; root: Record<Target, string>; pids: Map<number, string>; gcLines: string[] }> {
  const upstreamConf = join(work, 'upstream-conf');
  await mkdir(upstreamConf);
  const upstream = await startRegistry2(join(work, 'upstream'), upstreamConf);
  running.push(upstream);
  const proxy = await startCountingProxy(upstream.url);
  const berth = await startBerth(join(work, 'berth'), work, {
    command: ctx.berth,
    level: 'warn',
    nodeFlags: [...profileFlags(ctx, 'mirror'), ...(TRACE ? ['--trace-gc'] : [])],
    sections: ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${proxy.url}`, '      default: true', '      hosts: [docker.io, index.docker.io]'],
  });
  running.push(berth);
  const reg = await startRegistry2(join(work, 'registry2'), work, 30_000, ['proxy:', `  remoteurl: ${proxy.url}`]);
  running.push(reg);
  const pids = new Map([[berth.server.pid, 'berth'], [reg.server.pid, 'registry2'], [upstream.server.pid, 'upstream'], [process.pid, 'bench']]);
  const gcLines: string[] = [];
  if (TRACE) berth.server.onOutput((chunk) => gcLines.push(...chunk.split('\n').filter((l) => / ms: (Scavenge|Mark|Minor)/.test(l))));
  return { upstream, proxy, url: { berth: berth.url, registry2: reg.url }, root: { berth: join(work, 'berth'), registry2: join(work, 'registry2') }, pids, gcLines };
}

/**
 * How a pull GETs its blobs: `hashed`, each sha256-checked as it arrives (what docker and containerd
 * do); `counted`, the same client counting the bytes against the manifest's sizes without hashing;
 * `curl`, one curl process GETting them all in parallel into /dev/null, status and sizes checked. The
 * last two leave the cores to the servers: their times measure the servers.
 */
type BlobWay = 'hashed' | 'counted' | 'curl';

/** A pull of `repo:1` from `base` with the bench's client, its blobs GOT `way`. */
function pull(b: Bench, base: string, repo: string, way: BlobWay = 'hashed'): Promise<PullResult> {
  if (way === 'curl') return pullOverHttp(base, repo, '1', { agent: b.agent, getBlobs: curlBlobs });
  const getBlob = way === 'hashed' ? (url: string, digest: string) => b.blobs.blob(url, digest) : (url: string, _digest: string, size: number) => b.blobs.length(url, size);
  return pullOverHttp(base, repo, '1', { agent: b.agent, getBlob });
}

/** A node:http GET of `url`, its body streamed through sha256 (the bench's earlier client, for the floor line). */
function hashOverNodeHttp(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      res.on('end', () => {
        hash.digest();
        resolve(size);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts a Node server in another process that answers `GET /<n>` with the first n of `bytes` random
 * bytes, from memory (the least any server can cost a client). @returns its URL and how to stop it
 */
async function startMemoryServer(bytes: number): Promise<{ url: string; pid: number | undefined; stop(): void }> {
  const script = `const h=require('node:http');const b=require('node:crypto').randomBytes(${Math.ceil(bytes)});` +
    `const s=h.createServer((q,r)=>{const n=Number(q.url.slice(1));r.writeHead(200,{'Content-Length':n});r.end(b.subarray(0,n));});` +
    `s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the memory server exited (${String(code)})`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid, stop: () => void child.kill() };
}

/** The blobs of `m`'s image (config and layers, same sizes) from the memory server, in parallel, by `get`: the client's floor. */
async function floorPull(b: Bench, m: MirrorImage, get: (url: string, size: number) => Promise<number>, settle = true): Promise<number> {
  const sizes = [m.image.config, ...m.image.layers.map((l) => l.gzip)].map((blob) => blob.size);
  if (settle) await b.settle(); // not when a tracedPull around it did
  const t = await timed(() => Promise.all(sizes.map((n) => get(`${b.memory}/${n}`, n))));
  return t.ms;
}

/** The same floor for curl: one curl GETting the same sizes from the memory server. */
async function floorCurl(b: Bench, m: MirrorImage): Promise<number> {
  const blobs = [m.image.config, ...m.image.layers.map((l) => l.gzip)].map((blob) => ({ url: `${b.memory}/${blob.size}`, digest: blob.digest, size: blob.size }));
  await b.settle();
  const t = await timed(() => curlBlobs(blobs));
  return t.ms;
}

function imageOf(seed: number, bytes: number): MirrorImage {
  const [a, b, c] = SHARES.map((s) => Math.round(bytes * s));
  return mirrorImage(`bench-${seed}`, [a ?? 0, b ?? 0, c ?? 0], seed);
}

function total(proxy: CountingProxy): number {
  let n = 0;
  for (const v of proxy.counts().values()) n += v;
  return n;
}

/** One run's servers, client and what it measured. */
interface Bench {
  readonly ctx: RunContext;
  readonly proxy: CountingProxy;
  readonly upstream: string;
  readonly url: Record<Target, string>;
  /** Each mirror's storage root (both in registry:2's layout). */
  readonly root: Record<Target, string>;
  readonly agent: Agent;
  /** The client's blob GETs (bench/lib/blob-client.ts). */
  readonly blobs: BlobClient;
  /** A server in another process sending blobs of any size from memory: the client's floor. */
  readonly memory: string;
  readonly cold: Record<Target, number[]>;
  /** The same pull again once the mirror's root holds every blob of it, linked. */
  readonly warm: Record<Target, number[]>;
  /** The same pull again as soon as the cold one ended (the mirror may still be writing the image to its cache). */
  readonly again: Record<Target, number[]>;
  readonly counts: Record<Target, Counts>;
  readonly failures: string[];
  /** The same pull straight from the upstream (no mirror): what the client and machine allow. */
  readonly direct: number[];
  /** The warm pull's blobs (same sizes, in parallel, hashed) from the memory server: the least this client can take. */
  readonly floor: number[];
  /** The same with bench's earlier client (node:http streams): its floor. */
  readonly floorNodeHttp: number[];
  /** The same blobs counted, not hashed (`BlobClient.length`): that line's floor. */
  readonly floorCounted: number[];
  /** The same blobs through one curl: that line's floor. */
  readonly floorCurl: number[];
  /** Warm pulls whose blobs were counted, not hashed (`counted`), and through curl, per side: the servers' lines. */
  readonly warmCounted: Record<Target, number[]>;
  readonly warmCurl: Record<Target, number[]>;
  /** A cold pull of a second image per round, its blobs counted, not hashed. */
  readonly coldCounted: Record<Target, number[]>;
  /** The warm pull with the earlier client, per side, for comparison with earlier results. */
  readonly warmNodeHttp: Record<Target, number[]>;
  readonly load: readonly string[];
  /** Processes named in trace lines (pid → label) and Berth's GC lines so far (MIRROR_TRACE). */
  readonly pids: ReadonlyMap<number, string>;
  readonly gcLines: string[];
  /** Before a timed pull: with `client-gc` 1, collects this process's garbage (see the family's doc); else nothing. */
  settle(): Promise<void>;
}

/** `fn` timed, after `b.settle()` (the client's garbage collected, with `client-gc`). */
async function settledTimed<T>(b: Bench, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  await b.settle();
  return timed(fn);
}

/** `settledTimed`; with MIRROR_TRACE also a trace line saying what happened during the pull (see TRACE). */
async function tracedPull<T>(b: Bench, label: string, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  if (!TRACE) return settledTimed(b, fn);
  await b.settle();
  const before: Snapshot = snapshot(b.pids.keys());
  const gcFrom = b.gcLines.length;
  b.blobs.times = [];
  const t0 = performance.now();
  const t = await timed(fn);
  const gets = b.blobs.times.map((g) => `${(g.sentAt - t0).toFixed(1)}/${(g.headAt - t0).toFixed(1)}/${(g.endAt - t0).toFixed(1)}`).join(' ');
  b.blobs.times = undefined;
  const after = snapshot(b.pids.keys());
  await new Promise((resolve) => setTimeout(resolve, 5)); // Berth's GC lines of the pull through the pipe
  const gc = b.gcLines.slice(gcFrom).map((l) => l.replace(/^\[[^\]]*\]\s*/, '').replace(/\s+/g, ' ').slice(0, 90));
  // the client's GCs that ended during the pull or less than 200 ms before it (perf_hooks kinds: 1 minor, 4 major, 8 incremental, 16 weak callbacks)
  const client = benchGcs.filter((g) => g.start + g.ms > t0 - 200 && g.start < t0 + t.ms).map((g) => `${(g.start - t0).toFixed(0)}+${g.ms.toFixed(1)}k${g.kind}`);
  b.ctx.log(`  trace ${label}: ${t.ms.toFixed(1)} ms; blob GETs sent/headers/end ms ${gets}; berth GC ${gc.length === 0 ? 'none' : gc.join(' | ')}; client GC (start+ms from the pull's start) ${client.join(' ') || 'none'}; ${formatWindow(between(before, after, b.pids))}`);
  return t;
}

/** Where a mirror's root links blob `digest` into repository `stored` (registry:2's layout, both mirrors). */
function layerLink(root: string, stored: string, digest: string): string {
  return join(root, 'docker/registry/v2/repositories', stored, '_layers/sha256', digest.slice('sha256:'.length), 'link');
}

/** Waits until mirror `t`'s root links every blob of `m`'s amd64 image into the repository (its cache write is over). */
async function cachedInRoot(b: Bench, t: Target, repo: string, m: MirrorImage): Promise<void> {
  // Berth keeps a mirrored repository under the upstream's prefix; registry:2's proxy mode under the name itself.
  const stored = t === 'berth' ? `docker.io/${repo}` : repo;
  const links = [m.image.config, ...m.image.layers.map((l) => l.gzip)].map((blob) => layerLink(b.root[t], stored, blob.digest));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const present = await Promise.all(links.map((l) => access(l).then(() => true, () => false)));
    if (present.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`${TARGET_LABEL[t]}: the image was not in its cache 60 s after the pull`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A cold pull of `repo:1` through `t`, the same pull again as soon as it ended, and once more when the
 * mirror's root holds the whole image; samples and upstream request counts recorded when `record`.
 */
async function pullBoth(b: Bench, t: Target, repo: string, m: MirrorImage, record: boolean): Promise<void> {
  b.proxy.reset();
  const c = await settledTimed(b, () => pull(b, b.url[t], repo));
  const coldRequests = total(b.proxy);
  const a = await timed(() => pull(b, b.url[t], repo));
  await cachedInRoot(b, t, repo, m);
  b.proxy.reset();
  const w = await settledTimed(b, () => pull(b, b.url[t], repo));
  const warmRequests = total(b.proxy);
  const wn = await settledTimed(b, () => pullOverHttp(b.url[t], repo, '1', { agent: b.agent }));
  const wc = await tracedPull(b, `${TARGET_LABEL[t]} warm counted`, () => pull(b, b.url[t], repo, 'counted'));
  const wu = await settledTimed(b, () => pull(b, b.url[t], repo, 'curl'));
  for (const p of [c.value, a.value, w.value, wn.value, wc.value, wu.value]) if (p.digest !== m.image.manifest.digest) throw new Error(`${t}: pulled ${p.digest}, want ${m.image.manifest.digest}`);
  if (!record) return;
  b.cold[t].push(c.ms);
  b.again[t].push(a.ms);
  b.warm[t].push(w.ms);
  b.warmNodeHttp[t].push(wn.ms);
  b.warmCounted[t].push(wc.ms);
  b.warmCurl[t].push(wu.ms);
  b.counts[t].cold.push(coldRequests);
  b.counts[t].warm.push(warmRequests);
  b.ctx.log(`  ${TARGET_LABEL[t]}: cold ${formatValue(c.ms, 'ms')} (${coldRequests} upstream requests), right after ${formatValue(a.ms, 'ms')}, warm ${formatValue(w.ms, 'ms')} (${warmRequests}), warm with node:http ${formatValue(wn.ms, 'ms')}, warm counted ${formatValue(wc.ms, 'ms')}, warm with curl ${formatValue(wu.ms, 'ms')}`);
}

/** A cold pull of `repo:1` (image `m`) through `t`, its blobs counted, not hashed; then waits until it is cached. */
async function coldCounted(b: Bench, t: Target, repo: string, m: MirrorImage, record: boolean): Promise<void> {
  const c = await settledTimed(b, () => pull(b, b.url[t], repo, 'counted'));
  if (c.value.digest !== m.image.manifest.digest) throw new Error(`${t}: pulled ${c.value.digest}, want ${m.image.manifest.digest}`);
  await cachedInRoot(b, t, repo, m);
  if (!record) return;
  b.coldCounted[t].push(c.ms);
  b.ctx.log(`  ${TARGET_LABEL[t]}: cold, counted ${formatValue(c.ms, 'ms')}`);
}

/** Seeds a new image of `size` bytes into the upstream, then pulls it cold and warm through each target in `order`. */
async function cycle(b: Bench, seed: number, size: number, order: readonly Target[], record: boolean): Promise<void> {
  const m = imageOf(seed, size);
  const repo = `library/bench-${seed}`;
  await seedUpstream(b.upstream, repo, m, '1', 'multi');
  // A second image (other bytes, same sizes) for the cold pull whose blobs are counted, not hashed.
  const m2 = imageOf(seed + 10_000, size);
  const repo2 = `library/bench-${seed}-counted`;
  await seedUpstream(b.upstream, repo2, m2, '1', 'multi');
  const direct = await settledTimed(b, () => pull(b, b.upstream, repo));
  const floor = await floorPull(b, m, (url) => b.blobs.blob(url, undefined));
  const floorNodeHttp = await floorPull(b, m, (url) => hashOverNodeHttp(url, b.agent));
  const floorCounted = (await tracedPull(b, 'floor counted', () => floorPull(b, m, (url, n) => b.blobs.length(url, n), false))).value;
  const curlFloor = await floorCurl(b, m);
  if (record) {
    b.direct.push(direct.ms);
    b.floor.push(floor);
    b.floorNodeHttp.push(floorNodeHttp);
    b.floorCounted.push(floorCounted);
    b.floorCurl.push(curlFloor);
    b.ctx.log(`  the client's floor (memory server) ${formatValue(floor, 'ms')}, with node:http ${formatValue(floorNodeHttp, 'ms')}, counted ${formatValue(floorCounted, 'ms')}, curl ${formatValue(curlFloor, 'ms')}; straight from the upstream ${formatValue(direct.ms, 'ms')}`);
  }
  for (const t of order) {
    try {
      await pullBoth(b, t, repo, m, record);
      await coldCounted(b, t, repo2, m2, record);
    } catch (err) {
      // registry:2 in proxy mode sometimes answered 500 to a cold blob GET here: recorded, not retried
      b.failures.push(`${TARGET_LABEL[t]}, image ${seed}: ${(err as Error).message}`);
      b.ctx.log(`  ${TARGET_LABEL[t]}: pull failed: ${(err as Error).message}`);
    }
  }
}

function report(o: Readonly<Record<string, number>>, b: Bench): FamilyReport {
  const what = `3-layer ${opt(o, 'image-mb')} MB image`;
  const rows: Row[] = [
    { scenario: `mirror cold pull, ${what}`, unit: 'ms', samples: b.cold, goal: atLeastFor('ms', 1.2), note: 'nothing cached: manifest and every blob through the mirror from the upstream; the client sha256-checks every blob as it arrives (as docker and containerd do)' },
    { scenario: `mirror cold pull, blobs counted not hashed, ${what}`, unit: 'ms', samples: b.coldCounted, goal: atLeastFor('ms', 1.2), note: "a cold pull of a second image of the same sizes, the same client counting each blob's bytes against the manifest's size instead of hashing them: the servers' line" },
    { scenario: `mirror warm pull, blobs counted not hashed, ${what}`, unit: 'ms', samples: b.warmCounted, goal: atLeastFor('ms', 2), note: "the warm pull, the same client counting each blob's bytes against the manifest's size instead of hashing them: the client leaves the cores to the servers, so this line measures the servers and the warm target is judged on it" },
    { scenario: `mirror warm pull, blobs through curl, ${what}`, unit: 'ms', samples: b.warmCurl, note: 'the warm pull, its blobs through one curl process (--parallel, -o /dev/null, status and sizes checked): an independent client that hashes nothing, as a check on the line above (its times include starting curl)' },
    { scenario: `mirror warm pull, blobs hashed, ${what}`, unit: 'ms', samples: b.warm, note: "the same pull again, everything cached (once the mirror's root links every blob of the image), each blob sha256-checked as it arrives: what a verifying client sees, bounded by the client's own hashing (its floor in the notes); not where the warm target is judged" },
    { scenario: `mirror pull right after the cold one, ${what}`, unit: 'ms', samples: b.again, note: 'the same pull again as soon as the cold pull ended, while the mirror may still be writing the image to its cache' },
    { scenario: `mirror warm pull with the earlier node:http client, ${what}`, unit: 'ms', samples: b.warmNodeHttp, note: "the warm pull again, its blobs through node:http streams as this bench's client did before 2026-12-07-6 (compare with earlier results files)" },
  ];
  const med = (xs: readonly number[]): string => String(median(xs));
  const { berth, registry2 } = b.counts;
  const notes = [
    `upstream: docker-registry 2.8 behind a counting reverse proxy (node:http) on loopback; Berth: ${b.ctx.berth.label}, proxy.upstreams (docker.io, default, revalidate 30 s by default); registry:2: proxy.remoteurl`,
    `upstream requests per pull (median over rounds): Berth cold ${med(berth.cold)}, warm ${med(berth.warm)}; registry:2 cold ${med(registry2.cold)}, warm ${med(registry2.warm)}`,
    `upstream requests, every round: Berth cold ${berth.cold.join(' ')}, warm ${berth.warm.join(' ')}; registry:2 cold ${registry2.cold.join(' ')}, warm ${registry2.warm.join(' ')}`,
    `client: manifest by tag (node:http keep-alive), then config and 3 layers in parallel, each sha256-checked as it arrives, through bench/lib/blob-client.ts (HTTP/1.1 keep-alive, each connection reading into one reused 1 MiB buffer); layers ${SHARES.map((s) => `${Math.round(s * 100)}%`).join(', ')} of ${opt(o, 'image-mb')} MB of seeded random data, a new image each round; a 1 MB image pulled first as a warm-up`,
    `the client's floor: the warm pull's blobs (same sizes, in parallel, hashed) from a Node server in another process sending them from memory, median ${formatValue(median(b.floor), 'ms')} (every round: ${b.floor.map((x) => x.toFixed(0)).join(' ')}); with the earlier node:http client ${formatValue(median(b.floorNodeHttp), 'ms')} (${b.floorNodeHttp.map((x) => x.toFixed(0)).join(' ')})`,
    `the floors of the servers' lines (the same blobs from the memory server): counted, not hashed, median ${formatValue(median(b.floorCounted), 'ms')} (every round: ${b.floorCounted.map((x) => x.toFixed(0)).join(' ')}); through curl ${formatValue(median(b.floorCurl), 'ms')} (${b.floorCurl.map((x) => x.toFixed(0)).join(' ')})`,
    `the same pull straight from the upstream registry:2 (no mirror, no counting proxy), median: ${formatValue(median(b.direct), 'ms')}`,
    opt(o, 'client-gc') === 1
      ? "before each timed pull (but the one right after the cold pull) the bench collects its own garbage (a full V8 GC of the client's process, `client-gc` 1): without it the client's major GC, set off by the earlier pulls' buffers, ran during many pulls (its marking threads took 20-55 ms of CPU during a 50-80 ms pull: notes warm13h-notes-2026-12-08.md)"
      : 'the client\'s own garbage is not collected before the pulls (`client-gc` 0, as before 2026-12-08): its major GC may run during a pull',
    `load average (1, 5, 15 min) at the start ${b.load.join(', ')}, at the end ${loadavg().map((x) => x.toFixed(2)).join(', ')}`,
    `rounds: ${opt(o, 'rounds')}, A B then B A, alternating (each side: cold, right after, then once cached warm hashed, with node:http, counted, through curl; then the second image cold, counted)`,
    'upstream requests "warm" are those of the warm pull once cached',
    b.failures.length === 0 ? 'every pull succeeded' : `failed pulls (no sample that round): ${b.failures.join('; ')}`,
  ];
  return { family: 'mirror', title: "pull-through cache: Berth's mirror vs registry:2's proxy mode", rows, notes };
}

async function runMirror(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-mirror-');
  const running: Running[] = [];
  let proxy: CountingProxy | undefined;
  // Idle sockets are closed after IDLE_CLOSE_MS, before a Node server (Berth: 5 s) closes them: reusing
  // one as the server closes it gets a reset (mirror-2026-12-07-7.md lost a pull to that).
  const agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: IDLE_CLOSE_MS });
  const blobs = new BlobClient();
  let memory: { url: string; pid: number | undefined; stop(): void } | undefined;
  try {
    memory = await startMemoryServer(opt(o, 'image-mb') * 1e6);
    const started = await startAll(work, ctx, running);
    proxy = started.proxy;
    const { url, upstream, root, pids, gcLines } = started;
    if (memory.pid !== undefined) pids.set(memory.pid, 'memory');
    ctx.log(`mirror: upstream ${upstream.url} (counted at ${proxy.url}); Berth at ${url.berth}, registry:2 at ${url.registry2}`);
    const collect = opt(o, 'client-gc') === 1 ? collectClientGarbage() : undefined;
    const settle = async (): Promise<void> => {
      if (collect === undefined) return;
      collect();
      await new Promise((resolve) => setImmediate(resolve)); // what the collection queued (finalizers) runs first
    };
    const b: Bench = {
      settle, ctx, proxy, upstream: upstream.url, url, root, agent, pids, gcLines, blobs, memory: memory.url, failures: [], direct: [], floor: [], floorNodeHttp: [], load: loadavg().map((x) => x.toFixed(2)),
      cold: { berth: [], registry2: [] }, warm: { berth: [], registry2: [] }, warmNodeHttp: { berth: [], registry2: [] }, warmCounted: { berth: [], registry2: [] }, warmCurl: { berth: [], registry2: [] }, coldCounted: { berth: [], registry2: [] }, floorCounted: [], floorCurl: [], again: { berth: [], registry2: [] }, counts: { berth: { cold: [], warm: [] }, registry2: { cold: [], warm: [] } },
    };
    await cycle(b, 1, 1e6, TARGETS, false); // warm-up: 1 MB, untimed
    for (let r = 0; r < opt(o, 'rounds'); r++) await cycle(b, 100 + r, opt(o, 'image-mb') * 1e6, r % 2 === 0 ? TARGETS : [TARGETS[1], TARGETS[0]], true);
    return report(o, b);
  } finally {
    agent.destroy();
    blobs.close();
    memory?.stop();
    await proxy?.close().catch(() => undefined);
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    await removeTempDir(work);
  }
}

export const mirrorFamily: Family = {
  name: 'mirror',
  summary: "cold and warm pulls of a 3-layer image through Berth's mirror and registry:2's proxy mode, same upstream",
  options: [
    roundsOption(5, 2),
    { name: 'image-mb', help: 'image size in MB', full: 50, quick: 10, min: 1, max: 2000 },
    { name: 'client-gc', help: "1: collect the client's own garbage before each timed pull (0: not, as before 2026-12-08)", full: 1, quick: 1, min: 0, max: 1 },
  ],
  run: runMirror,
};
