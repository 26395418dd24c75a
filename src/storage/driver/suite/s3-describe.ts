/**
 * Test support (a suite/ file): `describeWithS3(title, body)`, which works like test/'s describeWithTool:
 * the suite runs when the tests' S3 server is known (s3-settings.ts); when it is not, under CI=true a
 * suite that fails naming the reason, elsewhere `describe.skip` with the reason printed.
 */
import { beforeAll, describe, it } from 'vitest';
import { type S3TestSettings, s3Availability } from './s3-settings.js';

/** `describe(title, body)` when S3 is available; otherwise fails under CI=true, or skips with the reason printed. */
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
