/**
 * Scenario family `blobs` (issue #8): big and many blob transfers, and the memory they cost.
 *
 * Both servers start over empty roots of their own. Content comes from bench/lib/blobdata.ts (generated
 * while it is sent; each seed a new digest), so every timed upload is new to the registry; each timed
 * upload's blob is removed from the root afterwards (directly on disk, untimed) to keep the disk and the
 * page cache from filling up. Per scenario, one untimed warm-up per server, then `rounds` alternating
 * rounds (A B, B A, …):
 *
 * 1. monolithic PUT of a `size-mib` blob (POST for a session, one PUT `?digest=` with every byte), with
 *    each server's resident memory: at rest just before, and its peak during the PUT; and the machine's
 *    own limit for it, the same upload into a plain Node receiver that hashes, writes and fsyncs with no
 *    registry logic (lib/limit-receiver.ts), so each PUT can be read as a fraction of that limit;
 * 2. the same size uploaded in `chunk-mib` PATCH chunks (Content-Range), then PUT `?digest=`;
 * 3. GET of the whole blob with curl (the warm-up reads it through Node and checks its sha256);
 * 4. ranged GETs: wrk, `range-connections` connections for `range-seconds`, each request a random
 *    `range-kib` range of that blob;
 * 5. `concurrent` monolithic uploads of `concurrent-mib` each, all at once;
 * 6. resident memory growth over `uploads` uploads of `upload-kib` each (8 at a time), per round.
 */
import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds } from './lib/cpu.js';
import { MiB, blobDigest } from './lib/blobdata.js';
import { curlGet, fetchDigest, rangeDigest, send, uploadChunked, uploadMonolithic } from './lib/client.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { freePort, makeTempDir, removeTempDir, sleep, startServer } from './lib/proc.js';
import { type FamilyReport, type Row, alternate, alternateSides, atLeastFor, atMost, formatValue, median, timed } from './lib/report.js';
import { peakWatcher, rssMiB } from './lib/rss.js';
import { REPO_ROOT, type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';
import { runWrk } from './lib/load.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const REPO = 'bench/blobs';
const MB = 1e6;

/** The directory of blob `digest` under a registry:2 root (removed after a timed upload). */
function blobDir(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

async function pool(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** Resident memory after `ms` of quiet (what the server keeps at rest). */
async function restingRss(pid: number, ms = 1000): Promise<number> {
  await sleep(ms);
  return rssMiB(pid);
}

interface Servers {
  /** The machine-limit receiver (lib/limit-receiver.ts). */
  readonly limitUrl: string;
  readonly limitPid: number;
  readonly url: Record<Target, string>;
  readonly root: Record<Target, string>;
  readonly pid: Record<Target, number>;
}

function label(bytes: number): string {
  return bytes % (1 << 30) === 0 ? `${bytes / (1 << 30)} GiB` : `${bytes / MiB} MiB`;
}

async function bigUploads(s: Servers, o: Readonly<Record<string, number>>, log: RunContext['log'], notes: string[]): Promise<Row[]> {
  const size = opt(o, 'size-mib') * MiB;
  const rounds = opt(o, 'rounds');
  const chunk = opt(o, 'chunk-mib') * MiB;
  // Warm-up: the blob every GET scenario reads afterwards (seed 7), uploaded once to each, untimed.
  for (const t of TARGETS) await uploadMonolithic(s.url[t], REPO, 7, size);
  const rest: Record<Target, number[]> = { berth: [], registry2: [] };
  const peak: Record<Target, number[]> = { berth: [], registry2: [] };
  await uploadMonolithic(s.limitUrl, REPO, 1500, size); // the limit receiver's warm-up
  // The limit receiver runs in the same alternating rounds as the registries: one load for all three.
  const cpu: Record<Target | 'limit', number[]> = { berth: [], registry2: [], limit: [] };
  const sides = await alternateSides(rounds, [...TARGETS, 'limit'] as const, async (t, r) => {
    const seed = 1000 + r;
    blobDigest(seed, size); // hashed before the clock starts
    if (t === 'limit') {
      const before = await cpuSeconds(s.limitPid);
      const { ms } = await timed(() => uploadMonolithic(s.limitUrl, REPO, seed, size));
      cpu.limit.push((await cpuSeconds(s.limitPid)) - before);
      return size / MB / (ms / 1000);
    }
    rest[t].push(await restingRss(s.pid[t]));
    const watch = peakWatcher(s.pid[t]);
    await watch.start();
    const before = await cpuSeconds(s.pid[t]);
    const { ms, value: digest } = await timed(() => uploadMonolithic(s.url[t], REPO, seed, size));
    cpu[t].push((await cpuSeconds(s.pid[t])) - before);
    peak[t].push(await watch.stop());
    await rm(blobDir(s.root[t], digest), { recursive: true, force: true });
    return size / MB / (ms / 1000);
  });
  const put = { berth: sides.berth, registry2: sides.registry2 };
  const limit = sides.limit;
  log(`  monolithic PUT: Berth ${formatValue(median(put.berth), 'MB/s')}, registry:2 ${formatValue(median(put.registry2), 'MB/s')}; peak RSS Berth ${formatValue(median(peak.berth), 'MiB')}, registry:2 ${formatValue(median(peak.registry2), 'MiB')}`);
  const share = (t: Target): string => `${Math.round((100 * median(put[t])) / median(limit))}%`;
  const line = `machine limit for the ${label(size)} PUT (a plain Node process receiving over loopback, hashing, writing with background fdatasyncs, fsyncing; in the same alternating rounds): ${formatValue(median(limit), 'MB/s')} [${limit.map((v) => v.toFixed(0)).join(', ')}]; Berth's PUT is ${share('berth')} of it, registry:2's ${share('registry2')}`;
  log(`  ${line}`);
  notes.push(line);
  const cpuLine = (k: Target | 'limit'): string => `${median(cpu[k]).toFixed(2)} s [${cpu[k].map((v) => v.toFixed(2)).join(', ')}]`;
  notes.push(
    `server CPU per ${label(size)} PUT (all threads, user + system, from /proc/<pid>/stat; median [samples]): Berth ${cpuLine('berth')}, registry:2 ${cpuLine('registry2')}, the plain Node receiver ${cpuLine('limit')}; the client (the bench's own process) and the kernel's loopback work share the same ${availableParallelism()} cores`,
  );

  for (const t of TARGETS) await uploadChunked(s.url[t], REPO, 1999, Math.min(size, 2 * chunk), chunk); // warm-up
  const chunked = await alternate(rounds, TARGETS, async (t, r) => {
    const seed = 2000 + r;
    blobDigest(seed, size);
    const { ms, value: digest } = await timed(() => uploadChunked(s.url[t], REPO, seed, size, chunk));
    await rm(blobDir(s.root[t], digest), { recursive: true, force: true });
    return size / MB / (ms / 1000);
  });
  log(`  chunked upload: Berth ${formatValue(median(chunked.berth), 'MB/s')}, registry:2 ${formatValue(median(chunked.registry2), 'MB/s')}`);
  notes.push(`resident memory at rest, 1 s after the previous scenario and before each timed PUT (median): Berth ${formatValue(median(rest.berth), 'MiB')}, registry:2 ${formatValue(median(rest.registry2), 'MiB')}`);
  return [
    { scenario: `${label(size)} monolithic PUT (POST, then PUT ?digest=)`, unit: 'MB/s', samples: put, goal: atLeastFor('MB/s', 2.5) },
    {
      scenario: `peak RSS during the ${label(size)} PUT`,
      unit: 'MiB',
      samples: peak,
      goal: atMost(100, 'MiB'), // issue #19: peak during a 1 GiB PUT ≤ 100 MiB
      note: 'the kernel\'s high-water mark (VmHWM, reset through /proc/<pid>/clear_refs just before the PUT) and 50 ms VmRSS samples, whichever is higher',
    },
    { scenario: 'RSS at rest', unit: 'MiB', samples: rest },
    { scenario: `${label(size)} upload in ${label(chunk)} PATCH chunks`, unit: 'MB/s', samples: chunked },
  ];
}

async function downloads(s: Servers, o: Readonly<Record<string, number>>, log: RunContext['log'], notes: string[], work: string): Promise<Row[]> {
  const size = opt(o, 'size-mib') * MiB;
  const rounds = opt(o, 'rounds');
  const digest = blobDigest(7, size);
  for (const t of TARGETS) {
    const got = await fetchDigest(`${s.url[t]}/v2/${REPO}/blobs/${digest}`); // warm-up and check
    if (got.status !== 200 || got.digest !== digest || got.size !== size) {
      throw new Error(`${TARGET_LABEL[t]} GET ${digest}: status ${got.status}, ${got.size} bytes, ${got.digest}`);
    }
  }
  notes.push(`GET check (untimed, through Node): both servers answered 200 with all ${size} bytes and sha256 ${digest}`);
  // The machine's limit for it: a bare Node server sending Berth's copy of the file (lib/limit-receiver.ts).
  const file = join(blobDir(s.root.berth, digest), 'data');
  const getUrl = (side: Target | 'limit'): string =>
    side === 'limit' ? `${s.limitUrl}/file?path=${encodeURIComponent(file)}` : `${s.url[side]}/v2/${REPO}/blobs/${digest}`;
  await curlGet(getUrl('limit')); // warm-up
  const sides = await alternateSides(rounds, [...TARGETS, 'limit'] as const, async (side) => {
    const r = await curlGet(getUrl(side));
    if (r.status !== 200 || r.bytes !== size) throw new Error(`${side} GET: status ${r.status}, ${r.bytes} bytes`);
    return size / MB / (r.ms / 1000);
  });
  const get = { berth: sides.berth, registry2: sides.registry2 };
  log(`  GET: Berth ${formatValue(median(get.berth), 'MB/s')}, registry:2 ${formatValue(median(get.registry2), 'MB/s')}, bare Node ${formatValue(median(sides.limit), 'MB/s')}`);
  const share = (t: Target): string => `${Math.round((100 * median(get[t])) / median(sides.limit))}%`;
  notes.push(
    `machine limit for the ${label(size)} GET (a bare Node server: fs.createReadStream, 1 MiB reads, piped to the response; curl; in the same alternating rounds): ${formatValue(median(sides.limit), 'MB/s')} [${sides.limit.map((v) => v.toFixed(0)).join(', ')}]; Berth's GET is ${share('berth')} of it, registry:2's ${share('registry2')}`,
  );

  const length = opt(o, 'range-kib') * 1024;
  // Ranges checked byte for byte (untimed): one at an odd offset, one ending at the blob's last byte.
  const checks = [Math.min(12_345, size - 1), Math.max(0, size - length)].map((start) => ({ start, end: Math.min(size, start + length) }));
  for (const t of TARGETS) {
    for (const { start, end } of checks) {
      const headers = { Range: `bytes=${start}-${end - 1}` };
      const a = await send(`${s.url[t]}/v2/${REPO}/blobs/${digest}`, 'GET', headers, undefined);
      const got = await fetchDigest(`${s.url[t]}/v2/${REPO}/blobs/${digest}`, headers);
      if (a.status !== 206 || a.headers['content-range'] !== `bytes ${start}-${end - 1}/${size}` || got.digest !== rangeDigest(7, size, start, end)) {
        throw new Error(`${TARGET_LABEL[t]} ranged GET ${start}-${end - 1}: ${a.status} ${String(a.headers['content-range'])}, content ${got.digest === rangeDigest(7, size, start, end) ? 'right' : 'WRONG'}`);
      }
    }
  }
  notes.push(`ranged GET checks (untimed): both servers answered 206 with the right Content-Range and bytes for ${checks.map((c) => `${c.start}-${c.end - 1}`).join(' and ')}`);
  const wrk = (t: Target, seconds: number): ReturnType<typeof runWrk> =>
    runWrk(
      {
        url: `${s.url[t]}/v2/${REPO}/blobs/${digest}`,
        method: 'GET',
        connections: opt(o, 'range-connections'),
        threads: 1,
        seconds,
        randomRange: { size, length },
      },
      work,
    );
  for (const t of TARGETS) await wrk(t, 2); // warm-up
  const p99: Record<Target, number[]> = { berth: [], registry2: [] };
  const rate = await alternate(rounds, TARGETS, async (t) => {
    const r = await wrk(t, opt(o, 'range-seconds'));
    if (r.errors > 0 || r.requests === 0) throw new Error(`${TARGET_LABEL[t]} ranged GETs: ${r.errors} errors in ${r.requests} requests`);
    p99[t].push(r.p99Ms);
    return r.requestsPerSecond;
  });
  log(`  ranged GETs: Berth ${formatValue(median(rate.berth), 'req/s')}, registry:2 ${formatValue(median(rate.registry2), 'req/s')}`);
  const what = `ranged GETs (random ${length / 1024} KiB ranges, ${opt(o, 'range-connections')} connections)`;
  return [
    { scenario: `${label(size)} GET (curl)`, unit: 'MB/s', samples: get, goal: atLeastFor('MB/s', 2), note: "curl's own total time; the page cache holds the blob" },
    { scenario: what, unit: 'req/s', samples: rate, goal: atLeastFor('req/s', 2), note: `wrk, ${opt(o, 'range-seconds')} s per sample; each answer checked to be 2xx` },
    { scenario: `${what}, p99 latency`, unit: 'ms', samples: p99 },
  ];
}

async function concurrentUploads(s: Servers, o: Readonly<Record<string, number>>, log: RunContext['log']): Promise<Row[]> {
  const n = opt(o, 'concurrent');
  const size = opt(o, 'concurrent-mib') * MiB;
  const rounds = opt(o, 'rounds');
  const burst = async (t: Target, seedBase: number, bytes: number): Promise<number> => {
    const seeds = Array.from({ length: n }, (_, i) => seedBase + i);
    for (const seed of seeds) blobDigest(seed, bytes);
    const { ms, value } = await timed(() => Promise.all(seeds.map((seed) => uploadMonolithic(s.url[t], REPO, seed, bytes))));
    await Promise.all(value.map((d) => rm(blobDir(s.root[t], d), { recursive: true, force: true })));
    return ms;
  };
  for (const t of TARGETS) await burst(t, 3000, 64 * 1024); // warm-up
  const samples = await alternate(rounds, TARGETS, (t, r) => burst(t, 10_000 + r * n, size));
  log(`  ${n} concurrent uploads: Berth ${formatValue(median(samples.berth), 'ms')}, registry:2 ${formatValue(median(samples.registry2), 'ms')}`);
  return [{ scenario: `${n} concurrent ${label(size)} uploads (wall time)`, unit: 'ms', samples }];
}

async function memoryGrowth(s: Servers, o: Readonly<Record<string, number>>, log: RunContext['log'], notes: string[]): Promise<Row[]> {
  const n = opt(o, 'uploads');
  const size = opt(o, 'upload-kib') * 1024;
  const rounds = opt(o, 'rounds');
  const churn = async (t: Target, seedBase: number, count: number): Promise<void> => {
    const digests: string[] = [];
    await pool(count, 8, async (i) => {
      digests.push(await uploadMonolithic(s.url[t], REPO, seedBase + i, size));
    });
    for (const d of digests) await rm(blobDir(s.root[t], d), { recursive: true, force: true });
  };
  for (const t of TARGETS) await churn(t, 100_000, Math.min(n, 100)); // warm-up
  const series: Record<Target, string[]> = { berth: [], registry2: [] };
  const growth = await alternate(rounds, TARGETS, async (t, r) => {
    const before = await restingRss(s.pid[t]);
    await churn(t, 200_000 + r * n, n);
    const after = await restingRss(s.pid[t]);
    series[t].push(`${before.toFixed(1)} → ${after.toFixed(1)}`);
    return after - before;
  });
  log(`  RSS growth over ${n} uploads: Berth ${formatValue(median(growth.berth), 'MiB')}, registry:2 ${formatValue(median(growth.registry2), 'MiB')}`);
  for (const t of TARGETS) notes.push(`RSS (MiB) before → after each round of ${n} uploads, ${TARGET_LABEL[t]}: ${series[t].join('; ')}`);
  return [
    {
      scenario: `RSS growth over ${n} uploads of ${size / 1024} KiB`,
      unit: 'MiB',
      samples: growth,
      noRatio: true,
      goal: atMost(10, 'MiB'),
      note: `resident memory 1 s after the last of ${n} uploads (8 at a time) minus 1 s before the first, per round, after ${Math.min(n, 100)} warm-up uploads; "no growth" is judged as ≤ 10 MiB (the noise of a garbage-collected heap)`,
    },
  ];
}

async function runBlobs(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-blobs-');
  const running: Running[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    const root: Record<Target, string> = { berth: join(work, 'berth'), registry2: join(work, 'registry2') };
    const berth = await startBerth(root.berth, work, { command: ctx.berth, level: 'warn', nodeFlags: profileFlags(ctx, 'blobs') });
    running.push(berth);
    const reg = await startRegistry2(root.registry2, work);
    running.push(reg);
    const limitPort = await freePort();
    const limitDir = join(work, 'limit');
    await mkdir(limitDir);
    const limit = startServer(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'lib', 'limit-receiver.ts'), limitDir, String(limitPort)], `http://127.0.0.1:${limitPort}`, REPO_ROOT);
    stops.push(() => limit.stop());
    await limit.waitFor(/listening/, 60_000);
    const s: Servers = {
      limitUrl: limit.url,
      limitPid: limit.pid,
      url: { berth: berth.url, registry2: reg.url },
      root,
      pid: { berth: berth.server.pid, registry2: reg.server.pid },
    };
    const notes: string[] = [
      `Berth: ${ctx.berth.label}, log level warn (no line per request); registry:2 log level error with the access log disabled`,
      `resident memory at start, before any request: Berth ${formatValue(await rssMiB(s.pid.berth), 'MiB')}, registry:2 ${formatValue(await rssMiB(s.pid.registry2), 'MiB')}`,
    ];
    ctx.log(`blobs: Berth at ${berth.url}, registry:2 at ${reg.url}`);
    const rows = [
      ...(await bigUploads(s, o, ctx.log, notes)),
      ...(await downloads(s, o, ctx.log, notes, work)),
      ...(await concurrentUploads(s, o, ctx.log)),
      ...(await memoryGrowth(s, o, ctx.log, notes)),
    ];
    notes.push(`rounds: ${opt(o, 'rounds')} per scenario after one untimed warm-up per server; A B then B A, alternating`);
    return { family: 'blobs', title: 'Blobs: Berth vs registry:2', rows, notes };
  } finally {
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    for (const stop of stops) await stop().catch(() => undefined);
    await removeTempDir(work);
  }
}

export const blobsFamily: Family = {
  name: 'blobs',
  summary: 'big monolithic and chunked uploads (with peak RSS), GET, ranged GETs, concurrent uploads, RSS growth over many uploads',
  options: [
    roundsOption(3, 3),
    { name: 'size-mib', help: 'size of the big blob', full: 1024, quick: 64, min: 1, max: 65_536 },
    { name: 'chunk-mib', help: 'PATCH chunk size', full: 64, quick: 8, min: 1, max: 4096 },
    { name: 'range-kib', help: 'length of each ranged GET', full: 256, quick: 256, min: 1, max: 65_536 },
    { name: 'range-seconds', help: 'wrk duration per ranged-GET sample', full: 10, quick: 3, min: 1, max: 600 },
    { name: 'range-connections', help: 'wrk connections for ranged GETs', full: 16, quick: 16, min: 1, max: 1000 },
    { name: 'concurrent', help: 'uploads at once', full: 100, quick: 20, min: 1, max: 1000 },
    { name: 'concurrent-mib', help: 'size of each concurrent upload', full: 10, quick: 1, min: 1, max: 1024 },
    { name: 'uploads', help: 'uploads per memory-growth round', full: 1000, quick: 100, min: 1, max: 100_000 },
    { name: 'upload-kib', help: 'size of each memory-growth upload', full: 256, quick: 64, min: 1, max: 65_536 },
  ],
  run: runBlobs,
};
