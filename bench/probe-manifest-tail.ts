/**
 * Hand-run probe (not a family): manifest GET p99 of several Berth builds side by side, and what each
 * one's loop went through meanwhile. Each build (NAME=path/to/main.js, then optionally `::ENV=VALUE` for
 * an environment variable and `::--flag` for a Node flag of its own, as many as wanted) runs over its own root with the access log on (a default
 * install) and its /metrics on a debug port; one small image is pushed to each; then wrk (50
 * connections, 1 thread) runs PROBE_SECONDS (10) per sample, builds alternating (A B, then B A) for
 * PROBE_ROUNDS (3). Per sample: requests/s, p50, p99, and from /metrics (prom-client, reset by each
 * scrape) the event-loop lag p99 and max and the GC pauses by kind.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-manifest-tail.ts A=dist/main.js B=/tmp/x/main.js
 * PROBE_NODE_FLAGS: Node flags for every build (e.g. --trace-gc; its lines go to the bench's pipe).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushSmallImage } from './lib/client.js';
import { runWrk } from './lib/load.js';
import { freePort } from './lib/proc.js';
import { type Running, startBerth } from './lib/servers.js';
import { parseBuildArg } from './lib/builds.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
const seconds = Number(process.env['PROBE_SECONDS'] ?? 10);
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 3);
const flags = (process.env['PROBE_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');
const builds = process.argv.slice(2).map(parseBuildArg);

async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(nodejs_eventloop_lag_(?:p99|max)_seconds|nodejs_gc_duration_seconds_(?:sum|count)\{kind="(?:minor|major|incremental)"\}) (\S+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const work = await mkdtemp(join(tmpdir(), 'berth-probe-tail-'));
const servers: { name: string; berth: Running; metricsUrl: string; p99: number[]; rate: number[] }[] = [];
try {
  for (const b of builds) {
    const metricsPort = await freePort();
    for (const e of b.env) process.env[e.key] = e.value;
    const dir = join(work, b.name);
    await rm(dir, { recursive: true, force: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    const berth = await startBerth(join(dir, 'root'), dir, { command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true, metricsPort, nodeFlags: [...flags, ...b.nodeFlags] });
    for (const e of b.env) delete process.env[e.key];
    servers.push({ name: b.name, berth, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, p99: [], rate: [] });
    await pushSmallImage(berth.url, 'bench/manifests', 'latest', 77);
  }
  const run = (url: string, s: number) => runWrk({ url: `${url}/v2/bench/manifests/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections: 50, threads: 1, seconds: s }, work);
  for (const s of servers) await run(s.berth.url, 2);
  for (let i = 0; i < rounds; i++) {
    for (const s of i % 2 === 0 ? servers : [...servers].reverse()) {
      const before = await metrics(s.metricsUrl);
      const r = await run(s.berth.url, seconds);
      const after = await metrics(s.metricsUrl);
      const gc = (kind: string): string => {
        const key = (x: string): string => `nodejs_gc_duration_seconds_${x}{kind="${kind}"}`;
        const n = (after.get(key('count')) ?? 0) - (before.get(key('count')) ?? 0);
        const ms = ((after.get(key('sum')) ?? 0) - (before.get(key('sum')) ?? 0)) * 1000;
        return `${kind} ${n}× ${ms.toFixed(0)} ms`;
      };
      const ms = (k: string): string => ((after.get(k) ?? 0) * 1000).toFixed(1);
      s.p99.push(r.p99Ms);
      s.rate.push(r.requestsPerSecond);
      console.log(`round ${i + 1} ${s.name}: ${r.requestsPerSecond.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}; loop lag p99 ${ms('nodejs_eventloop_lag_p99_seconds')} max ${ms('nodejs_eventloop_lag_max_seconds')} ms; gc ${gc('minor')}, ${gc('major')}, ${gc('incremental')}`);
    }
  }
  for (const s of servers) console.log(`${s.name}: median ${median(s.rate).toFixed(0)} req/s, p99 ${median(s.p99).toFixed(2)} ms [${s.p99.map((v) => v.toFixed(2)).join(', ')}]`);
} finally {
  for (const s of servers) await s.berth.server.stop();
  await rm(work, { recursive: true, force: true });
}
