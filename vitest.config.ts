import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts'],
    // Starts one Ceph RGW for the run when a selected file needs S3 (test/ceph-global-setup.ts).
    globalSetup: ['./test/ceph-global-setup.ts'],
  },
});
