/**
 * Scenario family `manifests` (issue #8): manifest GET and HEAD by tag under load, the first requests
 * of every pull. Each server gets the same small OCI image pushed through its API (one 4 KiB layer, a
 * config, the manifest tagged `latest`); then wrk holds `connections` connections open for `seconds`
 * per sample, each request `GET` (or `HEAD`) `/v2/bench/manifests/manifests/latest` with the Accept
 * header docker sends. Rows: requests per second, and the p50 and p99 latency the load generator saw,
 * for each method (wrk for GET; hey for HEAD, which wrk cannot send: bench/lib/load.ts).
 *
 * With `--workers N` (2 by default; 0 leaves it out) a third server runs in the same rounds: Berth with
 * `http.workers: N` and a Redis of its own (issue #19), reported as extra rows against the same
 * registry:2 samples.
 */
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { pushSmallImage, send } from './lib/client.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, alternateSides, atLeastFor, atMost, formatValue, median } from './lib/report.js';
import { type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';
import { type LoadResult, runHey, runWrk } from './lib/load.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestRedis, startRedis } from '../test/helpers/redis.js';

/** The servers of one run: the two targets, and Berth with `http.workers`. */
type Side = Target | 'workers';
const SIDE_LABEL: Record<Side, string> = { ...TARGET_LABEL, workers: 'Berth (workers)' };
const REPO = 'bench/manifests';
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

async function runManifests(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-manifests-');
  const running: Running[] = [];
  let redis: TestRedis | undefined;
  try {
    const accessLog = opt(o, 'access-log') === 1;
    const workerCount = opt(o, 'workers');
    const berth = await startBerth(join(work, 'berth'), work, { command: ctx.berth, level: 'warn', accessLog, nodeFlags: profileFlags(ctx, 'manifests') });
    running.push(berth);
    const reg = await startRegistry2(join(work, 'registry2'), work);
    running.push(reg);
    const url: Partial<Record<Side, string>> = { berth: berth.url, registry2: reg.url };
    if (workerCount > 1) {
      redis = await startRedis();
      await mkdir(join(work, 'w'));
      const workers = await startBerth(join(work, 'berth-workers'), join(work, 'w'), {
        command: ctx.berth, level: 'warn', accessLog, workers: { count: workerCount, redisAddr: redis.addr },
      });
      running.push(workers);
      url.workers = workers.url;
    }
    const sides = (workerCount > 1 ? ['berth', 'workers', 'registry2'] : ['berth', 'registry2']) as readonly Side[];
    const at = (side: Side): string => url[side] ?? '';
    ctx.log(`manifests: ${sides.map((side) => `${SIDE_LABEL[side]} at ${at(side)}`).join(', ')}`);
    const digest: Partial<Record<Side, string>> = {};
    for (const side of sides) digest[side] = await pushSmallImage(at(side), REPO, 'latest', 77);
    if (sides.some((side) => digest[side] !== digest.berth)) throw new Error(`the pushes gave different digests: ${JSON.stringify(digest)}`);
    for (const side of sides) {
      const a = await send(`${at(side)}/v2/${REPO}/manifests/latest`, 'GET', { Accept: ACCEPT }, undefined);
      if (a.status !== 200 || a.headers['docker-content-digest'] !== digest[side]) {
        throw new Error(`${SIDE_LABEL[side]} GET manifest: ${a.status} ${String(a.headers['docker-content-digest'])}`);
      }
    }
    const connections = opt(o, 'connections');
    const seconds = opt(o, 'seconds');
    const rows: Row[] = [];
    const notes: string[] = [
      accessLog
        ? `Berth: ${ctx.berth.label}, log level info with the access log on (a default install: one JSON line per request on stderr, read by the bench); registry:2 log level error with the access log disabled`
        : `Berth: ${ctx.berth.label}, log level warn (no line per request); registry:2 log level error with the access log disabled`,
      `image: one 4 KiB layer, a config and an OCI manifest tagged latest (${String(digest.berth)}), pushed through each server's API`,
      ...(workerCount > 1 ? [`Berth (workers): the same Berth with http.workers: ${workerCount} and a Redis of its own (redis-server on loopback, nothing saved), in the same rounds; its rows compare it with the same registry:2 samples`] : []),
    ];
    for (const method of ['GET', 'HEAD'] as const) {
      const target = (side: Side): string => `${at(side)}/v2/${REPO}/manifests/latest`;
      const load = (side: Side, s: number): Promise<LoadResult> =>
        method === 'GET'
          ? runWrk({ url: target(side), method, headers: { Accept: ACCEPT }, connections, threads: opt(o, 'threads'), seconds: s }, work)
          : runHey({ url: target(side), method, headers: { Accept: ACCEPT }, connections, seconds: s });
      for (const side of sides) await load(side, 2); // warm-up
      const p50: Partial<Record<Side, number[]>> = {};
      const p99: Partial<Record<Side, number[]>> = {};
      const rate = await alternateSides(opt(o, 'rounds'), sides, async (side) => {
        const r = await load(side, seconds);
        if (r.errors > 0 || r.requests === 0) throw new Error(`${SIDE_LABEL[side]} manifest ${method}: ${r.errors} errors in ${r.requests} requests`);
        (p50[side] ??= []).push(r.p50Ms);
        (p99[side] ??= []).push(r.p99Ms);
        return r.requestsPerSecond;
      });
      const of = (m: Partial<Record<Side, number[]>>, side: Side): number[] => m[side] ?? [];
      ctx.log(`  manifest ${method}: ${sides.map((side) => `${SIDE_LABEL[side]} ${formatValue(median(of(rate, side)), 'req/s')} (p99 ${formatValue(median(of(p99, side)), 'ms')})`).join(', ')}`);
      const what = `manifest ${method} by tag, ${connections} connections`;
      const versus = (m: Partial<Record<Side, number[]>>, berthSide: 'berth' | 'workers'): Record<Target, number[]> => ({ berth: of(m, berthSide), registry2: of(m, 'registry2') });
      for (const berthSide of sides.filter((side): side is 'berth' | 'workers' => side !== 'registry2')) {
        const label = berthSide === 'workers' ? `${what}, Berth with http.workers: ${workerCount} + redis` : what;
        rows.push(
          { scenario: label, unit: 'req/s', samples: versus(rate, berthSide), goal: atLeastFor('req/s', 5), note: `${method === 'GET' ? 'wrk' : 'hey on one CPU (wrk cannot send HEAD)'}, ${seconds} s per sample, every answer checked to be 2xx` },
          { scenario: `${label}, p50 latency`, unit: 'ms', samples: versus(p50, berthSide) },
          { scenario: `${label}, p99 latency`, unit: 'ms', samples: versus(p99, berthSide), goal: atMost(20, 'ms') },
        );
      }
    }
    notes.push(`rounds: ${opt(o, 'rounds')} per scenario after a 2 s untimed warm-up per server; ${sides.map((side) => SIDE_LABEL[side]).join(' ')} then the reverse, alternating; wrk with ${opt(o, 'threads')} thread(s) for GET, hey on one CPU for HEAD`);
    return { family: 'manifests', title: 'Manifests under load: Berth vs registry:2', rows, notes };
  } finally {
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    await redis?.stop();
    await removeTempDir(work);
  }
}

export const manifestsFamily: Family = {
  name: 'manifests',
  summary: 'manifest GET (wrk) and HEAD (hey) by tag at 50 connections: requests/s, p50, p99',
  options: [
    roundsOption(3, 3),
    { name: 'connections', help: 'wrk connections', full: 50, quick: 50, min: 1, max: 10_000 },
    { name: 'seconds', help: 'wrk duration per sample', full: 10, quick: 3, min: 1, max: 600 },
    { name: 'threads', help: 'wrk threads', full: 1, quick: 1, min: 1, max: 64 },
    { name: 'workers', help: 'also run Berth with http.workers: N and a Redis (issue #19) in the same rounds; 0 or 1 leaves it out', full: 2, quick: 2, min: 0, max: 64 },
    { name: 'access-log', help: "1: Berth logs at info with its access log on (the default install, issue #19's target); 0: warn, no line per request", full: 1, quick: 1, min: 0, max: 1 },
  ],
  run: runManifests,
};
