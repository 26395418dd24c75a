/**
 * Hand-run probe (not a family): who is on the two cores during the `mixed` scenario (manifest GETs at
 * 50 connections while UPLOADS clients each PUT SIZE_MIB), for Berth builds and the machine's floor
 * (lib/limit-receiver.ts answering Berth's recorded manifest answer, as the family runs it), alternating.
 * Builds are `NAME=path/to/main.js` (then `::ENV=VALUE` and `::--node-flag`, as in probe-mixed-tail.ts);
 * the word `floor` adds the floor, `floor2` the floor over two processes (manifest answers in one, the
 * uploads into another; its receiver's threads are given apart). Per sample, over wrk's window: req/s, p50, p99, the uploads' MB/s;
 * CPU seconds of the server's main thread and of its other threads (libuv's pool, V8's helpers), of the
 * bench's own process (the upload client; main thread and others), of wrk, and of the whole machine.
 * With PROBE_PERF=sched, `perf sched record -a` runs over wrk's window and the probe prints each of
 * those threads' scheduling delay (runnable but not on a CPU: average, maximum) from `perf sched latency`.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-mixed-cpu.ts floor main=/tmp/x/dist/main.js
 * PROBE_SECONDS (10), PROBE_ROUNDS (2), UPLOADS (4), SIZE_MIB (1024), PROBE_CONNECTIONS (50).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { pushSmallImage, uploadMonolithic } from './lib/client.js';
import { allProcessesCpuSeconds, busiestBetween, machineCpuSeconds, mainAndOthers, reapedChildrenCpuSeconds, threadCpuSeconds } from './lib/cpu.js';
import { runWrk } from './lib/load.js';
import { recordManifestAnswer, startFloor } from './lib/manifest-floor.js';
import { type Server, freePort, run, startServer } from './lib/proc.js';
import { startBerth } from './lib/servers.js';
import { parseBuildArg } from './lib/builds.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
const REPO = 'bench/mixed';
const seconds = Number(process.env['PROBE_SECONDS'] ?? 10);
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 2);
const uploads = Number(process.env['UPLOADS'] ?? 4);
const connections = Number(process.env['PROBE_CONNECTIONS'] ?? 50);
const size = Number(process.env['SIZE_MIB'] ?? 1024) * MiB;
const perf = process.env['PROBE_PERF'];

interface Side {
  readonly name: string;
  readonly server: Server;
  /** Where the uploads go when not to `server` (the two-process floor's receiver). */
  readonly receiver?: Server;
  readonly p99: number[];
}

async function snapshot(serverPid: number, receiverPid = 0): Promise<{ server: Map<number, number>; receiver: Map<number, number>; bench: Map<number, number>; wrk: number; machine: { busy: number; total: number } }> {
  return { server: await threadCpuSeconds(serverPid), receiver: receiverPid === 0 ? new Map() : await threadCpuSeconds(receiverPid), bench: await threadCpuSeconds(process.pid), wrk: await reapedChildrenCpuSeconds(), machine: await machineCpuSeconds() };
}

/** `perf sched latency --pids` lines for the threads of `pids` and for wrk: tid → "avg / max delay, runtime". */
async function schedLines(file: string, who: Record<string, number>): Promise<string> {
  const r = await run('perf', ['sched', 'latency', '--pids', '-i', file], { timeoutMs: 120_000 });
  const lines = r.stdout.split('\n');
  const out: string[] = [];
  for (const [label, pid] of Object.entries(who)) {
    const tids = new Set((await threadCpuSeconds(pid)).keys());
    const mine = lines.filter((l) => {
      const m = /^\s*\S+?:(\d+)\s*\|/.exec(l);
      return m?.[1] !== undefined && tids.has(Number(m[1]));
    });
    // The main thread always, then the other threads with the longest average delays.
    const main = mine.filter((l) => l.includes(`:${pid} `));
    const rest = mine.filter((l) => !l.includes(`:${pid} `)).slice(0, 4);
    out.push(...[...main, ...rest].map((l) => `    ${label}${main.includes(l) ? ' main thread' : ''}: ${l.trim().replace(/\s+/g, ' ')}`));
  }
  out.push(...lines.filter((l) => /^\s*wrk/.test(l)).map((l) => `    wrk: ${l.trim().replace(/\s+/g, ' ')}`));
  return out.join('\n');
}

const work = await mkdtemp(join(tmpdir(), 'berth-probe-mixed-cpu-'));
const sides: Side[] = [];
console.log(`load average at the start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
try {
  const args = process.argv.slice(2);
  for (const arg of args.filter((a) => a !== 'floor' && a !== 'floor2')) {
    const b = parseBuildArg(arg);
    for (const { key, value } of b.env) process.env[key] = value;
    const dir = join(work, b.name);
    await mkdir(dir, { recursive: true });
    const berth = await startBerth(join(dir, 'root'), dir, { command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true, metricsPort: await freePort(), nodeFlags: b.nodeFlags });
    for (const { key } of b.env) delete process.env[key];
    sides.push({ name: b.name, server: berth.server, p99: [] });
    await pushSmallImage(berth.url, REPO, 'latest', 91);
  }
  const answer = join(work, 'manifest-answer.json');
  if (args.includes('floor') || args.includes('floor2')) {
    const first = sides[0];
    if (first === undefined) throw new Error('floor needs a Berth build first (its manifest answer is recorded)');
    await recordManifestAnswer(`${first.server.url}/v2/${REPO}/manifests/latest`, ACCEPT, answer);
  }
  if (args.includes('floor')) sides.push({ name: 'floor', server: await startFloor(join(work, 'floor'), answer), p99: [] });
  if (args.includes('floor2')) sides.push({ name: 'floor2', server: await startFloor(join(work, 'floor2'), answer), receiver: await startFloor(join(work, 'floor2-uploads')), p99: [] });
  for (let i = 0; i < rounds; i++) {
    for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
      const seeds = Array.from({ length: uploads }, (_, k) => 9000 + i * 100 + k);
      for (const seed of seeds) blobDigest(seed, size);
      const perfFile = join(work, `sched-${s.name}-${i}.data`);
      const recorder = perf === 'sched' ? startServer('perf', ['sched', 'record', '-a', '-o', perfFile, '--', 'sleep', String(seconds)], '') : undefined;
      if (recorder !== undefined) await new Promise((r) => setTimeout(r, 300)); // perf's own start
      const othersBefore = await allProcessesCpuSeconds();
      const before = await snapshot(s.server.pid, s.receiver?.pid);
      const started = performance.now();
      const load = runWrk({ url: `${s.server.url}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections, threads: 1, seconds }, work);
      const window = load.then(async () => ({ ...(await snapshot(s.server.pid, s.receiver?.pid)), others: await allProcessesCpuSeconds() }));
      const up = Promise.all(seeds.map((seed) => uploadMonolithic((s.receiver ?? s.server).url, REPO, seed, size))).then((digests) => ({ digests, ms: performance.now() - started }));
      const [w, after, { digests, ms }] = await Promise.all([load, window, up]);
      const busiest = busiestBetween(othersBefore, after.others, new Set([s.server.pid, s.receiver?.pid ?? 0, process.pid]), 4);
      if (recorder !== undefined) await recorder.waitFor(/perf record: Captured/, 60_000);
      const server = mainAndOthers(s.server.pid, before.server, after.server);
      const bench = mainAndOthers(process.pid, before.bench, after.bench);
      const receiver = mainAndOthers(s.receiver?.pid ?? 0, before.receiver, after.receiver);
      const wrk = after.wrk - before.wrk;
      const busy = after.machine.busy - before.machine.busy;
      const total = after.machine.total - before.machine.total;
      s.p99.push(w.p99Ms);
      console.log(
        `round ${i + 1} ${s.name}: ${w.requestsPerSecond.toFixed(0)} req/s, p50 ${w.p50Ms.toFixed(2)} ms, p99 ${w.p99Ms.toFixed(2)} ms; uploads ${((uploads * size) / 1e6 / (ms / 1000)).toFixed(0)} MB/s\n` +
          `  CPU s over wrk's ${seconds} s: server main ${server.main.toFixed(2)}, server others ${server.others.toFixed(2)}; bench main ${bench.main.toFixed(2)}, bench others ${bench.others.toFixed(2)}; wrk ${wrk.toFixed(2)}; ` +
          (s.receiver === undefined ? '' : `uploads' receiver main ${receiver.main.toFixed(2)}, others ${receiver.others.toFixed(2)}; `) +
          `rest ${(busy - server.main - server.others - receiver.main - receiver.others - bench.main - bench.others - wrk).toFixed(2)}; machine busy ${((100 * busy) / total).toFixed(0)}% of ${total.toFixed(1)}\n` +
          `  other processes with the most CPU over the window: ${busiest.join(', ') || 'none above 0.05 s'}`,
      );
      if (recorder !== undefined) console.log(await schedLines(perfFile, { server: s.server.pid, ...(s.receiver === undefined ? {} : { receiver: s.receiver.pid }), bench: process.pid }));
      if (!s.name.startsWith('floor')) for (const d of digests) await rm(join(work, s.name, 'root', 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7)), { recursive: true, force: true });
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const s of sides) console.log(`${s.name}: p99 median ${median(s.p99).toFixed(2)} ms [${s.p99.map((v) => v.toFixed(2)).join(', ')}]`);
} finally {
  for (const s of sides) {
    await s.server.stop();
    await s.receiver?.stop();
  }
  await rm(work, { recursive: true, force: true });
  console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
