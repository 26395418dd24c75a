/**
 * S3 for tests: a real Ceph RGW started once per vitest run by test/ceph-global-setup.ts (through
 * scripts/ceph-s3.sh), found through BERTH_TEST_S3_* environment variables. Everything of
 * ceph-server.ts (vitest-free) plus `describeWithS3(title, body)`, which works like describeWithTool:
 * under CI=true a missing S3 server fails the run, elsewhere the suite is skipped with the reason printed.
 */
import { beforeAll, describe, it } from 'vitest';
import { s3Availability } from './ceph-server.js';
import type { S3TestSettings } from './ceph-server.js';

export * from './ceph-server.js';

/**
 * `describe(title, body)` when S3 is available. When it is not: under CI=true a suite that fails naming
 * the reason; otherwise `describe.skip` with the reason printed.
 */
export function describeWithS3(title: string, body: (s: S3TestSettings) => void): void {
  const a = s3Availability();
  if (a.ok) {
    describe(title, () => body(a.settings));
    return;
  }
  const message = `S3 (Ceph RGW) is required by "${title}" but is unavailable: ${a.reason}`;
  if (process.env['CI'] === 'true') {
    describe(title, () => {
      beforeAll(() => {
        throw new Error(`${message} (CI=true: a missing S3 server fails the run instead of skipping)`);
      });
      it('has S3', () => undefined);
    });
    return;
  }
  console.warn(`SKIPPED: ${message}`);
  describe.skip(title, () => undefined);
}
