/**
 * What every part of the s3 driver shares: its options (registry:2's `storage.s3` keys, already
 * checked), the S3 client built from them, the mapping from driver paths to object keys, and the
 * translation of S3 failures into DriverErrors.
 *
 * Keys are registry:2's: `rootdirectory` with its slashes trimmed, then the driver path, with the
 * leading slash dropped (`/docker/registry/v2/blobs/…` under rootdirectory `/reg` is the key
 * `reg/docker/registry/v2/blobs/…`), so a bucket written by registry:2's s3 driver and one written
 * by Berth are the same. Directories are not stored: a directory exists while some key lies below it.
 *
 * Retries are the SDK's `standard` strategy, chosen on purpose: throttling (503 SlowDown and the like),
 * 500/502/503/504, timeouts and dropped or refused connections are retried with exponential backoff
 * and full jitter (base 100 ms, 500 ms for throttling, at most 20 s), up to `maxAttempts` attempts in
 * all. Every request body Berth sends is a buffer, so every retry resends exactly the same bytes.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { HeadObjectCommandOutput, ObjectCannedACL, StorageClass } from '@aws-sdk/client-s3';
import { DriverError, PathNotFoundError } from './driver.js';
import type { CallOptions } from './driver.js';
import { MIN_PART_BYTES, S3_DEFAULTS } from './s3-limits.js';
import { PartBufferPool } from './s3-part-buffers.js';

export { MAX_PART_BYTES, MIN_PART_BYTES, REDIRECT_EXPIRY_SECONDS, S3_DEFAULTS } from './s3-limits.js';

/** Options of the s3 driver: registry:2's `storage.s3` keys plus `storage.redirect.disable`. */
export interface S3DriverOptions {
  readonly bucket: string;
  readonly region: string;
  /** A URL (`http://127.0.0.1:7480`) or a host name; a bare host gets `https://`, or `http://` when not `secure`. */
  readonly regionEndpoint?: string | undefined;
  /** Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted ones (`bucket.endpoint/key`). */
  readonly forcePathStyle: boolean;
  /** Use TLS for endpoints given without a scheme (and for AWS's own). */
  readonly secure: boolean;
  /** Accept any TLS certificate from the endpoint (registry:2's `skipverify`). */
  readonly skipVerify?: boolean;
  /** Static credentials; when unset, the SDK's default chain (environment, profile, instance role). */
  readonly accessKey?: string | undefined;
  readonly secretKey?: string | undefined;
  readonly sessionToken?: string | undefined;
  /** Prefix of every key (registry:2's `rootdirectory`); `''` means the bucket's top. */
  readonly rootDirectory: string;
  /** Size of each uploaded part of a writer, from 5 MiB to 5 GiB. */
  readonly chunkSize: number;
  /** The storage class of new objects; `NONE` sends none (for servers that know no classes). */
  readonly storageClass: string;
  /** The canned ACL of new objects (registry:2's `objectacl`; `private` by default). */
  readonly objectAcl: string;
  /** Objects larger than this are copied with UploadPartCopy, in parts of `multipartCopyChunkSize`. */
  readonly multipartCopyThresholdSize: number;
  readonly multipartCopyChunkSize: number;
  readonly multipartCopyMaxConcurrency: number;
  /** Whether blob GETs may be answered with a presigned URL (not when `storage.redirect.disable`). */
  readonly redirect: boolean;
  readonly useDualstack?: boolean;
  readonly useAccelerate?: boolean;
  readonly useFips?: boolean;
  /** Attempts per request, the first included (default 5). */
  readonly maxAttempts?: number;
}

/** What the driver's parts share: the client, the bucket, keys, request parameters and error translation. */
export interface S3Context {
  readonly name: 's3';
  readonly client: S3Client;
  readonly bucket: string;
  readonly options: S3DriverOptions;
  /** The endpoint as requests see it, for messages. */
  readonly endpoint: string;
  /** The object key of a driver path (`/a/b` → `root/a/b`). */
  key(path: string): string;
  /** The prefix of every key below a directory (`/a` → `root/a/`, `/` → `root/`, or `''` with no root). */
  dirPrefix(path: string): string;
  /** The driver path of an object key (the inverse of `key`). */
  pathOf(key: string): string;
  /** Storage class, ACL and content type for requests that create objects. */
  readonly createParams: {
    readonly StorageClass?: StorageClass;
    readonly ACL?: ObjectCannedACL;
    readonly ContentType: string;
  };
  /** `bucket/key`, encoded, for CopySource. */
  copySource(key: string): string;
  /** The DriverError (or the AbortError of an aborted call) for a failed S3 request. */
  fail(op: string, path: string, err: unknown, o?: CallOptions): Error;
  /** The writers' part buffers, of `chunkSize` + 5 MiB each (s3-part-buffers.ts). */
  readonly partBuffers: PartBufferPool;
}

/** Builds the S3 client and the shared context from checked options. */
export function createS3Context(options: S3DriverOptions): S3Context {
  // The SDK warns once per process that its releases after January 2027 need Node 22. Berth pins
  // its SDK version, so the warning says nothing about this installation; keep it out of the logs.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const endpoint = endpointUrl(options);
  const root = options.rootDirectory.replace(/\/+$/, '');
  const key = (path: string): string => (root + path).replace(/^\/+/, '');
  const rootPrefix = key('/');
  const agentOptions = { keepAlive: true, maxSockets: 128 };
  const client = new S3Client({
    region: options.region,
    ...(endpoint !== undefined && { endpoint }),
    forcePathStyle: options.forcePathStyle,
    tls: endpoint === undefined ? options.secure : endpoint.startsWith('https:'),
    ...credentials(options),
    // Checksums only where the API requires them: Ceph RGW and other S3-compatible servers refuse
    // the SDK's default trailing CRC32 on streamed bodies (411 Length Required on PutObject).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryMode: 'standard',
    maxAttempts: options.maxAttempts ?? S3_DEFAULTS.maxAttempts,
    requestHandler: {
      connectionTimeout: 10_000,
      // A socket idle this long (no byte either way) is dropped, and the request retried.
      socketTimeout: 120_000,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent({ ...agentOptions, rejectUnauthorized: options.skipVerify !== true }),
    },
    ...(options.useDualstack === true && { useDualstackEndpoint: true }),
    ...(options.useAccelerate === true && { useAccelerateEndpoint: true }),
    ...(options.useFips === true && { useFipsEndpoint: true }),
  });
  const shown = endpoint ?? `AWS S3 (${options.region})`;
  return {
    name: 's3',
    client,
    bucket: options.bucket,
    options,
    endpoint: shown,
    key,
    dirPrefix: (path) => (path === '/' ? rootPrefix : `${key(path)}/`),
    pathOf: (k) => `/${k.slice(rootPrefix.length)}`,
    createParams: {
      ContentType: 'application/octet-stream',
      ...(options.storageClass !== 'NONE' && { StorageClass: options.storageClass as StorageClass }),
      ...(options.objectAcl !== '' && { ACL: options.objectAcl as ObjectCannedACL }),
    },
    copySource: (k) => `${options.bucket}/${k.split('/').map(encodeURIComponent).join('/')}`,
    fail: (op, path, err, o) => failure({ bucket: options.bucket, endpoint: shown }, op, path, err, o),
    // Two free buffers: a writer fills one while the part in the other is being sent.
    partBuffers: new PartBufferPool(options.chunkSize + MIN_PART_BYTES, 2),
  };
}

/** The endpoint URL, or undefined for AWS's own (chosen by the SDK from the region). */
function endpointUrl(o: S3DriverOptions): string | undefined {
  const given = o.regionEndpoint?.trim();
  if (given === undefined || given === '') return undefined;
  if (/^https?:\/\//i.test(given)) return given.replace(/\/+$/, '');
  return `${o.secure ? 'https' : 'http'}://${given.replace(/\/+$/, '')}`;
}

function credentials(o: S3DriverOptions): { credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } } {
  if (!o.accessKey || !o.secretKey) return {};
  return {
    credentials: {
      accessKeyId: o.accessKey,
      secretAccessKey: o.secretKey,
      ...(o.sessionToken ? { sessionToken: o.sessionToken } : {}),
    },
  };
}

/** The SDK's send() options for an optional abort signal. */
export function sendOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}

/** HeadObject of `key`, or undefined when there is no object there (an aborted call throws). */
export async function headObject(ctx: S3Context, key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | undefined> {
  try {
    return await ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key }), sendOptions(signal));
  } catch (err) {
    if (isNoSuchKey(err) && signal?.aborted !== true) return undefined;
    throw err;
  }
}

/** The S3 error code of a failed request (`NoSuchKey`, `SlowDown`, …), or the system error code. */
export function s3ErrorCode(err: unknown): string {
  if (err instanceof S3ServiceException) return err.name;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return typeof code === 'string' ? code : err.name;
  }
  return 'Error';
}

/** The HTTP status of a failed request, when the server answered. */
export function s3Status(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return meta?.httpStatusCode;
}

/** True for "no such object" answers (GetObject's NoSuchKey, HeadObject's bare 404). */
export function isNoSuchKey(err: unknown): boolean {
  const code = s3ErrorCode(err);
  if (code === 'NoSuchKey' || code === 'NotFound') return true;
  return s3Status(err) === 404 && !['NoSuchBucket', 'NoSuchUpload'].includes(code);
}

/** Hints for codes whose usual cause is the configuration. */
const HINTS: Readonly<Record<string, string>> = {
  AccessDenied: 'check storage.s3.accesskey, secretkey and the bucket policy',
  InvalidAccessKeyId: 'check storage.s3.accesskey',
  SignatureDoesNotMatch: 'check storage.s3.secretkey (and region)',
  AuthorizationHeaderMalformed: 'check storage.s3.region',
  PermanentRedirect: 'the bucket is in another region: check storage.s3.region',
  ECONNREFUSED: 'is the endpoint right and the server up?',
  ENOTFOUND: 'the endpoint host does not resolve',
};

function failure(
  where: { bucket: string; endpoint: string },
  op: string,
  path: string,
  err: unknown,
  o: CallOptions | undefined,
): Error {
  if (o?.signal?.aborted) return o.signal.reason instanceof Error ? o.signal.reason : (err as Error);
  if (err instanceof DriverError) return err;
  if (isNoSuchKey(err)) return new PathNotFoundError('s3', path, { cause: err });
  const code = s3ErrorCode(err);
  const status = s3Status(err);
  const attempts = (err as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts;
  const message = err instanceof Error ? err.message : String(err);
  const parts = [
    `${op} ${path} failed: ${code}${status === undefined ? '' : ` (HTTP ${status})`}`,
    message && message !== code && message !== 'UnknownError' ? `: ${message}` : '',
    code === 'NoSuchBucket' ? ` (bucket ${JSON.stringify(where.bucket)} at ${where.endpoint})` : ` (${where.endpoint})`,
    attempts !== undefined && attempts > 1 ? `, after ${attempts} attempts` : '',
    HINTS[code] === undefined ? '' : `; ${HINTS[code]}`,
  ];
  return new DriverError('DRIVER_FAILURE', 's3', parts.join(''), { cause: err });
}
