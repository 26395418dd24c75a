/**
 * Hand-run probe (not a family): the `mixed` scenario (manifest GETs at 50 connections while UPLOADS
 * clients each PUT SIZE_MIB) on several Berth builds side by side, alternating, with what each one's
 * loop went through meanwhile. Builds are given as in probe-manifest-tail.ts (NAME=path/to/main.js, then
 * `::ENV=VALUE` and `::--node-flag`). With PROBE_PRELOAD=<file.cjs> that file is preloaded into every
 * build (`-r`) and sent SIGUSR2 before and after each sample (a loop-stat preload writes its figures
 * then). Per sample: requests/s, p50, p99, the uploads' MB/s, and the loop lag / GC from /metrics.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-mixed-tail.ts A=dist/main.js B=/tmp/x/main.js
 * PROBE_SECONDS (10), PROBE_ROUNDS (2), UPLOADS (4), SIZE_MIB (1024).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { pushSmallImage, uploadMonolithic } from './lib/client.js';
import { runWrk } from './lib/load.js';
import { freePort } from './lib/proc.js';
import { durationBuckets, slowerThan } from './lib/server-durations.js';
import { type Running, startBerth } from './lib/servers.js';
import { parseBuildArg } from './lib/builds.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
const REPO = 'bench/mixed';
const seconds = Number(process.env['PROBE_SECONDS'] ?? 10);
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 2);
const uploads = Number(process.env['UPLOADS'] ?? 4);
const size = Number(process.env['SIZE_MIB'] ?? 1024) * MiB;
const preload = process.env['PROBE_PRELOAD'];
const builds = process.argv.slice(2).map(parseBuildArg);

async function lag(url: string): Promise<string> {
  const text = await (await fetch(url)).text();
  const v = (name: string): string => ((Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) || 0) * 1000).toFixed(1);
  return `lag p99 ${v('nodejs_eventloop_lag_p99_seconds')} max ${v('nodejs_eventloop_lag_max_seconds')} ms`;
}

/** The share of the manifest GETs between two scrapes that the server itself saw take longer than 25, 50, 100 and 250 ms. */
function slowShares(before: string, after: string): string {
  const { count, percent } = slowerThan(durationBuckets(before, 'manifest', 'GET'), durationBuckets(after, 'manifest', 'GET'), [0.025, 0.05, 0.1, 0.25]);
  const [p25, p50, p100, p250] = percent.map((p) => p.toFixed(2));
  return `server-side: >25ms ${p25 ?? ''}%, >50ms ${p50 ?? ''}%, >100ms ${p100 ?? ''}%, >250ms ${p250 ?? ''}% of ${count}`;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const work = await mkdtemp(join(tmpdir(), 'berth-probe-mixed-'));
const servers: { name: string; berth: Running; metricsUrl: string; p99: number[]; rate: number[]; up: number[] }[] = [];
try {
  for (const b of builds) {
    const metricsPort = await freePort();
    for (const e of b.env) process.env[e.key] = e.value;
    const dir = join(work, b.name);
    await mkdir(dir, { recursive: true });
    const nodeFlags = [...(preload === undefined ? [] : ['-r', preload]), ...b.nodeFlags];
    const berth = await startBerth(join(dir, 'root'), dir, { command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true, metricsPort, nodeFlags });
    for (const e of b.env) delete process.env[e.key];
    servers.push({ name: b.name, berth, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, p99: [], rate: [], up: [] });
    await pushSmallImage(berth.url, REPO, 'latest', 91);
  }
  for (let i = 0; i < rounds; i++) {
    for (const s of i % 2 === 0 ? servers : [...servers].reverse()) {
      const seeds = Array.from({ length: uploads }, (_, k) => 7000 + i * 100 + k);
      for (const seed of seeds) blobDigest(seed, size);
      await lag(s.metricsUrl);
      const bucketsBefore = await (await fetch(s.metricsUrl)).text();
      if (preload !== undefined) process.kill(s.berth.server.pid, 'SIGUSR2');
      const started = performance.now();
      const load = runWrk({ url: `${s.berth.url}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections: 50, threads: 1, seconds }, work);
      const ends: string[] = [];
      const up = Promise.all(seeds.map((seed) => uploadMonolithic(s.berth.url, REPO, seed, size).then(() => ends.push(((performance.now() - started) / 1000).toFixed(1))))).then(() => performance.now() - started);
      const [r, ms] = await Promise.all([load, up]);
      if (preload !== undefined) process.kill(s.berth.server.pid, 'SIGUSR2');
      const l = `${await lag(s.metricsUrl)}; ${slowShares(bucketsBefore, await (await fetch(s.metricsUrl)).text())}`;
      const mbs = (uploads * size) / 1e6 / (ms / 1000);
      s.p99.push(r.p99Ms);
      s.rate.push(r.requestsPerSecond);
      s.up.push(mbs);
      console.log(`round ${i + 1} ${s.name}: ${r.requestsPerSecond.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}; uploads ${mbs.toFixed(0)} MB/s (ended at ${ends.join(', ')} s); ${l}`);
    }
  }
  for (const s of servers) console.log(`${s.name}: median ${median(s.rate).toFixed(0)} req/s, p99 ${median(s.p99).toFixed(2)} ms [${s.p99.map((v) => v.toFixed(2)).join(', ')}], uploads ${median(s.up).toFixed(0)} MB/s`);
} finally {
  for (const s of servers) await s.berth.server.stop();
  await rm(work, { recursive: true, force: true });
}
