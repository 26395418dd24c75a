/**
 * Test support (a suite/ file: tests only, never the server): where the tests' S3 server is, read from
 * BERTH_TEST_S3_* (set by test/ceph-global-setup.ts, which starts a Ceph RGW through
 * scripts/ceph-s3.sh, or by hand to use another S3 server), driver options for it, and direct bucket
 * access to look at what a driver wrote. Free of vitest, so the global setup can use it; the driver
 * tests beside the s3 driver use it with describeWithS3 (s3-describe.ts), test/ through
 * test/helpers/ceph.ts.
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { S3_DEFAULTS } from '../s3.js';
import type { S3DriverOptions } from '../s3.js';

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
