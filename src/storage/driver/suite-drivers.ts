/**
 * The drivers storage-level tests run on: each as a name and a factory that answers the driver and
 * how to clean up after it (a fresh temporary root for the filesystem driver). Test code only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StorageDriver } from './driver.js';
import { createDriver } from './factory.js';

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
];
