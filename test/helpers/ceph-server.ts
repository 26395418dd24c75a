/**
 * S3 for tests, the vitest-free part (the global setup imports it; tests use helpers/ceph.ts, which
 * re-exports all of it): a real Ceph RGW started by scripts/ceph-s3.sh, found through environment
 * variables.
 *
 * - `startCeph()`: runs the script with a fresh data directory and free ports; `stop()` stops exactly
 *   the daemons it started (the script's pid files).
 * - `s3Availability()`, `s3DriverOptions`, `testS3Client`, `createBucket`, `deleteBucket`, `listKeys`:
 *   re-exported from src/storage/driver/suite/s3-settings.ts, where the s3 driver's own tests reach them.
 * - `s3StorageYaml(s3, bucket)`: the `storage.s3` lines of a Berth or registry:2 config on that bucket.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type S3TestSettings, createBucket } from '../../src/storage/driver/suite/s3-settings.js';
import { RunError, freePort, run } from './process.js';

export * from '../../src/storage/driver/suite/s3-settings.js';

/**
 * The `s3:` section of a config's `storage:` (lines indented under `storage:`) for `bucket` on the
 * tests' S3 server, under `rootdirectory` (default /registry), with `options` (e.g. `chunksize: 5242880`)
 * added under `s3:`. Berth and registry:2 read the same keys.
 */
export function s3StorageYaml(s3: S3TestSettings, bucket: string, o: { readonly rootdirectory?: string; readonly options?: readonly string[] } = {}): string[] {
  return [
    '  s3:', `    region: ${s3.region}`, `    regionendpoint: ${s3.endpoint}`, `    bucket: ${bucket}`,
    `    accesskey: ${s3.accessKey}`, `    secretkey: ${s3.secretKey}`, `    rootdirectory: ${o.rootdirectory ?? '/registry'}`,
    ...(o.options ?? []).map((line) => `    ${line}`),
  ];
}

export const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'ceph-s3.sh');

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
