/**
 * S3 for tests: a real Ceph RGW started once per vitest run by test/ceph-global-setup.ts (through
 * scripts/ceph-s3.sh), found through BERTH_TEST_S3_* environment variables. Everything of
 * ceph-server.ts (vitest-free) plus `describeWithS3(title, body)` (src/storage/driver/suite/s3-describe.ts,
 * shared with the s3 driver's own tests): under CI=true a missing S3 server fails the run, elsewhere the
 * suite is skipped with the reason printed.
 */
export * from './ceph-server.js';
export { describeWithS3 } from '../../src/storage/driver/suite/s3-describe.js';
