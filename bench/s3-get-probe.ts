/**
 * Hand-run probe (issue #18): how fast can a Node process read one big object from the S3 server,
 * client by client? Not part of `npm run bench`. Prints MB/s, the probe's CPU seconds and radosgw's
 * CPU seconds per GET, for each client, in alternating rounds.
 *
 *   S3_PROBE_ENDPOINT=http://127.0.0.1:PORT S3_PROBE_BUCKET=b S3_PROBE_KEY=k S3_PROBE_RGW_PID=N \
 *     npx tsx bench/s3-get-probe.ts [rounds] [client…]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createS3Driver, S3_DEFAULTS } from '../src/storage/driver/s3.js';
import type { StorageDriver } from '../src/storage/driver/driver.js';
import { isSendable } from '../src/storage/driver/driver.js';

const endpoint = process.env['S3_PROBE_ENDPOINT'] ?? 'http://127.0.0.1:27481';
const Bucket = process.env['S3_PROBE_BUCKET'] ?? 'probe';
const Key = process.env['S3_PROBE_KEY'] ?? 'big';
const rgwPid = Number(process.env['S3_PROBE_RGW_PID'] ?? 0);
const client = new S3Client({
  region: 'us-east-1', endpoint, forcePathStyle: true,
  credentials: { accessKeyId: process.env['S3_PROBE_ACCESS'] ?? 'berthtestaccess', secretAccessKey: process.env['S3_PROBE_SECRET'] ?? 'berthtestsecret' },
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 128 }) },
});

function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb(), writev: (_c, cb) => cb() });
}

function rgwCpu(): number {
  if (rgwPid === 0) return Number.NaN;
  const f = readFileSync(`/proc/${rgwPid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function presigned(): Promise<string> {
  return getSignedUrl(client, new GetObjectCommand({ Bucket, Key }), { expiresIn: 3600 });
}

async function httpGet(url: string, headers: Record<string, string>, hwm?: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = request(url, { headers, ...(hwm !== undefined && { highWaterMark: hwm }) }, (res) => {
      pipeline(res, discard()).then(resolve, reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function curl(url: string, range: boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn('curl', ['-sS', '-o', '/dev/null', ...(range ? ['-H', 'Range: bytes=0-'] : []), url], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`curl ${code}`))));
  });
}

async function sdkRanges(size: number, piece: number, inFlight: number): Promise<void> {
  let next = 0;
  const bodies: Promise<Buffer[]>[] = [];
  const fetchOne = (start: number, end: number): Promise<Buffer[]> =>
    client.send(new GetObjectCommand({ Bucket, Key, Range: `bytes=${start}-${end - 1}` })).then(async (o) => {
      const chunks: Buffer[] = [];
      for await (const c of o.Body as AsyncIterable<Buffer>) chunks.push(c);
      return chunks;
    });
  while (next < size && bodies.length < inFlight) { bodies.push(fetchOne(next, Math.min(size, next + piece))); next += piece; }
  while (bodies.length > 0) {
    await bodies.shift();
    if (next < size) { bodies.push(fetchOne(next, Math.min(size, next + piece))); next += piece; }
  }
}

function driverAt(make: typeof createS3Driver): StorageDriver {
  return make({
    ...S3_DEFAULTS, bucket: Bucket, region: 'us-east-1', regionEndpoint: endpoint, forcePathStyle: true, secure: false,
    accessKey: process.env['S3_PROBE_ACCESS'] ?? 'berthtestaccess', secretKey: process.env['S3_PROBE_SECRET'] ?? 'berthtestsecret',
    rootDirectory: '', redirect: false,
  });
}
const branchDriver = driverAt(createS3Driver);
/** main's driver (the checkout at BERTH_MAIN, /work/main by default), for a side-by-side line. */
const mainDriver = driverAt(((await import(`${process.env['BERTH_MAIN'] ?? '/work/main'}/src/storage/driver/s3.ts`)) as { createS3Driver: typeof createS3Driver }).createS3Driver);

async function sendThrough(d: StorageDriver): Promise<void> {
  const r = await d.reader(`/${Key}`, 0);
  if (!isSendable(r)) throw new Error('not sendable');
  await r.sendTo(discard());
}

const clients: Record<string, (size: number) => Promise<void>> = {
  'curl-norange': async () => curl(await presigned(), false),
  'curl-range': async () => curl(await presigned(), true),
  'http': async () => httpGet(await presigned(), {}),
  'http-range': async () => httpGet(await presigned(), { range: 'bytes=0-' }),
  'http-range-1m': async () => httpGet(await presigned(), { range: 'bytes=0-' }, 1 << 20),
  'fetch-range': async () => {
    const r = await fetch(await presigned(), { headers: { range: 'bytes=0-' } });
    for await (const _ of r.body as unknown as AsyncIterable<Uint8Array>) { /* discard */ }
  },
  'sdk': async () => {
    const o = await client.send(new GetObjectCommand({ Bucket, Key }));
    await pipeline(o.Body as NodeJS.ReadableStream, discard());
  },
  'sdk-range': async () => {
    const o = await client.send(new GetObjectCommand({ Bucket, Key, Range: 'bytes=0-' }));
    await pipeline(o.Body as NodeJS.ReadableStream, discard());
  },
  'sdk-4x4m': (size) => sdkRanges(size, 4 << 20, 4),
  'sdk-2x16m': (size) => sdkRanges(size, 16 << 20, 2),
  'main-sendto': () => sendThrough(mainDriver),
  'branch-sendto': () => sendThrough(branchDriver),
  'branch-stream': async () => pipeline(await branchDriver.reader(`/${Key}`, 0), discard()),
};

const rounds = Number(process.argv[2] ?? 2);
const chosen = process.argv.slice(3).length > 0 ? process.argv.slice(3) : Object.keys(clients);
const size = (await client.send(new HeadObjectCommand({ Bucket, Key }))).ContentLength ?? 0;
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? chosen : [...chosen].reverse();
  for (const name of order) {
    const run = clients[name];
    if (run === undefined) throw new Error(`no client ${name}`);
    const cpu0 = process.cpuUsage();
    const rgw0 = rgwCpu();
    const t0 = performance.now();
    await run(size);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    console.log(`${name.padEnd(14)} ${(size / 1e6 / (ms / 1000)).toFixed(0).padStart(5)} MB/s  probe CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s  rgw CPU ${(rgwCpu() - rgw0).toFixed(2)} s`);
  }
}
client.destroy();
