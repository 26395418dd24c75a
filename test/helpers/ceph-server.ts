/**
 * S3 for tests, the vitest-free part (the global setup imports it; tests use helpers/ceph.ts, which
 * re-exports all of it): a real Ceph RGW started by scripts/ceph-s3.sh, found through environment
 * variables.
 *
 * - `startCeph()`: runs the script with a fresh data directory and free ports; `stop()` stops exactly
 *   the daemons it started (the script's pid files).
 * - `s3Availability()`: the settings from BERTH_TEST_S3_* (set by the global setup, or by hand to use
 *   another S3 server), or why there are none.
 * - `s3DriverOptions`, `testS3Client`, `createBucket`, `deleteBucket`, `listKeys`: driver options for a
 *   test, and direct bucket access to look at what a driver wrote.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { S3_DEFAULTS } from '../../src/storage/driver/s3.js';
import type { S3DriverOptions } from '../../src/storage/driver/s3.js';
import { RunError, freePort, run } from './process.js';

// The AWS SDK warns once per process that its releases after January 2027 need Node 22; the project
// pins its version, so the warning is noise in test output (the driver does the same).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** The environment variables that tell tests where S3 is. */
export const S3_ENV = {
  endpoint: 'BERTH_TEST_S3_ENDPOINT',
  accessKey: 'BERTH_TEST_S3_ACCESSKEY',
  secretKey: 'BERTH_TEST_S3_SECRETKEY',
  region: 'BERTH_TEST_S3_REGION',
  /** A bucket the tests may write to (each test uses its own prefix or bucket). */
  bucket: 'BERTH_TEST_S3_BUCKET',
  /** Set instead of the others when the global setup could not start Ceph: the reason. */
  unavailable: 'BERTH_TEST_S3_UNAVAILABLE',
} as const;

/** Where the tests' S3 server is and how to sign in. */
export interface S3TestSettings {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  readonly bucket: string;
}

export type S3Availability = { readonly ok: true; readonly settings: S3TestSettings } | { readonly ok: false; readonly reason: string };

export const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'ceph-s3.sh');

/** The S3 settings from the environment, or why there are none. */
export function s3Availability(env: Record<string, string | undefined> = process.env): S3Availability {
  const endpoint = env[S3_ENV.endpoint];
  if (endpoint === undefined || endpoint === '') {
    return { ok: false, reason: env[S3_ENV.unavailable] || `no S3 server: ${S3_ENV.endpoint} is not set (the vitest global setup starts Ceph when ceph-mon, ceph-osd and radosgw are installed)` };
  }
  return {
    ok: true,
    settings: {
      endpoint,
      accessKey: env[S3_ENV.accessKey] ?? '',
      secretKey: env[S3_ENV.secretKey] ?? '',
      region: env[S3_ENV.region] || 'us-east-1',
      bucket: env[S3_ENV.bucket] || 'berth-test',
    },
  };
}

/** Driver options for the test server, under `rootDirectory` of `bucket` (the settings' bucket by default). */
export function s3DriverOptions(
  s: S3TestSettings,
  rootDirectory: string,
  overrides: Partial<S3DriverOptions> = {},
): S3DriverOptions {
  return {
    bucket: s.bucket,
    region: s.region,
    regionEndpoint: s.endpoint,
    forcePathStyle: true,
    secure: false,
    accessKey: s.accessKey,
    secretKey: s.secretKey,
    rootDirectory,
    chunkSize: S3_DEFAULTS.chunkSize,
    storageClass: S3_DEFAULTS.storageClass,
    objectAcl: S3_DEFAULTS.objectAcl,
    multipartCopyThresholdSize: S3_DEFAULTS.multipartCopyThresholdSize,
    multipartCopyChunkSize: S3_DEFAULTS.multipartCopyChunkSize,
    multipartCopyMaxConcurrency: S3_DEFAULTS.multipartCopyMaxConcurrency,
    redirect: true,
    ...overrides,
  };
}

/** A plain SDK client on the test server (to look into buckets behind a driver's back). */
export function testS3Client(s: S3TestSettings): S3Client {
  return new S3Client({
    region: s.region,
    endpoint: s.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates a bucket (no error when this user already owns it). */
export async function createBucket(s: S3TestSettings, bucket: string): Promise<void> {
  const client = testS3Client(s);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if ((err as Error).name !== 'BucketAlreadyOwnedByYou') throw err;
  } finally {
    client.destroy();
  }
}

/** Every key under `prefix` in `bucket`, sorted. */
export async function listKeys(s: S3TestSettings, bucket: string, prefix = ''): Promise<string[]> {
  const client = testS3Client(s);
  const keys: string[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token && { ContinuationToken: token }) }));
      for (const c of page.Contents ?? []) if (c.Key !== undefined) keys.push(c.Key);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  } finally {
    client.destroy();
  }
  return keys.sort();
}

/** Deletes every object under `prefix` (all of the bucket by default) and, with no prefix, the bucket. */
export async function deleteBucket(s: S3TestSettings, bucket: string, prefix = ''): Promise<void> {
  const keys = await listKeys(s, bucket, prefix);
  const client = testS3Client(s);
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((Key) => ({ Key }));
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch, Quiet: true } }));
    }
    if (prefix === '') await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** A running Ceph started by {@link startCeph}. */
export interface CephServer extends S3TestSettings {
  readonly dir: string;
  /** How long the script took to answer S3 requests. */
  readonly startMs: number;
  /** Stops the daemons this server started and removes its data directory. */
  stop(): Promise<void>;
  /** The same, synchronously (for process exit handlers). */
  stopSync(): void;
}

/**
 * Starts a single-node Ceph with radosgw on free loopback ports and a fresh data directory, and makes
 * the bucket `berth-test`. @throws with the script's output and the end of its logs when it fails.
 */
export async function startCeph(): Promise<CephServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ceph-'));
  const env = { DIR: dir, RGW_PORT: String(await freePort()), MON_PORT: String(await freePort()) };
  const stopSync = (): void => {
    spawnSync('bash', [SCRIPT, 'stop'], { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 30_000 });
  };
  const started = performance.now();
  try {
    const r = await run('bash', [SCRIPT, 'start'], { env, timeoutMs: 180_000 });
    const line = /S3 ready: endpoint=(\S+) accesskey=(\S+) secretkey=(\S+) region=(\S+)/.exec(r.stdout);
    if (line === null) throw new Error(`unexpected output of ${SCRIPT}: ${r.stdout}`);
    const [, endpoint = '', accessKey = '', secretKey = '', region = ''] = line;
    const settings = { endpoint, accessKey, secretKey, region, bucket: 'berth-test' };
    await createBucket(settings, settings.bucket);
    return {
      ...settings,
      dir,
      startMs: performance.now() - started,
      stop: async () => {
        await run('bash', [SCRIPT, 'stop'], { env, timeoutMs: 60_000 });
        await rm(dir, { recursive: true, force: true });
      },
      stopSync: () => {
        stopSync();
        spawnSync('rm', ['-rf', dir], { stdio: 'ignore' });
      },
    };
  } catch (err) {
    const logs = await logTail(dir);
    stopSync();
    await rm(dir, { recursive: true, force: true });
    const what = err instanceof RunError ? err.message : String(err);
    throw new Error(`could not start Ceph with ${SCRIPT}: ${what}${logs}`, { cause: err });
  }
}

/** The last lines of the daemons' logs, for a failure message. */
async function logTail(dir: string): Promise<string> {
  const out: string[] = [];
  for (const name of ['mon.a', 'osd.0', 'client.rgw']) {
    const text = await readFile(join(dir, 'log', `${name}.log`), 'utf8').catch(() => '');
    if (text !== '') out.push(`\n--- ${name}.log (last lines) ---\n${text.split('\n').slice(-15).join('\n')}`);
  }
  return out.join('');
}
