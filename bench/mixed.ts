/**
 * Scenario family `mixed` (issue #19): manifest pulls while big uploads run. Each server gets one small
 * image; then, per sample, `uploads` clients each PUT a `size-mib` blob (POST, then one PUT `?digest=`)
 * while wrk holds `connections` connections on the manifest GET for `seconds`. Rows: the manifest
 * requests/s and p99 latency under that load, and the uploads' combined throughput (all bytes over
 * the time until the last upload is acknowledged). For Berth, its event-loop lag over the sample is read
 * from its own metrics (`nodejs_eventloop_lag_p99_seconds` and `_max_`, which prom-client resets on
 * every scrape: one scrape just before the sample, one just after), showing what the hashing and
 * writing cost the loop, and which share of the manifest GETs Berth itself timed above 25, 50 and 100 ms
 * (its request-duration histogram, from the same scrapes). wrk's window starts with the uploads; if they end first, its tail is unloaded.
 *
 * With `--workers N` (2 by default; 0 leaves it out) a third server runs in the same rounds: Berth with
 * `http.workers: N` and a Redis of its own (issue #19), reported as extra rows against the same
 * registry:2 samples; its lag is the workers' average, as its primary's `/metrics` adds them up.
 *
 * The machine's floor runs in the same rounds as one or two more sides (`--floor 2`, the default; 1 the
 * first only; 0 neither). One process: a plain Node process with no registry logic (lib/limit-receiver.ts)
 * answering every manifest GET with the bytes and headers Berth answered, while the same uploads go into
 * it and are hashed, written and fsynced as the `blobs` family's limit receiver does. Two processes: the
 * same manifest answers from one such process while the uploads go into another, so that the upload
 * work does not share the GETs' JavaScript thread and only the kernel's scheduler stands between them.
 * Their rows say what this machine and these clients (wrk and the bench's own Node process generating
 * the upload bytes, all on the same cores) allow.
 *
 * Who used the cores during wrk's window is given per side in the context lines: the server (all threads;
 * with workers, the primary and its workers), the bench's own process (the upload client), wrk, and the
 * whole machine's busy share (from /proc).
 */
import { mkdir, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { pushSmallImage, uploadMonolithic } from './lib/client.js';
import { allProcessesCpuSeconds, busiestBetween, cpuSeconds, descendants, machineCpuSeconds, reapedChildrenCpuSeconds, treeCpuSeconds } from './lib/cpu.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { recordManifestAnswer, startFloor } from './lib/manifest-floor.js';
import { runWrk } from './lib/load.js';
import { type Server, freePort, makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, alternateSides, atMost, formatValue, median, timed } from './lib/report.js';
import { durationBuckets, slowerThan } from './lib/server-durations.js';
import { type Running, type Target, startBerth, startRegistry2 } from './lib/servers.js';
import { type TestRedis, startRedis } from '../test/helpers/redis.js';

/** The servers of one run: the two targets, Berth with `http.workers`, and the machine's floors (one process, two). */
type Side = Target | 'workers' | Floor;
type Floor = 'floor' | 'floor2';
const FLOOR_WHAT: Record<Floor, string> = {
  floor: 'a plain Node server answering the same manifest bytes and headers and receiving the same uploads (hashing, writing, fsyncing), one process',
  floor2: 'the same manifest answers from one plain Node process, the same uploads into another',
};
const REPO = 'bench/mixed';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
/** Bucket bounds (s) of Berth's request durations whose shares the report gives (the target is 50 ms). */
const SERVER_SIDE_BOUNDS = [0.025, 0.05, 0.1] as const;

const isFloor = (side: Side): side is Floor => side === 'floor' || side === 'floor2';

const SIDE_LABEL: Record<Side, (workers: number) => string> = {
  berth: () => 'Berth',
  workers: (n) => `Berth with http.workers: ${n} (primary and workers)`,
  floor: () => "the machine's floor, one process",
  floor2: () => "the machine's floor, two processes (both)",
  registry2: () => 'registry:2',
};

/** The value of the unlabelled sample `name` in a Prometheus text exposition, or NaN. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m?.[1] === undefined ? Number.NaN : Number(m[1]);
}

/** GET `url` on a connection of its own (a kept-alive one may have been closed by the server meanwhile). */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.once('timeout', () => req.destroy(new Error(`${url}: no answer within 30 s`)));
    req.once('error', reject);
  });
}

interface Sample {
  readonly rate: number;
  readonly p99: number;
  readonly uploadMBs: number;
  /** CPU seconds used during wrk's window. */
  readonly cpu: CpuUse;
  /** The other processes that used the most CPU during wrk's window (another helper's build shows here). */
  readonly others: readonly string[];
}

/** CPU seconds used over a window, by whom; `busy` is the whole machine's (summed over every CPU). */
interface CpuUse {
  readonly server: number;
  readonly bench: number;
  readonly wrk: number;
  readonly busy: number;
  readonly total: number;
}

/** CPU seconds used so far by the server's processes (`tree`: with their descendants), this process, its waited-for children (wrk) and the machine. */
async function cpuNow(pids: readonly number[], tree: boolean): Promise<CpuUse> {
  const own = process.cpuUsage();
  const machine = await machineCpuSeconds();
  let server = 0;
  for (const pid of pids) server += await (tree ? treeCpuSeconds(pid) : cpuSeconds(pid));
  return {
    server,
    bench: (own.user + own.system) / 1e6,
    wrk: await reapedChildrenCpuSeconds(),
    busy: machine.busy,
    total: machine.total,
  };
}

function cpuSince(a: CpuUse, b: CpuUse): CpuUse {
  return { server: b.server - a.server, bench: b.bench - a.bench, wrk: b.wrk - a.wrk, busy: b.busy - a.busy, total: b.total - a.total };
}

async function runMixed(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const loadAtStart = loadavg();
  const work = await makeTempDir('berth-bench-mixed-');
  const running: Running[] = [];
  let redis: TestRedis | undefined;
  const floors: Server[] = [];
  try {
    const workerCount = opt(o, 'workers');
    const floorSides = (['floor', 'floor2'] as const).slice(0, opt(o, 'floor'));
    const sides: readonly Side[] = ['berth', ...(workerCount > 1 ? (['workers'] as const) : []), ...floorSides, 'registry2'];
    const berthMetrics = await freePort();
    const metricsPort: Partial<Record<Side, number>> = { berth: berthMetrics };
    const root: Record<Side, string> = { berth: join(work, 'berth'), workers: join(work, 'berth-workers'), floor: join(work, 'floor'), floor2: join(work, 'floor2'), registry2: join(work, 'registry2') };
    const berth = await startBerth(root.berth, work, { command: ctx.berth, level: 'warn', accessLog: true, metricsPort: berthMetrics, nodeFlags: profileFlags(ctx, 'mixed') });
    running.push(berth);
    const reg = await startRegistry2(root.registry2, work);
    running.push(reg);
    const url: Partial<Record<Side, string>> = { berth: berth.url, registry2: reg.url };
    const pids: Partial<Record<Side, number[]>> = { berth: [berth.server.pid], registry2: [reg.server.pid] };
    const uploadUrl: Partial<Record<Side, string>> = {};
    if (workerCount > 1) {
      redis = await startRedis();
      const workersMetrics = await freePort();
      metricsPort.workers = workersMetrics;
      await mkdir(join(work, 'w'));
      const workers = await startBerth(root.workers, join(work, 'w'), {
        command: ctx.berth, level: 'warn', accessLog: true, metricsPort: workersMetrics, workers: { count: workerCount, redisAddr: redis.addr },
      });
      running.push(workers);
      url.workers = workers.url;
      pids.workers = [workers.server.pid];
    }
    const at = (side: Side): string => url[side] ?? '';
    for (const side of sides) if (!isFloor(side)) await pushSmallImage(at(side), REPO, 'latest', 91);
    if (floorSides.length > 0) {
      const answer = join(work, 'manifest-answer.json');
      await recordManifestAnswer(`${berth.url}/v2/${REPO}/manifests/latest`, ACCEPT, answer);
      for (const side of floorSides) {
        const manifests = await startFloor(root[side], answer);
        floors.push(manifests);
        url[side] = manifests.url;
        pids[side] = [manifests.pid];
        if (side === 'floor2') {
          const receiver = await startFloor(`${root[side]}-uploads`);
          floors.push(receiver);
          uploadUrl[side] = receiver.url;
          pids[side] = [manifests.pid, receiver.pid];
        }
      }
    }
    const size = opt(o, 'size-mib') * MiB;
    const uploads = opt(o, 'uploads');
    const lag: Partial<Record<Side, { p99: number[]; max: number[] }>> = {};
    const samples: Partial<Record<Side, Sample[]>> = {};
    const serverSide: Partial<Record<Side, number[][]>> = {};
    const metricsUrl = (side: Side): string | undefined => (metricsPort[side] === undefined ? undefined : `http://127.0.0.1:${String(metricsPort[side])}/metrics`);
    await alternateSides(opt(o, 'rounds'), sides, async (side, r) => {
      const seeds = Array.from({ length: uploads }, (_, i) => 5000 + r * 100 + i);
      for (const seed of seeds) blobDigest(seed, size); // hashed before the clock starts
      const scraped = metricsUrl(side);
      const before = scraped === undefined ? undefined : await scrape(scraped); // resets the lag histogram
      const othersBefore = await allProcessesCpuSeconds();
      const cpuStart = await cpuNow(pids[side] ?? [], side === 'workers');
      const load = runWrk({ url: `${at(side)}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections: opt(o, 'connections'), threads: 1, seconds: opt(o, 'seconds') }, work);
      const up = timed(() => Promise.all(seeds.map((seed) => uploadMonolithic(uploadUrl[side] ?? at(side), REPO, seed, size))));
      const cpuWindow = load.then(async () => ({ cpu: cpuSince(cpuStart, await cpuNow(pids[side] ?? [], side === 'workers')), othersAfter: await allProcessesCpuSeconds() }));
      const [w, { ms, value: digests }, { cpu, othersAfter }] = await Promise.all([load, up, cpuWindow]);
      const own = new Set([process.pid, ...(pids[side] ?? [])]);
      for (const pid of pids[side] ?? []) for (const child of await descendants(pid)) own.add(child);
      const others = busiestBetween(othersBefore, othersAfter, own, 3);
      if (scraped !== undefined) {
        const text = await scrape(scraped);
        const l = (lag[side] ??= { p99: [], max: [] });
        l.p99.push(metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000);
        l.max.push(metric(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
        if (before !== undefined) {
          const slow = slowerThan(durationBuckets(before, 'manifest', 'GET'), durationBuckets(text, 'manifest', 'GET'), SERVER_SIDE_BOUNDS);
          (serverSide[side] ??= []).push(slow.percent);
        }
      }
      if (w.errors > 0 || w.requests === 0) throw new Error(`${side} manifest GET under uploads: ${w.errors} errors in ${w.requests} requests`);
      if (!isFloor(side)) for (const d of digests) await rm(join(root[side], 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7)), { recursive: true, force: true });
      (samples[side] ??= []).push({ rate: w.requestsPerSecond, p99: w.p99Ms, uploadMBs: (uploads * size) / 1e6 / (ms / 1000), cpu, others });
      return w.requestsPerSecond;
    });
    const pick = (berthSide: Exclude<Side, 'registry2'>, f: (s: Sample) => number): Record<Target, number[]> => ({
      berth: (samples[berthSide] ?? []).map(f), registry2: (samples.registry2 ?? []).map(f),
    });
    const base = `manifest GET, ${opt(o, 'connections')} connections, while ${uploads} clients each PUT ${opt(o, 'size-mib')} MiB`;
    const rows: Row[] = [];
    const lagLines: string[] = [];
    for (const berthSide of sides.filter((side): side is 'berth' | 'workers' => side === 'berth' || side === 'workers')) {
      const who = berthSide === 'workers' ? `, Berth with http.workers: ${workerCount} + redis` : '';
      const what = `${base}${who}`;
      rows.push(
        { scenario: what, unit: 'req/s', samples: pick(berthSide, (s) => s.rate), note: `wrk for ${opt(o, 'seconds')} s from the uploads' start; every answer checked to be 2xx` },
        { scenario: `${what}, p99 latency`, unit: 'ms', samples: pick(berthSide, (s) => s.p99), goal: atMost(50, 'ms') },
        { scenario: `the ${uploads} uploads together${who}`, unit: 'MB/s', samples: pick(berthSide, (s) => s.uploadMBs), note: 'all bytes over the time until the last upload was acknowledged (201)' },
      );
      const l = lag[berthSide] ?? { p99: [], max: [] };
      const line = `${berthSide === 'workers' ? `Berth with http.workers: ${workerCount} (the workers' average, as its /metrics adds them)` : 'Berth'}: event-loop lag during each sample (nodejs_eventloop_lag_*_seconds): p99 ${l.p99.map((v) => v.toFixed(1)).join(', ')} ms (median ${formatValue(median(l.p99), 'ms')}); max ${l.max.map((v) => v.toFixed(1)).join(', ')} ms`;
      lagLines.push(line);
      ctx.log(`  ${line}`);
      const timed = serverSide[berthSide] ?? [];
      const shares = SERVER_SIDE_BOUNDS.map((b, i) => `over ${b * 1000} ms ${timed.map((p) => `${(p[i] ?? Number.NaN).toFixed(2)}%`).join(', ')}`).join('; ');
      const own = `${berthSide === 'workers' ? `Berth with http.workers: ${workerCount}` : 'Berth'}: the manifest GETs as Berth itself timed them (registry_http_request_duration_seconds, from the request's arrival in its handlers to the end of its response; the rest of wrk's latency is spent before, waiting in the socket for the loop to read it, and after): ${shares}`;
      lagLines.push(own);
      ctx.log(`  ${own}`);
    }
    for (const floorSide of floorSides) {
      const what = `the machine's floor: ${base}, ${FLOOR_WHAT[floorSide]}`;
      const who = floorSide === 'floor' ? 'one process' : 'two processes';
      rows.push(
        { scenario: what, unit: 'req/s', samples: pick(floorSide, (s) => s.rate), note: "lib/limit-receiver.ts: no registry logic, no access log, the uploads' bytes hashed and written as the blobs family's limit receiver does; its column compares it with the same registry:2 samples" },
        { scenario: `${what}, p99 latency`, unit: 'ms', samples: pick(floorSide, (s) => s.p99) },
        { scenario: `the ${uploads} uploads together, the machine's floor, ${who}`, unit: 'MB/s', samples: pick(floorSide, (s) => s.uploadMBs) },
      );
      const floorP99 = median((samples[floorSide] ?? []).map((s) => s.p99));
      const against = sides
        .filter((side): side is 'berth' | 'workers' => side === 'berth' || side === 'workers')
        .map((side) => {
          const p99 = median((samples[side] ?? []).map((s) => s.p99));
          return `${side === 'workers' ? `Berth with http.workers: ${workerCount}` : 'Berth'} ${formatValue(p99, 'ms')} (${(p99 / floorP99).toFixed(2)}× the floor's)`;
        });
      const line = `manifest GET p99 under the uploads against the machine's floor, ${who} (${formatValue(floorP99, 'ms')}; medians): ${against.join('; ')}; the target (≤ 50 ms) is ${floorP99 > 50 ? `below this floor by ${formatValue(floorP99 - 50, 'ms')}` : `${formatValue(50 - floorP99, 'ms')} above this floor`}`;
      lagLines.push(line);
      ctx.log(`  ${line}`);
    }
    for (const side of sides) {
      const list = samples[side] ?? [];
      const f = (pick: (c: CpuUse) => number): string => `${median(list.map((s) => pick(s.cpu))).toFixed(2)} s [${list.map((s) => pick(s.cpu).toFixed(2)).join(', ')}]`;
      const busy = list.map((s) => (100 * s.cpu.busy) / s.cpu.total);
      const line = `CPU during wrk's ${opt(o, 'seconds')} s, ${SIDE_LABEL[side](workerCount)} (median [samples], of ${availableParallelism()} cores × ${opt(o, 'seconds')} s): server ${f((c) => c.server)}; the bench's own process (the upload client) ${f((c) => c.bench)}; wrk ${f((c) => c.wrk)}; the rest (kernel threads, other processes) ${f((c) => c.busy - c.server - c.bench - c.wrk)}; machine busy ${busy.map((b) => `${b.toFixed(0)}%`).join(', ')}; the other processes with the most CPU, per sample: ${list.map((s) => `[${s.others.join(', ')}]`).join(' ')}`;
      lagLines.push(line);
      ctx.log(`  ${line}`);
    }
    return {
      family: 'mixed',
      title: 'Mixed load: manifest pulls during big uploads, Berth vs registry:2',
      rows,
      notes: [
        `Berth: ${ctx.berth.label}, log level info with the access log on; registry:2 log level error with the access log disabled`,
        ...(workerCount > 1 ? [`Berth with http.workers: ${workerCount}: the same build, and a Redis of its own (redis-server on loopback, nothing saved), in the same rounds; its rows compare it with the same registry:2 samples`] : []),
        ...lagLines,
        `rounds: ${opt(o, 'rounds')}; ${sides.join(' ')} then the reverse, alternating; each sample's blobs removed from the root afterwards (untimed)`,
        `load average (1, 5, 15 min) at the start ${loadAtStart.map((x) => x.toFixed(2)).join(', ')}, at the end ${loadavg().map((x) => x.toFixed(2)).join(', ')}`,
      ],
    };
  } finally {
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    for (const f of floors) await f.stop();
    await redis?.stop();
    await removeTempDir(work);
  }
}

export const mixedFamily: Family = {
  name: 'mixed',
  summary: "manifest GETs at 50 connections while 4 clients upload 1 GiB each: manifest p99, upload MB/s, event-loop lag, the machine's floor and CPU per process",
  options: [
    roundsOption(3, 1),
    { name: 'connections', help: 'wrk connections on the manifest', full: 50, quick: 50, min: 1, max: 10_000 },
    { name: 'seconds', help: 'wrk duration per sample', full: 10, quick: 3, min: 1, max: 600 },
    { name: 'uploads', help: 'clients uploading at once', full: 4, quick: 4, min: 1, max: 64 },
    { name: 'size-mib', help: 'size of each upload', full: 1024, quick: 64, min: 1, max: 65_536 },
    { name: 'workers', help: 'also run Berth with http.workers: N and a Redis (issue #19) in the same rounds; 0 or 1 leaves it out', full: 2, quick: 2, min: 0, max: 64 },
    { name: 'floor', help: "also run the machine's floor in the same rounds: 1 one plain Node process answering the same manifest and receiving the same uploads (hashed, written, fsynced); 2 also the same split over two processes; 0 neither", full: 2, quick: 2, min: 0, max: 2 },
  ],
  run: runMixed,
};
