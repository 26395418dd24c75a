/**
 * vitest global setup: starts one Ceph RGW (scripts/ceph-s3.sh) for the whole run when a selected test
 * file needs S3, and tells the test workers where it is through BERTH_TEST_S3_* (helpers/ceph.ts).
 *
 * - A file needs S3 when it uses helpers/ceph, the S3 test settings (driver/suite/s3-*.ts) or the
 *   storage driver list (driver/suite/drivers.ts). A run of
 *   other files starts nothing.
 * - BERTH_TEST_S3_ENDPOINT already set (another S3 server, by hand): nothing is started.
 * - BERTH_TEST_CEPH=off: nothing is started, and the S3 tests act as if Ceph were missing.
 * - No Ceph binaries, or Ceph fails to start: BERTH_TEST_S3_UNAVAILABLE says why, and the S3 tests
 *   fail under CI=true or skip with that reason printed otherwise (never silently).
 * - Teardown (and process exit, as a fallback) stops exactly the daemons this run started.
 */
import { readFileSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { S3_ENV, startCeph } from './helpers/ceph-server.js';
import { toolsAvailable } from './helpers/process.js';

const CEPH_TOOLS = { 'ceph-mon': 'ceph-mon', 'ceph-osd': 'ceph-osd', radosgw: 'radosgw', 'radosgw-admin': 'radosgw' };

/** True when a file of this run needs S3 (or when the run's files cannot be known). */
function runNeedsS3(project: TestProject): boolean {
  const state = (project.vitest as unknown as { state?: { getPaths?: () => string[] } }).state;
  const files = state?.getPaths?.();
  if (files === undefined || files.length === 0) return true;
  return files.some((file) => {
    try {
      const text = readFileSync(file, 'utf8');
      return text.includes('suite/drivers') || text.includes('suite/s3-') || text.includes('helpers/ceph');
    } catch {
      return false;
    }
  });
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env[S3_ENV.endpoint]) return undefined;
  if (!runNeedsS3(project)) return undefined;
  if (process.env['BERTH_TEST_CEPH'] === 'off') {
    process.env[S3_ENV.unavailable] = 'BERTH_TEST_CEPH=off: no Ceph started for this run';
    return undefined;
  }
  const tools = toolsAvailable(CEPH_TOOLS);
  if (!tools.ok) {
    process.env[S3_ENV.unavailable] = `Ceph is not installed: ${tools.reason} (.ci/run installs ceph-mon, ceph-osd and radosgw)`;
    return undefined;
  }
  let ceph;
  try {
    ceph = await startCeph();
  } catch (err) {
    process.env[S3_ENV.unavailable] = (err as Error).message;
    console.error(`[ceph] ${(err as Error).message}`);
    return undefined;
  }
  const server = ceph;
  const onExit = (): void => server.stopSync();
  process.once('exit', onExit);
  process.env[S3_ENV.endpoint] = server.endpoint;
  process.env[S3_ENV.accessKey] = server.accessKey;
  process.env[S3_ENV.secretKey] = server.secretKey;
  process.env[S3_ENV.region] = server.region;
  process.env[S3_ENV.bucket] = server.bucket;
  console.log(`[ceph] single-node Ceph RGW at ${server.endpoint} ready in ${(server.startMs / 1000).toFixed(1)} s (data in ${server.dir})`);
  const since = performance.now();
  return async () => {
    process.off('exit', onExit);
    await server.stop();
    console.log(`[ceph] stopped after ${((performance.now() - since) / 1000).toFixed(1)} s of tests`);
  };
}
