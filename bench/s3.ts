/**
 * Scenario family `s3` (issue #7): 1 GiB blob push and pull through Berth and through docker-registry
 * 2.8, both on S3, the same single-node Ceph RGW (scripts/ceph-s3.sh, started for the run through the
 * tests' vitest-free test/helpers/ceph-server.ts, and stopped at the end).
 *
 * Each server has its own bucket and the same settings: rootdirectory `/bench`, `chunksize`
 * (`part-mib`), `storage.redirect.disable: true` (blob GETs stream through the server instead of a 307
 * to a presigned URL, so the server is what is measured), deletes on, upload purging and the storage
 * health check off. Each keeps its own defaults for moving a finished upload to its blob path
 * (registry:2 copies objects over 32 MiB with UploadPartCopy in 32 MiB parts; Berth with one
 * CopyObject up to 5 GiB). Per scenario, one untimed warm-up per server, then `rounds` alternating
 * rounds (A B, B A, …), as in the `blobs` family:
 *
 * 1. monolithic upload of a `size-mib` blob (POST, then one PUT `?digest=` with every byte), with each
 *    server's peak resident memory during it;
 * 2. the same size in `chunk-mib` PATCH chunks (Content-Range), then PUT `?digest=` (`chunked` 0 skips it);
 * 3. GET of the whole blob through the server with curl (the warm-up reads it through Node and checks
 *    its sha256), with the CPU seconds per GiB of the server, radosgw, the OSD, the mon and curl during
 *    each GET (from /proc; on two cores what the server spends is taken from RGW) in the notes;
 * 4. listings with three Berth replicas and the index in Redis vs registry:2 on one bucket
 *    (s3-listing.ts): the catalog's first page and a `listing-tags`-tag list.
 *
 * Every timed upload is a new digest; its blob object is deleted from the bucket afterwards (untimed)
 * and the run waits `settle-seconds` so that RGW's garbage collector frees it before the next timed
 * transfer: the OSD keeps every object in memory (memstore). The OSD's and radosgw's resident memory
 * and the machine's available memory are reported in the context lines.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { type CephServer, createBucket, startCeph, testS3Client } from '../test/helpers/ceph-server.js';
import { MiB, blobDigest } from './lib/blobdata.js';
import { listingOnS3 } from './s3-listing.js';
import { cpuSeconds, reapedChildrenCpuSeconds } from './lib/cpu.js';
import { curlGet, fetchDigest, uploadChunked, uploadMonolithic } from './lib/client.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { type Server, freePort, makeTempDir, removeTempDir, sleep, startServer, which } from './lib/proc.js';
import { type FamilyReport, type Row, alternate, atLeastFor, atMost, formatMs, formatValue, median, timed } from './lib/report.js';
import { peakWatcher, rssMiB } from './lib/rss.js';
import { REPO_ROOT, type Target, TARGET_LABEL, configTail, registry2Binary, waitForV2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const REPO = 'bench/s3';
const ROOT = 'bench';
const BUCKET: Record<Target, string> = { berth: 'bench-berth', registry2: 'bench-registry2' };
const SECRET = 'berth-bench-s3-secret';
const MB = 1e6;

function label(bytes: number): string {
  return bytes % (1 << 30) === 0 ? `${bytes / (1 << 30)} GiB` : `${bytes / MiB} MiB`;
}

/** The same config.yml for either server on its bucket of `ceph`; only the log settings differ. */
function s3Config(t: Target, ceph: CephServer, port: number, partBytes: number): string {
  const log = t === 'berth' ? ['  level: warn', '  formatter: json'] : ['  level: error'];
  return [
    'version: 0.1',
    'log:',
    ...log,
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  s3:',
    `    region: ${ceph.region}`,
    `    regionendpoint: ${ceph.endpoint}`,
    `    bucket: ${BUCKET[t]}`,
    `    accesskey: ${ceph.accessKey}`,
    `    secretkey: ${ceph.secretKey}`,
    `    rootdirectory: /${ROOT}`,
    '    secure: false',
    '    v4auth: true',
    `    chunksize: ${partBytes}`,
    '  redirect:',
    '    disable: true',
    ...configTail(port, ['health:', '  storagedriver:', '    enabled: false'], SECRET),
  ].join('\n');
}

/**
 * Starts `t` on its bucket and waits (at most `readyMs`) until `GET /v2/` answers 200. docker-registry
 * runs through `env -u AWS_CA_BUNDLE` (which execs it, keeping the PID): its aws-sdk-go refuses to start
 * when that variable is set, as test/s3-registry2.test.ts notes; the endpoint is plain HTTP anyway.
 */
async function startOnS3(t: Target, ceph: CephServer, dir: string, partBytes: number, ctx: RunContext, readyMs = 120_000): Promise<Server> {
  const port = await freePort();
  const config = join(dir, `${t}-s3.yml`);
  await writeFile(config, s3Config(t, ceph, port, partBytes));
  const url = `http://127.0.0.1:${port}`;
  const server =
    t === 'berth'
      ? startServer(ctx.berth.cmd, [...profileFlags(ctx, 's3'), ...ctx.berth.args, 'serve', config], url, REPO_ROOT)
      : startServer(which('env') ?? '/usr/bin/env', ['-u', 'AWS_CA_BUNDLE', registry2Binary(), 'serve', config], url);
  try {
    await waitForV2(server, readyMs);
  } catch (err) {
    await server.stop();
    throw new Error(`${TARGET_LABEL[t]} on S3: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return server;
}

/** The Ceph daemons' PIDs (from the script's pid files) and the machine's available memory, for the notes. */
class MemoryLog {
  private readonly max: Record<string, number> = {};
  private readonly first: Record<string, number> = {};
  private minAvailable = Number.POSITIVE_INFINITY;
  private startAvailable = Number.NaN;
  constructor(private readonly pids: Readonly<Record<string, number>>) {}

  static async of(ceph: CephServer): Promise<MemoryLog> {
    const pids: Record<string, number> = {};
    for (const [name, file] of [['OSD (memstore)', 'osd.0.pid'], ['radosgw', 'client.rgw.pid']] as const) {
      const pid = Number((await readFile(join(ceph.dir, file), 'utf8').catch(() => '')).trim());
      if (pid > 0) pids[name] = pid;
    }
    return new MemoryLog(pids);
  }

  /** Records the daemons' RSS and MemAvailable now; answers the OSD's RSS (MiB). */
  async sample(): Promise<number> {
    for (const [name, pid] of Object.entries(this.pids)) {
      const v = await rssMiB(pid).catch(() => Number.NaN);
      if (!Number.isFinite(v)) continue;
      this.first[name] ??= v;
      this.max[name] = Math.max(this.max[name] ?? 0, v);
    }
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const kib = Number(/^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? Number.NaN);
    const avail = kib / 1024;
    if (Number.isNaN(this.startAvailable)) this.startAvailable = avail;
    this.minAvailable = Math.min(this.minAvailable, avail);
    return this.max['OSD (memstore)'] ?? Number.NaN;
  }

  async lines(): Promise<string[]> {
    const now: string[] = [];
    for (const [name, pid] of Object.entries(this.pids)) {
      now.push(`${name} ${formatValue(this.first[name] ?? Number.NaN, 'MiB')} after start, at most ${formatValue(this.max[name] ?? Number.NaN, 'MiB')} (sampled before and after each transfer), ${formatValue(await rssMiB(pid).catch(() => Number.NaN), 'MiB')} at the end`);
    }
    return [
      `Ceph resident memory: ${now.join('; ')}`,
      `machine MemAvailable: ${formatValue(this.startAvailable, 'MiB')} when Ceph was up, lowest seen ${formatValue(this.minAvailable, 'MiB')}`,
    ];
  }
}

interface Servers {
  readonly url: Record<Target, string>;
  readonly pid: Record<Target, number>;
}

interface Ctx {
  readonly s: Servers;
  readonly ceph: CephServer;
  readonly mem: MemoryLog;
  readonly o: Readonly<Record<string, number>>;
  readonly log: RunContext['log'];
}

/** Deletes blob `digest`'s data object from `t`'s bucket (untimed) and waits for RGW's GC to free it. */
async function dropBlob(c: Ctx, t: Target, digest: string): Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const client = testS3Client(c.ceph);
  try {
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET[t], Key: `${ROOT}/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data` }));
  } finally {
    client.destroy();
  }
  await c.mem.sample();
  await sleep(opt(c.o, 'settle-seconds') * 1000);
}

/** `op` with `t` and `what` named in its error. */
async function as<T>(t: Target, what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw new Error(`${TARGET_LABEL[t]}, ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function uploads(c: Ctx): Promise<Row[]> {
  const size = opt(c.o, 'size-mib') * MiB;
  const rounds = opt(c.o, 'rounds');
  // Warm-up: the blob the GET scenario reads afterwards (seed 7), uploaded once to each, untimed.
  for (const t of TARGETS) await as(t, 'monolithic warm-up', () => uploadMonolithic(c.s.url[t], REPO, 7, size));
  await c.mem.sample();
  const peak: Record<Target, number[]> = { berth: [], registry2: [] };
  const put = await alternate(rounds, TARGETS, async (t, r) => {
    const seed = 41_000 + r;
    blobDigest(seed, size); // hashed before the clock starts
    const watch = peakWatcher(c.s.pid[t]);
    await watch.start();
    const { ms, value: digest } = await as(t, 'monolithic PUT', () => timed(() => uploadMonolithic(c.s.url[t], REPO, seed, size)));
    peak[t].push(await watch.stop());
    c.log(`  monolithic PUT, ${TARGET_LABEL[t]}: ${formatMs(ms)}`);
    await dropBlob(c, t, digest);
    return size / MB / (ms / 1000);
  });
  c.log(`  monolithic PUT: Berth ${formatValue(median(put.berth), 'MB/s')}, registry:2 ${formatValue(median(put.registry2), 'MB/s')}`);
  const rows: Row[] = [
    { scenario: `S3 (Ceph RGW): ${label(size)} monolithic PUT (POST, then PUT ?digest=)`, unit: 'MB/s', samples: put },
    {
      scenario: `S3 (Ceph RGW): peak RSS during the ${label(size)} PUT`,
      unit: 'MiB',
      samples: peak,
      note: "the kernel's high-water mark (VmHWM, reset through /proc/<pid>/clear_refs just before the PUT) and 50 ms VmRSS samples, whichever is higher",
    },
  ];
  if (opt(c.o, 'chunked') === 0) return rows;

  const chunk = opt(c.o, 'chunk-mib') * MiB;
  for (const t of TARGETS) await as(t, 'chunked warm-up', () => uploadChunked(c.s.url[t], REPO, 41_999, Math.min(size, 2 * chunk), chunk));
  const chunkedPeak: Record<Target, number[]> = { berth: [], registry2: [] };
  const chunked = await alternate(rounds, TARGETS, async (t, r) => {
    const seed = 42_000 + r;
    blobDigest(seed, size);
    const watch = peakWatcher(c.s.pid[t]);
    await watch.start();
    const { ms, value: digest } = await as(t, 'chunked upload', () => timed(() => uploadChunked(c.s.url[t], REPO, seed, size, chunk)));
    chunkedPeak[t].push(await watch.stop());
    c.log(`  chunked upload, ${TARGET_LABEL[t]}: ${formatMs(ms)}`);
    await dropBlob(c, t, digest);
    return size / MB / (ms / 1000);
  });
  c.log(`  chunked upload: Berth ${formatValue(median(chunked.berth), 'MB/s')}, registry:2 ${formatValue(median(chunked.registry2), 'MB/s')}`);
  return [
    ...rows,
    {
      scenario: `S3 (Ceph RGW): ${label(size)} upload in ${label(chunk)} PATCH chunks`,
      unit: 'MB/s',
      samples: chunked,
      goal: atLeastFor('MB/s', 1),
      note: 'POST, then PATCHes with Content-Range, then PUT ?digest= with no body; Berth keeps one multipart upload open across the PATCHes, as registry:2 does',
    },
    { scenario: `S3 (Ceph RGW): peak RSS during the ${label(size)} chunked upload`, unit: 'MiB', samples: chunkedPeak, goal: atMost(100, 'MiB') },
  ];
}

/** CPU seconds of the processes that take part in a GET (the server, Ceph's daemons, curl). */
type CpuSample = Readonly<Record<'server' | 'radosgw' | 'osd' | 'mon' | 'curl', number>>;

/** CPU seconds used so far by each process in a GET through `t`; curl's as this process's waited-for children. */
async function cpuNow(c: Ctx, t: Target): Promise<CpuSample> {
  const daemon = async (file: string): Promise<number> => {
    const pid = Number((await readFile(join(c.ceph.dir, file), 'utf8').catch(() => '')).trim());
    return pid > 0 ? cpuSeconds(pid).catch(() => Number.NaN) : Number.NaN;
  };
  return {
    server: await cpuSeconds(c.s.pid[t]),
    radosgw: await daemon('client.rgw.pid'),
    osd: await daemon('osd.0.pid'),
    mon: await daemon('mon.a.pid'),
    curl: await reapedChildrenCpuSeconds(),
  };
}

/** CPU seconds per GiB moved between two samples. */
function cpuUsed(before: CpuSample, after: CpuSample, bytes: number): CpuSample {
  const per = (k: keyof CpuSample): number => ((after[k] - before[k]) * (1 << 30)) / bytes;
  return { server: per('server'), radosgw: per('radosgw'), osd: per('osd'), mon: per('mon'), curl: per('curl') };
}

function medianCpu(samples: readonly CpuSample[]): CpuSample {
  const m = (k: keyof CpuSample): number => median(samples.map((s) => s[k]));
  return { server: m('server'), radosgw: m('radosgw'), osd: m('osd'), mon: m('mon'), curl: m('curl') };
}

function formatCpu(s: CpuSample): string {
  const all = s.server + s.radosgw + s.osd + s.mon + s.curl;
  return `server ${s.server.toFixed(2)}, radosgw ${s.radosgw.toFixed(2)}, OSD ${s.osd.toFixed(2)}, mon ${s.mon.toFixed(2)}, curl ${s.curl.toFixed(2)} (all ${all.toFixed(2)})`;
}

async function downloads(c: Ctx, notes: string[]): Promise<Row[]> {
  const size = opt(c.o, 'size-mib') * MiB;
  const digest = blobDigest(7, size);
  const url = (t: Target): string => `${c.s.url[t]}/v2/${REPO}/blobs/${digest}`;
  for (const t of TARGETS) {
    const got = await fetchDigest(url(t)); // warm-up and check
    if (got.status !== 200 || got.digest !== digest || got.size !== size) {
      throw new Error(`${TARGET_LABEL[t]} GET ${digest}: status ${got.status}, ${got.size} bytes, ${got.digest}`);
    }
  }
  notes.push(`GET check (untimed, through Node): both servers answered 200 (no redirect) with all ${size} bytes and sha256 ${digest}`);
  const cpu: Record<Target, CpuSample[]> = { berth: [], registry2: [] };
  const get = await alternate(opt(c.o, 'rounds'), TARGETS, async (t) => {
    const before = await cpuNow(c, t);
    const r = await curlGet(url(t));
    const used = cpuUsed(before, await cpuNow(c, t), size);
    if (r.status !== 200 || r.bytes !== size) throw new Error(`${TARGET_LABEL[t]} GET: status ${r.status}, ${r.bytes} bytes`);
    cpu[t].push(used);
    c.log(`  GET, ${TARGET_LABEL[t]}: ${formatMs(r.ms)}; CPU s/GiB ${formatCpu(used)}`);
    await c.mem.sample();
    return size / MB / (r.ms / 1000);
  });
  c.log(`  GET: Berth ${formatValue(median(get.berth), 'MB/s')}, registry:2 ${formatValue(median(get.registry2), 'MB/s')}`);
  for (const t of TARGETS) notes.push(`GET CPU seconds per GiB through ${TARGET_LABEL[t]} (median of the rounds): ${formatCpu(medianCpu(cpu[t]))}`);
  return [
    {
      scenario: `S3 (Ceph RGW): ${label(size)} GET through the server (curl)`,
      unit: 'MB/s',
      samples: get,
      note: "curl's own total time; storage.redirect.disable on both, so the bytes go RGW → server → curl",
    },
  ];
}

async function runS3(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-s3-');
  const load = (): string => loadavg().map((x) => x.toFixed(2)).join(', ');
  const loadAtStart = load();
  const running: Server[] = [];
  let ceph: CephServer | undefined;
  const onExit = (): void => ceph?.stopSync();
  try {
    ctx.log('s3: starting a single-node Ceph RGW (scripts/ceph-s3.sh, memstore) …');
    process.once('exit', onExit); // an interrupted run still stops the daemons it started
    ceph = await startCeph();
    const c0 = ceph;
    for (const t of TARGETS) await createBucket(c0, BUCKET[t]);
    const mem = await MemoryLog.of(c0);
    await mem.sample();
    const partBytes = opt(o, 'part-mib') * MiB;
    const berth = await startOnS3('berth', c0, work, partBytes, ctx);
    running.push(berth);
    const reg = await startOnS3('registry2', c0, work, partBytes, ctx);
    running.push(reg);
    const s: Servers = { url: { berth: berth.url, registry2: reg.url }, pid: { berth: berth.pid, registry2: reg.pid } };
    ctx.log(`s3: Ceph RGW at ${c0.endpoint} (up in ${formatMs(c0.startMs)}); Berth at ${s.url.berth}, registry:2 at ${s.url.registry2}`);
    const notes: string[] = [
      `Ceph: one monitor, one OSD (memstore: objects held in the OSD's memory), radosgw, pools of size 1, on 127.0.0.1 (scripts/ceph-s3.sh); up in ${formatMs(c0.startMs)}`,
      `both servers: their own bucket on that RGW, rootdirectory /${ROOT}, chunksize ${partBytes} (${label(partBytes)}), storage.redirect.disable true, deletes on, upload purging and the storage health check off, access log off; Berth ${ctx.berth.label} at log level warn, registry:2 at error`,
      'moving a finished upload to its blob path, each with its own defaults: registry:2 2.8 UploadPartCopy in 32 MiB parts, 100 at a time, for objects over 32 MiB; Berth one CopyObject up to 5 GiB',
      `after each timed upload its blob object is deleted from the bucket (untimed) and the run waits ${opt(o, 'settle-seconds')} s for RGW's garbage collector to free it`,
    ];
    const c: Ctx = { s, ceph: c0, mem, o, log: ctx.log };
    const rows = await Promise.resolve()
      .then(async () => (opt(o, 'blobs') === 0 ? [] : [...(await uploads(c)), ...(await downloads(c, notes))]))
      .catch((err: unknown) => {
        const tail = (srv: Server): string => srv.output().trim().split('\n').slice(-20).join('\n') || '(nothing)';
        const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
        throw new Error(`${why}\n--- Berth's output (last lines) ---\n${tail(berth)}\n--- registry:2's output (last lines) ---\n${tail(reg)}`, { cause: err });
      });
    if (opt(o, 'listing-tags') > 0) {
      const listing = await listingOnS3(c0, work, o, ctx);
      rows.push(...listing.rows);
      notes.push(...listing.notes);
    }
    notes.push(...(await mem.lines()));
    notes.push(`rounds: ${opt(o, 'rounds')} per scenario after one untimed warm-up per server; A B then B A, alternating`);
    notes.push(`load average (1, 5, 15 min) at the start ${loadAtStart}, at the end ${load()}`);
    return { family: 's3', title: 'Blobs on S3 (Ceph RGW): Berth vs registry:2', rows, notes };
  } finally {
    const grace = ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000;
    for (const r of running) await r.stop(grace).catch(() => undefined);
    await ceph?.stop().catch((err: unknown) => ctx.log(`s3: stopping Ceph failed: ${String(err)}`));
    process.off('exit', onExit);
    await removeTempDir(work);
  }
}

export const s3Family: Family = {
  name: 's3',
  summary: 'big monolithic and chunked uploads, a big GET, and listings (3 replicas + Redis index vs registry:2) with both servers on the same Ceph RGW (S3), redirects off',
  options: [
    roundsOption(3, 1),
    { name: 'size-mib', help: 'size of the big blob', full: 1024, quick: 128, min: 1, max: 16_384 },
    { name: 'chunk-mib', help: 'PATCH chunk size', full: 64, quick: 32, min: 1, max: 4096 },
    { name: 'part-mib', help: 'storage.s3.chunksize of both servers, MiB', full: 10, quick: 10, min: 5, max: 5120 },
    { name: 'chunked', help: '1: also time the chunked upload; 0: skip it', full: 1, quick: 1, min: 0, max: 1 },
    { name: 'blobs', help: '1: time the blob uploads and GET; 0: skip them (listings only)', full: 1, quick: 1, min: 0, max: 1 },
    { name: 'listing-tags', help: 'tags in the listing scenario (3 replicas + Redis vs registry:2 on one bucket); 0 skips it', full: 10_000, quick: 1000, min: 0, max: 100_000 },
    { name: 'listing-gets', help: 'GETs per listing sample (over a kept keep-alive connection; the sample is their median)', full: 15, quick: 5, min: 1, max: 1000 },
    { name: 'listing-warmup', help: 'untimed GETs of each listing path to each server before the timed rounds', full: 45, quick: 6, min: 0, max: 10_000 },
    { name: 'listing-repos', help: 'repositories of one tag each beside the tagged one, for the catalog', full: 200, quick: 50, min: 0, max: 10_000 },
    { name: 'settle-seconds', help: "wait after deleting each timed upload's blob (RGW garbage collection)", full: 12, quick: 6, min: 0, max: 600 },
  ],
  run: runS3,
};
