/**
 * The drivers storage-level tests run on: each as a name and a factory that answers the driver and
 * how to clean up after it (a fresh temporary root for the filesystem driver). Test code only.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StorageDriver } from '../driver.js';
import { createDriver, openDriver } from '../factory.js';
import { s3Availability, s3DriverOptions } from './s3-settings.js';

/** A driver under test and how to remove what it stored. */
export interface TestDriver {
  readonly driver: StorageDriver;
  cleanup(): Promise<void>;
}

/** `[name, make]` pairs for `describe.each`. */
export const TEST_DRIVERS: readonly (readonly [string, () => Promise<TestDriver>])[] = [
  ['inmemory', async () => ({ driver: createDriver({ kind: 'inmemory' }), cleanup: async () => undefined })],
  [
    'filesystem',
    async () => {
      const root = await mkdtemp(join(tmpdir(), 'berth-storage-test-'));
      return { driver: createDriver({ kind: 'filesystem', root }), cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  ],
  ...s3TestDrivers(),
];

/**
 * The s3 driver on the run's Ceph RGW (s3-settings.ts), each instance under a rootdirectory of
 * its own that cleanup empties. Without an S3 server: under CI=true an entry whose every test fails
 * with the reason; otherwise no entry, and the reason printed.
 */
function s3TestDrivers(): (readonly [string, () => Promise<TestDriver>])[] {
  const s3 = s3Availability();
  if (!s3.ok) {
    if (process.env['CI'] !== 'true') {
      console.warn(`SKIPPED: storage tests over the s3 driver: ${s3.reason}`);
      return [];
    }
    return [['s3', () => Promise.reject(new Error(`s3 driver tests need S3 (CI=true): ${s3.reason}`))]];
  }
  const make = async (): Promise<TestDriver> => {
    const driver = await openDriver({ kind: 's3', ...s3DriverOptions(s3.settings, `suite-${randomBytes(6).toString('hex')}`) });
    return { driver, cleanup: () => removeEverything(driver) };
  };
  return [['s3', make]];
}

/** Deletes everything under the driver's root (for drivers whose root cannot simply be removed). */
async function removeEverything(driver: StorageDriver): Promise<void> {
  const top = await driver.list('/');
  await Promise.all(top.map((p) => driver.delete(p)));
}
