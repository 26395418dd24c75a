/**
 * The s3 driver's numbers and names, with no SDK import (the configuration checks values against them):
 * S3's part-size limits, Berth's defaults for registry:2's tuning keys, and the storage classes and
 * canned ACLs the driver accepts.
 */

/** S3's smallest part of a multipart upload (all but the last part must be at least this big). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

/** S3's largest part, and the largest object CopyObject copies in one request. */
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;

/** How long a redirect URL stays valid: registry:2's 20 minutes. */
export const REDIRECT_EXPIRY_SECONDS = 20 * 60;

/**
 * Defaults of the keys registry:2 also has. `chunksize`, `storageclass` and `objectacl` are registry:2's;
 * the copy settings differ on purpose: registry:2 copies objects over 32 MiB in 32 MiB parts, 100 at a
 * time (tuned for AWS); Berth copies up to CopyObject's 5 GiB in one request, which on Ceph RGW is a
 * reference-counted copy of the object's data, and larger objects in 1 GiB parts, 4 at a time.
 */
export const S3_DEFAULTS = {
  chunkSize: 10 * 1024 * 1024,
  storageClass: 'STANDARD',
  objectAcl: 'private',
  multipartCopyThresholdSize: MAX_PART_BYTES,
  multipartCopyChunkSize: 1024 * 1024 * 1024,
  multipartCopyMaxConcurrency: 4,
  maxAttempts: 5,
} as const;

/** `storageclass` values (registry:2 v3's list: classes that serve reads at once); NONE sends no class. */
export const S3_STORAGE_CLASSES: readonly string[] = [
  'NONE', 'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'OUTPOSTS',
  'GLACIER_IR', 'EXPRESS_ONEZONE',
];

/** `objectacl` values: S3's canned ACLs. */
export const S3_OBJECT_ACLS: readonly string[] = [
  'private', 'public-read', 'public-read-write', 'authenticated-read', 'aws-exec-read', 'bucket-owner-read',
  'bucket-owner-full-control',
];
