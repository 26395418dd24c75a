/**
 * Scenario family `manifests` (issue #8): manifest GET and HEAD by tag under load, the first requests
 * of every pull. Each server gets the same small OCI image pushed through its API (one 4 KiB layer, a
 * config, the manifest tagged `latest`); then wrk holds `connections` connections open for `seconds`
 * per sample, each request `GET` (or `HEAD`) `/v2/bench/manifests/manifests/latest` with the Accept
 * header docker sends. Rows: requests per second, and the p50 and p99 latency the load generator saw,
 * for each method (wrk for GET; hey for HEAD, which wrk cannot send: bench/lib/load.ts).
 */
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { pushSmallImage, send } from './lib/client.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, alternate, atLeastFor, atMost, formatValue, median } from './lib/report.js';
import { type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';
import { type LoadResult, runHey, runWrk } from './lib/load.js';
import { join } from 'node:path';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
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
  try {
    const accessLog = opt(o, 'access-log') === 1;
    const berth = await startBerth(join(work, 'berth'), work, { command: ctx.berth, level: 'warn', accessLog, nodeFlags: profileFlags(ctx, 'manifests') });
    running.push(berth);
    const reg = await startRegistry2(join(work, 'registry2'), work);
    running.push(reg);
    const url: Record<Target, string> = { berth: berth.url, registry2: reg.url };
    ctx.log(`manifests: Berth at ${berth.url}, registry:2 at ${reg.url}`);
    const digest: Record<Target, string> = { berth: '', registry2: '' };
    for (const t of TARGETS) digest[t] = await pushSmallImage(url[t], REPO, 'latest', 77);
    if (digest.berth !== digest.registry2) throw new Error(`the two pushes gave different digests: ${digest.berth} ${digest.registry2}`);
    for (const t of TARGETS) {
      const a = await send(`${url[t]}/v2/${REPO}/manifests/latest`, 'GET', { Accept: ACCEPT }, undefined);
      if (a.status !== 200 || a.headers['docker-content-digest'] !== digest[t]) {
        throw new Error(`${TARGET_LABEL[t]} GET manifest: ${a.status} ${String(a.headers['docker-content-digest'])}`);
      }
    }
    const connections = opt(o, 'connections');
    const seconds = opt(o, 'seconds');
    const rows: Row[] = [];
    const notes: string[] = [
      accessLog
        ? `Berth: ${ctx.berth.label}, log level info with the access log on (a default install: one JSON line per request on stderr, read by the bench); registry:2 log level error with the access log disabled`
        : `Berth: ${ctx.berth.label}, log level warn (no line per request); registry:2 log level error with the access log disabled`,
      `image: one 4 KiB layer, a config and an OCI manifest tagged latest (${digest.berth}), pushed through each server's API`,
    ];
    for (const method of ['GET', 'HEAD'] as const) {
      const target = (t: Target): string => `${url[t]}/v2/${REPO}/manifests/latest`;
      const load = (t: Target, s: number): Promise<LoadResult> =>
        method === 'GET'
          ? runWrk({ url: target(t), method, headers: { Accept: ACCEPT }, connections, threads: opt(o, 'threads'), seconds: s }, work)
          : runHey({ url: target(t), method, headers: { Accept: ACCEPT }, connections, seconds: s });
      for (const t of TARGETS) await load(t, 2); // warm-up
      const p50: Record<Target, number[]> = { berth: [], registry2: [] };
      const p99: Record<Target, number[]> = { berth: [], registry2: [] };
      const rate = await alternate(opt(o, 'rounds'), TARGETS, async (t) => {
        const r = await load(t, seconds);
        if (r.errors > 0 || r.requests === 0) throw new Error(`${TARGET_LABEL[t]} manifest ${method}: ${r.errors} errors in ${r.requests} requests`);
        p50[t].push(r.p50Ms);
        p99[t].push(r.p99Ms);
        return r.requestsPerSecond;
      });
      ctx.log(`  manifest ${method}: Berth ${formatValue(median(rate.berth), 'req/s')} (p99 ${formatValue(median(p99.berth), 'ms')}), registry:2 ${formatValue(median(rate.registry2), 'req/s')} (p50 ${formatValue(median(p50.registry2), 'ms')})`);
      const what = `manifest ${method} by tag, ${connections} connections`;
      rows.push(
        { scenario: what, unit: 'req/s', samples: rate, goal: atLeastFor('req/s', 5), note: `${method === 'GET' ? 'wrk' : 'hey on one CPU (wrk cannot send HEAD)'}, ${seconds} s per sample, every answer checked to be 2xx` },
        { scenario: `${what}, p50 latency`, unit: 'ms', samples: p50 },
        {
          scenario: `${what}, p99 latency`,
          unit: 'ms',
          samples: p99,
          ...(method === 'GET' && { goal: atMost(20, 'ms') }),
        },
      );
    }
    notes.push(`rounds: ${opt(o, 'rounds')} per scenario after a 2 s untimed warm-up per server; A B then B A, alternating; wrk with ${opt(o, 'threads')} thread(s) for GET, hey on one CPU for HEAD`);
    return { family: 'manifests', title: 'Manifests under load: Berth vs registry:2', rows, notes };
  } finally {
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
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
    { name: 'access-log', help: "1: Berth logs at info with its access log on (the default install, issue #19's target); 0: warn, no line per request", full: 1, quick: 1, min: 0, max: 1 },
  ],
  run: runManifests,
};
