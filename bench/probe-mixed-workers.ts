/**
 * Hand-run probe (not a family, issue #19): where each process of Berth with `http.workers` spends the
 * `mixed` scenario (manifest GETs at 50 connections while UPLOADS clients each PUT SIZE_MIB), for one or
 * more builds, alternating. Each build runs with `http.workers: WORKERS` (2) and a Redis of its own.
 * Builds are `NAME=path/to/main.js` (then `::ENV=VALUE` and `::--node-flag`, as in probe-mixed-tail.ts;
 * a node flag such as `--cpu-prof` reaches the workers too: node:cluster forks them with the primary's
 * flags). Per sample, over wrk's window:
 * - req/s, p50, p99, the uploads' MB/s;
 * - CPU seconds of the primary and of each worker (main thread, other threads), of redis-server and of
 *   the bench's own process;
 * - the Redis commands run during the window (INFO commandstats before and after), per manifest GET;
 * - how the connections were spread: a few seconds into the window `ss` lists the API port's
 *   established connections by owning process, an upload being one that has received over 1 MiB.
 *   node:cluster's primary accepts every connection and hands it to a worker; a kept-alive connection
 *   stays on its worker, so this is the spread for the whole window.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-mixed-workers.ts main=/tmp/x/dist/main.js branch=dist/main.js
 * - how long each thread waited for a CPU (runnable, not running: /proc/<pid>/task/<tid>/schedstat).
 * Before the rounds, one untimed 2 s wrk per build once the pushed links are 2 s old (the filesystem
 * driver keeps a link's bytes only then). `::PROBE_RENICE_OTHERS=N` (an experiment) sets nice N on every
 * thread of the workers but their main threads once they started.
 * PROBE_SECONDS (10), PROBE_ROUNDS (2), UPLOADS (4, 0 for GETs alone), SIZE_MIB (1024), PROBE_CONNECTIONS (50), WORKERS (2).
 */
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestRedis, startRedis } from '../test/helpers/redis.js';
import { MiB, blobDigest } from './lib/blobdata.js';
import { pushSmallImage, uploadMonolithic } from './lib/client.js';
import { descendants, threadCpuSeconds } from './lib/cpu.js';
import { runWrk } from './lib/load.js';
import { type Server, freePort, run, sleep } from './lib/proc.js';
import { startBerth } from './lib/servers.js';
import { parseBuildArg } from './lib/builds.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
const REPO = 'bench/mixed';
const seconds = Number(process.env['PROBE_SECONDS'] ?? 10);
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 2);
const uploads = Number(process.env['UPLOADS'] ?? 4);
const connections = Number(process.env['PROBE_CONNECTIONS'] ?? 50);
const workerCount = Number(process.env['WORKERS'] ?? 2);
const size = Number(process.env['SIZE_MIB'] ?? 1024) * MiB;

interface Side {
  readonly name: string;
  readonly server: Server;
  readonly redis: TestRedis;
  readonly workers: number[];
  readonly p99: number[];
}

type Threads = Map<number, Map<number, number>>;

async function threadsOf(pids: readonly number[]): Promise<Threads> {
  return new Map(await Promise.all(pids.map(async (pid) => [pid, await threadCpuSeconds(pid)] as const)));
}

/** Seconds each thread of `pid` has spent runnable but waiting for a CPU (/proc/<pid>/task/<tid>/schedstat, second field). */
async function waitsOf(pids: readonly number[]): Promise<Threads> {
  const one = async (pid: number): Promise<Map<number, number>> => {
    const out = new Map<number, number>();
    for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => '');
      const waited = Number(text.split(' ')[1]);
      if (Number.isFinite(waited)) out.set(Number(tid), waited / 1e9);
    }
    return out;
  };
  return new Map(await Promise.all(pids.map(async (pid) => [pid, await one(pid)] as const)));
}

/** Main thread and other threads of `pid` between two readings, "main/others" in CPU seconds. */
function used(pid: number, a: Threads, b: Threads): string {
  let main = 0;
  let others = 0;
  for (const [tid, t] of b.get(pid) ?? new Map<number, number>()) {
    const d = t - (a.get(pid)?.get(tid) ?? 0);
    if (tid === pid) main += d;
    else others += d;
  }
  return `${main.toFixed(2)}/${others.toFixed(2)}`;
}

/** Redis's calls per command so far (INFO commandstats). */
async function commandStats(redis: TestRedis): Promise<Map<string, number>> {
  const text = await redis.command('INFO commandstats');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

/** The API port's established connections per owning pid: uploads (over 1 MiB received) and the others. */
async function spread(port: number): Promise<Map<number, { uploads: number; others: number }>> {
  const r = await run('ss', ['-tnpiH', 'state', 'established', `( sport = :${port} )`], { timeoutMs: 10_000 });
  const out = new Map<number, { uploads: number; others: number }>();
  const lines = r.stdout.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const pid = /pid=(\d+)/.exec(lines[i] ?? '');
    if (pid?.[1] === undefined) continue;
    const info = lines[i + 1] ?? '';
    const received = Number(/bytes_received:(\d+)/.exec(info)?.[1] ?? 0);
    const entry = out.get(Number(pid[1])) ?? { uploads: 0, others: 0 };
    if (received > MiB) entry.uploads += 1;
    else entry.others += 1;
    out.set(Number(pid[1]), entry);
  }
  return out;
}

const work = await mkdtemp(join(tmpdir(), 'berth-probe-mixed-workers-'));
const sides: Side[] = [];
console.log(`load average at the start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
try {
  for (const arg of process.argv.slice(2)) {
    const b = parseBuildArg(arg);
    for (const { key, value } of b.env) process.env[key] = value;
    const dir = join(work, b.name);
    await mkdir(dir, { recursive: true });
    const redis = await startRedis();
    const berth = await startBerth(join(dir, 'root'), dir, {
      command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true, metricsPort: await freePort(),
      nodeFlags: b.nodeFlags, workers: { count: workerCount, redisAddr: redis.addr },
    });
    for (const { key } of b.env) delete process.env[key];
    const workers = await descendants(berth.server.pid);
    // Experiment: PROBE_RENICE_OTHERS=N sets nice N on every thread of the workers but their main threads.
    const renice = Number(b.env.find((e) => e.key === 'PROBE_RENICE_OTHERS')?.value ?? 0);
    if (renice !== 0) for (const w of workers) for (const tid of (await threadCpuSeconds(w)).keys()) if (tid !== w) setPriority(tid, renice);
    sides.push({ name: b.name, server: berth.server, redis, workers, p99: [] });
    await pushSmallImage(berth.url, REPO, 'latest', 91);
    console.log(`${b.name}: primary ${berth.server.pid}, workers ${workers.join(', ')}, redis ${redis.child.pid ?? '?'}`);
  }
  // Untimed warm-up once the links are 2 s old (the filesystem driver keeps a link's bytes only then).
  await sleep(2100);
  for (const s of sides) await runWrk({ url: `${s.server.url}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections, threads: 1, seconds: 2 }, work);
  for (let i = 0; i < rounds; i++) {
    for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
      const seeds = Array.from({ length: uploads }, (_, k) => 9000 + i * 100 + k);
      for (const seed of seeds) blobDigest(seed, size);
      const pids = [s.server.pid, ...s.workers, s.redis.child.pid ?? 0, process.pid];
      const before = await threadsOf(pids);
      const waitedBefore = await waitsOf(pids);
      const statsBefore = await commandStats(s.redis);
      const started = performance.now();
      const load = runWrk({ url: `${s.server.url}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections, threads: 1, seconds }, work);
      const window = load.then(async () => ({ threads: await threadsOf(pids), waited: await waitsOf(pids), stats: await commandStats(s.redis) }));
      const up = Promise.all(seeds.map((seed) => uploadMonolithic(s.server.url, REPO, seed, size))).then((digests) => ({ digests, ms: performance.now() - started }));
      await sleep(Math.min(3000, (seconds * 1000) / 3));
      const port = Number(new URL(s.server.url).port);
      const conns = await spread(port);
      const [w, after, { digests, ms }] = await Promise.all([load, window, up]);
      s.p99.push(w.p99Ms);
      const calls = [...after.stats].map(([cmd, n]) => [cmd, n - (statsBefore.get(cmd) ?? 0)] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      const total = calls.reduce((a, [, n]) => a + n, 0);
      console.log(
        `round ${i + 1} ${s.name}: ${w.requestsPerSecond.toFixed(0)} req/s (${w.requests} GETs), p50 ${w.p50Ms.toFixed(2)} ms, p99 ${w.p99Ms.toFixed(2)} ms; uploads ${((uploads * size) / 1e6 / (ms / 1000)).toFixed(0)} MB/s\n` +
          `  CPU s main/others over wrk's ${seconds} s: primary ${used(s.server.pid, before, after.threads)}; ` +
          s.workers.map((p, k) => `worker ${k + 1} ${used(p, before, after.threads)}`).join('; ') +
          `; redis ${used(s.redis.child.pid ?? 0, before, after.threads)}; bench ${used(process.pid, before, after.threads)}\n` +
          `  waiting for a CPU, s main/others: primary ${used(s.server.pid, waitedBefore, after.waited)}; ` +
          s.workers.map((p, k) => `worker ${k + 1} ${used(p, waitedBefore, after.waited)}`).join('; ') + `; bench ${used(process.pid, waitedBefore, after.waited)}\n` +
          `  connections at ${Math.min(3, seconds / 3).toFixed(0)} s: ` +
          [...conns].map(([pid, c]) => `${pid === s.server.pid ? 'primary' : `worker ${s.workers.indexOf(pid) + 1}`} ${c.uploads} uploads + ${c.others} others`).join('; ') + '\n' +
          `  redis: ${total} commands (${(total / Math.max(1, w.requests)).toFixed(3)} per GET): ${calls.slice(0, 8).map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}`,
      );
      for (const d of digests) await rm(join(work, s.name, 'root', 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7)), { recursive: true, force: true });
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const s of sides) console.log(`${s.name}: p99 median ${median(s.p99).toFixed(2)} ms [${s.p99.map((v) => v.toFixed(2)).join(', ')}]`);
} finally {
  for (const s of sides) {
    await s.server.stop(30_000);
    await s.redis.stop();
  }
  await rm(work, { recursive: true, force: true });
  console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
