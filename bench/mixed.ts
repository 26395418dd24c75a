/**
 * Scenario family `mixed` (issue #19): manifest pulls while big uploads run. Each server gets one small
 * image; then, per sample, `uploads` clients each PUT a `size-mib` blob (POST, then one PUT `?digest=`)
 * while wrk holds `connections` connections on the manifest GET for `seconds`. Rows: the manifest
 * requests/s and p99 latency under that load, and the uploads' combined throughput (all bytes over
 * the time until the last upload is acknowledged). For Berth, its event-loop lag over the sample is read
 * from its own metrics (`nodejs_eventloop_lag_p99_seconds` and `_max_`, which prom-client resets on
 * every scrape: one scrape just before the sample, one just after), showing what the hashing and
 * writing cost the loop. wrk's window starts with the uploads; if they end first, its tail is unloaded.
 */
import { rm } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { pushSmallImage, uploadMonolithic } from './lib/client.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { runWrk } from './lib/load.js';
import { freePort, makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, alternate, atMost, formatValue, median, timed } from './lib/report.js';
import { type Running, type Target, startBerth, startRegistry2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const REPO = 'bench/mixed';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

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
}

async function runMixed(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-mixed-');
  const running: Running[] = [];
  try {
    const metricsPort = await freePort();
    const root: Record<Target, string> = { berth: join(work, 'berth'), registry2: join(work, 'registry2') };
    const berth = await startBerth(root.berth, work, { command: ctx.berth, level: 'warn', accessLog: true, metricsPort, nodeFlags: profileFlags(ctx, 'mixed') });
    running.push(berth);
    const reg = await startRegistry2(root.registry2, work);
    running.push(reg);
    const url: Record<Target, string> = { berth: berth.url, registry2: reg.url };
    for (const t of TARGETS) await pushSmallImage(url[t], REPO, 'latest', 91);
    const size = opt(o, 'size-mib') * MiB;
    const uploads = opt(o, 'uploads');
    const lag: { p99: number[]; max: number[] } = { p99: [], max: [] };
    const samples: Record<Target, Sample[]> = { berth: [], registry2: [] };
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    await alternate(opt(o, 'rounds'), TARGETS, async (t, r) => {
      const seeds = Array.from({ length: uploads }, (_, i) => 5000 + r * 100 + i);
      for (const seed of seeds) blobDigest(seed, size); // hashed before the clock starts
      if (t === 'berth') await scrape(metricsUrl); // resets the lag histogram
      const load = runWrk({ url: `${url[t]}/v2/${REPO}/manifests/latest`, method: 'GET', headers: { Accept: ACCEPT }, connections: opt(o, 'connections'), threads: 1, seconds: opt(o, 'seconds') }, work);
      const up = timed(() => Promise.all(seeds.map((seed) => uploadMonolithic(url[t], REPO, seed, size))));
      const [w, { ms, value: digests }] = await Promise.all([load, up]);
      if (t === 'berth') {
        const text = await scrape(metricsUrl);
        lag.p99.push(metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000);
        lag.max.push(metric(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
      }
      if (w.errors > 0 || w.requests === 0) throw new Error(`${t} manifest GET under uploads: ${w.errors} errors in ${w.requests} requests`);
      for (const d of digests) await rm(join(root[t], 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7)), { recursive: true, force: true });
      samples[t].push({ rate: w.requestsPerSecond, p99: w.p99Ms, uploadMBs: (uploads * size) / 1e6 / (ms / 1000) });
      return w.requestsPerSecond;
    });
    const pick = (f: (s: Sample) => number): Record<Target, number[]> => ({ berth: samples.berth.map(f), registry2: samples.registry2.map(f) });
    const what = `manifest GET, ${opt(o, 'connections')} connections, while ${uploads} clients each PUT ${opt(o, 'size-mib')} MiB`;
    const lagLine = `Berth's event-loop lag during each sample (nodejs_eventloop_lag_*_seconds): p99 ${lag.p99.map((v) => v.toFixed(1)).join(', ')} ms (median ${formatValue(median(lag.p99), 'ms')}); max ${lag.max.map((v) => v.toFixed(1)).join(', ')} ms`;
    ctx.log(`  ${lagLine}`);
    return {
      family: 'mixed',
      title: 'Mixed load: manifest pulls during big uploads, Berth vs registry:2',
      rows: [
        { scenario: what, unit: 'req/s', samples: pick((s) => s.rate), note: `wrk for ${opt(o, 'seconds')} s from the uploads' start; every answer checked to be 2xx` },
        { scenario: `${what}, p99 latency`, unit: 'ms', samples: pick((s) => s.p99), goal: atMost(50, 'ms') },
        { scenario: `the ${uploads} uploads together`, unit: 'MB/s', samples: pick((s) => s.uploadMBs), note: 'all bytes over the time until the last upload was acknowledged (201)' },
      ],
      notes: [
        `Berth: ${ctx.berth.label}, log level info with the access log on; registry:2 log level error with the access log disabled`,
        lagLine,
        `rounds: ${opt(o, 'rounds')}; A B then B A, alternating; each sample's blobs removed from the root afterwards (untimed)`,
      ],
    };
  } finally {
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    await removeTempDir(work);
  }
}

export const mixedFamily: Family = {
  name: 'mixed',
  summary: 'manifest GETs at 50 connections while 4 clients upload 1 GiB each: manifest p99, upload MB/s, event-loop lag',
  options: [
    roundsOption(3, 1),
    { name: 'connections', help: 'wrk connections on the manifest', full: 50, quick: 50, min: 1, max: 10_000 },
    { name: 'seconds', help: 'wrk duration per sample', full: 10, quick: 3, min: 1, max: 600 },
    { name: 'uploads', help: 'clients uploading at once', full: 4, quick: 4, min: 1, max: 64 },
    { name: 'size-mib', help: 'size of each upload', full: 1024, quick: 64, min: 1, max: 65_536 },
  ],
  run: runMixed,
};
