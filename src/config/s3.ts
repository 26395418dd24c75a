/**
 * `storage.s3`: registry:2's s3 driver keys, checked and given their defaults (the driver's own
 * numbers come from storage/driver/s3-limits.ts). Keys that would silently change what is stored or
 * who may read it if ignored are refused (`encrypt: true`, `keyid`, `redirectendpoint`, `v4auth: false`).
 */
import { MAX_PART_BYTES, MIN_PART_BYTES, S3_DEFAULTS, S3_OBJECT_ACLS, S3_STORAGE_CLASSES } from '../storage/driver/s3-limits.js';
import { ConfigError, Lit, type RawMap, describe, lookup, readBool, readString } from './raw.js';
import type { S3StorageConfig } from './schema.js';

const KEY = 'storage.s3';

/** Reads `storage.s3`. @throws ConfigError naming the key at fault. */
export function readS3(root: RawMap): S3StorageConfig {
  const regionendpoint = readEndpoint(root);
  if (!readBool(root, `${KEY}.v4auth`, true)) {
    throw new ConfigError(`${KEY}.v4auth`, 'false is not supported: Berth signs S3 requests with AWS signature version 4 only');
  }
  if (readBool(root, `${KEY}.encrypt`, false)) {
    throw new ConfigError(`${KEY}.encrypt`, 'server-side encryption is not supported yet by Berth');
  }
  return {
    region: required(root, 'region'),
    regionendpoint,
    bucket: readBucket(root),
    accesskey: readString(root, `${KEY}.accesskey`) || undefined,
    secretkey: readString(root, `${KEY}.secretkey`) || undefined,
    forcepathstyle: readBool(root, `${KEY}.forcepathstyle`, regionendpoint !== undefined),
    secure: readBool(root, `${KEY}.secure`, true),
    skipverify: readBool(root, `${KEY}.skipverify`, false),
    rootdirectory: readString(root, `${KEY}.rootdirectory`) ?? '',
    chunksize: readBytes(root, 'chunksize', S3_DEFAULTS.chunkSize, MIN_PART_BYTES, MAX_PART_BYTES),
    storageclass: readName(root, 'storageclass', S3_STORAGE_CLASSES, S3_DEFAULTS.storageClass, (v) => v.toUpperCase()),
    objectacl: readName(root, 'objectacl', S3_OBJECT_ACLS, S3_DEFAULTS.objectAcl, (v) => v),
    multipartcopychunksize: readBytes(root, 'multipartcopychunksize', S3_DEFAULTS.multipartCopyChunkSize, MIN_PART_BYTES, MAX_PART_BYTES),
    multipartcopymaxconcurrency: readBytes(root, 'multipartcopymaxconcurrency', S3_DEFAULTS.multipartCopyMaxConcurrency, 1, 1000),
    multipartcopythresholdsize: readBytes(root, 'multipartcopythresholdsize', S3_DEFAULTS.multipartCopyThresholdSize, 0, MAX_PART_BYTES),
    usedualstack: readBool(root, `${KEY}.usedualstack`, false),
    accelerate: readBool(root, `${KEY}.accelerate`, false),
    usefipsendpoint: readBool(root, `${KEY}.usefipsendpoint`, false),
  };
}

function required(root: RawMap, name: string): string {
  const value = readString(root, `${KEY}.${name}`);
  if (value === undefined || value.trim() === '') throw new ConfigError(`${KEY}.${name}`, 'missing: the s3 driver needs it');
  return value.trim();
}

/** S3's bucket naming rules, loosely (Ceph RGW also allows upper case and underscores). */
function readBucket(root: RawMap): string {
  const bucket = required(root, 'bucket');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) {
    throw new ConfigError(`${KEY}.bucket`, `not a bucket name: ${JSON.stringify(bucket)}`);
  }
  return bucket;
}

/** `http(s)://host[:port]` or a bare `host[:port]` (made http or https by `secure`). */
function readEndpoint(root: RawMap): string | undefined {
  const value = readString(root, `${KEY}.regionendpoint`)?.trim();
  if (value === undefined || value === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`);
  } catch {
    url = undefined;
  }
  if (url === undefined || !['http:', 'https:'].includes(url.protocol) || url.hostname === '' || url.search !== '') {
    throw new ConfigError(`${KEY}.regionendpoint`, `expected a URL like http://ceph.example:7480 or a host name, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A whole number of bytes within `[min, max]`, written as a number or a string of digits (as registry:2 takes it). */
function readBytes(root: RawMap, name: string, fallback: number, min: number, max: number): number {
  const key = `${KEY}.${name}`;
  const raw = lookup(root, key);
  if (raw === undefined) return fallback;
  const text = raw instanceof Lit ? (typeof raw.value === 'string' ? raw.value.trim() : raw.text) : undefined;
  const value = text !== undefined && /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new ConfigError(key, `expected a whole number, got ${describe(raw)}`);
  if (value < min || value > max) throw new ConfigError(key, `must be from ${min} to ${max}, got ${value}`);
  return value;
}

function readName(root: RawMap, name: string, choices: readonly string[], fallback: string, normalize: (v: string) => string): string {
  const value = readString(root, `${KEY}.${name}`);
  if (value === undefined || value === '') return fallback;
  const chosen = normalize(value.trim());
  if (!choices.includes(chosen)) {
    throw new ConfigError(`${KEY}.${name}`, `expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return chosen;
}
