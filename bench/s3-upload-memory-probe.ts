/**
 * Hand-run probe (issue #18): where a 1 GiB S3 upload's peak RSS goes. Not part of `npm run bench`.
 *
 * Starts one Berth bundle on an S3 server already running (scripts/ceph-s3.sh), with
 * bench/lib/memory-sampler.mjs preloaded (process.memoryUsage() every 20 ms), uploads a 1 GiB blob once
 * untimed, then runs the plan: each step after SETTLE seconds idle, a 1 GiB monolithic PUT (`put`) or
 * 1 GiB in 64 MiB PATCHes (`patch`) through the bench's client. Per step it prints the peak RSS as the
 * s3 bench measures it, the RSS before, and at the peak the V8 heap (total, used) and arrayBuffers.
 *
 * Berth's /proc/<pid>/smaps_rollup is read every 100 ms too: at the peak it prints the anonymous
 * memory (malloc's heap and arenas, V8's heap, big mmapped buffers all count here) and the
 * file-backed rest (the node binary, libraries: the same in every run).
 *
 *   S3_PROBE_ENDPOINT=http://127.0.0.1:PORT BERTH_JS=dist/main.js SETTLE=12 PLAN=put,patch,patch \
 *     BERTH_ENV='MALLOC_ARENA_MAX=2' npx tsx bench/s3-upload-memory-probe.ts
 *
 * BERTH_ENV: space-separated NAME=value pairs set in Berth's environment only (not the probe's).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createBucket, testS3Client } from '../src/storage/driver/suite/s3-settings.js';
import { MiB } from './lib/blobdata.js';
import { uploadChunked, uploadMonolithic } from './lib/client.js';
import { freePort, sleep, startServer } from './lib/proc.js';
import { peakWatcher } from './lib/rss.js';
import { REPO_ROOT, waitForV2 } from './lib/servers.js';

const env = process.env;
const s3 = {
  endpoint: env['S3_PROBE_ENDPOINT'] ?? 'http://127.0.0.1:17480', accessKey: env['S3_PROBE_ACCESS'] ?? 'berthtestaccess',
  secretKey: env['S3_PROBE_SECRET'] ?? 'berthtestsecret', region: 'us-east-1', bucket: env['S3_PROBE_BUCKET'] ?? 'upprobe',
};
const size = Number(env['SIZE_MIB'] ?? 1024) * MiB;
const settleMs = Number(env['SETTLE'] ?? 12) * 1000;
const plan = (env['PLAN'] ?? 'put,patch,patch').split(',');
const samples = join(tmpdir(), `berth-memprobe-${process.pid}.csv`);

await createBucket(s3, s3.bucket).catch(() => undefined);
const port = await freePort();
const config = join(tmpdir(), `berth-memprobe-${process.pid}.yml`);
writeFileSync(config, [
  'version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  s3:', `    region: ${s3.region}`,
  `    regionendpoint: ${s3.endpoint}`, `    bucket: ${s3.bucket}`, `    accesskey: ${s3.accessKey}`, `    secretkey: ${s3.secretKey}`,
  '    rootdirectory: /probe', '    secure: false', '    chunksize: 10485760', '  redirect:', '    disable: true', '  delete:', '    enabled: true',
  '  maintenance:', '    uploadpurging:', '      enabled: false', 'http:', `  addr: 127.0.0.1:${port}`, '  secret: memory-probe',
].join('\n'));
const url = `http://127.0.0.1:${port}`;
process.env['MEMSAMPLE_FILE'] = samples;
const berthEnv = (env['BERTH_ENV'] ?? '').split(/\s+/).filter((pair) => pair.includes('='));
for (const pair of berthEnv) process.env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
// NODE_FLAGS: space-separated flags for Berth's node (e.g. `--trace-gc`; PRINT_OUTPUT=1 prints what it wrote).
const nodeFlags = (env['NODE_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');
const server = startServer(process.execPath, [...nodeFlags, '--import', join(REPO_ROOT, 'bench/lib/memory-sampler.mjs'), env['BERTH_JS'] ?? join(REPO_ROOT, 'dist/main.js'), 'serve', config], url);

interface Sample {
  readonly t: number; readonly rss: number; readonly heapTotal: number; readonly heapUsed: number; readonly arrayBuffers: number;
  /** Resident MiB of V8's new, old, code and large-object spaces. */
  readonly spaces: readonly number[];
}
function read(): Sample[] {
  return readFileSync(samples, 'utf8').trim().split('\n').slice(1).map((line) => {
    const [t = 0, rss = 0, heapTotal = 0, heapUsed = 0, , arrayBuffers = 0, ...spaces] = line.split(',').map(Number);
    return { t, rss, heapTotal, heapUsed, arrayBuffers, spaces };
  });
}

/** Resident memory (MiB) from smaps_rollup: all of it, and the anonymous part. */
async function rollup(pid: number): Promise<{ rss: number; anon: number; smaps?: string }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  const smaps = smapsDir === undefined ? undefined : await readFile(`/proc/${pid}/smaps`, 'utf8');
  return { rss: kib('Rss') / 1024, anon: kib('Anonymous') / 1024, ...(smaps !== undefined && { smaps }) };
}

/** With SMAPS_DIR set, Berth's whole /proc/<pid>/smaps is kept before each step and at its peak (`<step>-before.smaps`, `<step>-peak.smaps`). */
const smapsDir = env['SMAPS_DIR'];
function keepSmaps(name: string, smaps: string | undefined): void {
  if (smapsDir !== undefined && smaps !== undefined) writeFileSync(join(smapsDir, `${name}.smaps`), smaps);
}

/** Deletes the blob's object (the OSD keeps objects in memory: memstore), as the s3 bench does. */
async function dropBlob(digest: string): Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const client = testS3Client(s3);
  try {
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `probe/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data` }));
  } finally {
    client.destroy();
  }
}

try {
  await waitForV2(server, 60_000);
  for (const pair of berthEnv) delete process.env[pair.slice(0, pair.indexOf('='))];
  console.log(`Berth ${env['BERTH_JS'] ?? 'dist/main.js'}, environment: ${berthEnv.join(' ') || '(as the probe)'}`);
  const fresh = await rollup(server.pid);
  keepSmaps('fresh', fresh.smaps);
  console.log(`at rest after start: RSS ${fresh.rss.toFixed(1)} MiB, anonymous ${fresh.anon.toFixed(1)}`);
  await dropBlob(await uploadMonolithic(url, 'probe', 7, size));
  for (const [i, step] of plan.entries()) {
    await sleep(settleMs);
    keepSmaps(`${step}${i}-before`, (await rollup(server.pid)).smaps);
    const watch = peakWatcher(server.pid);
    await watch.start();
    let top: { rss: number; anon: number; smaps?: string } = { rss: 0, anon: 0 };
    const smaps = setInterval(() => {
      rollup(server.pid).then((r) => {
        if (r.rss > top.rss) top = r;
      }, () => undefined);
    }, 100);
    const from = Date.now();
    const digest = step === 'put' ? await uploadMonolithic(url, 'probe', 100 + i, size) : await uploadChunked(url, 'probe', 100 + i, size, 64 * MiB);
    const ms = Date.now() - from;
    await dropBlob(digest);
    const peak = await watch.stop();
    clearInterval(smaps);
    keepSmaps(`${step}${i}-peak`, top.smaps);
    await sleep(600); // the sampler writes 25 lines (500 ms) at a time
    const all = read();
    const during = all.filter((s) => s.t >= from);
    const before = all.filter((s) => s.t < from).at(-1);
    const atPeak = during.reduce((a, b) => (b.rss > a.rss ? b : a), during[0] ?? { t: 0, rss: 0, heapTotal: 0, heapUsed: 0, arrayBuffers: 0, spaces: [] });
    const mostBuffers = Math.max(...during.map((s) => s.arrayBuffers));
    console.log(`${step}${i}: peak ${peak.toFixed(1)} MiB (RSS before ${before?.rss ?? '?'}, spaces ${before?.spaces.join('/') ?? '?'}); at the peak heap ${atPeak.heapTotal} total, ${atPeak.heapUsed} used, arrayBuffers ${atPeak.arrayBuffers}, resident new/old/code/large spaces ${atPeak.spaces.join('/')}; arrayBuffers at most ${mostBuffers}; smaps at its peak: anonymous ${top.anon.toFixed(1)}, file ${(top.rss - top.anon).toFixed(1)}; ${ms} ms`);
  }
} finally {
  await server.stop();
  if (env['PRINT_OUTPUT'] === '1') console.log(server.output());
}
