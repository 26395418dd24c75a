/**
 * The multipart-upload requests the s3 driver builds on: server-side copies in parts (UploadPartCopy),
 * completing and aborting uploads, finding the uploads in progress under a key or a prefix, and the
 * upload a writer left open at a key (with its pending part, see s3-writer.ts).
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { MAX_PART_BYTES, MIN_PART_BYTES, sendOptions } from './s3-client.js';
import type { S3Context } from './s3-client.js';

/** An upload in progress. */
export interface UploadInProgress {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

/** A part already uploaded, as ListParts reports it. */
export interface UploadedPart {
  readonly partNumber: number;
  readonly etag: string;
  readonly size: number;
}

/**
 * Every upload in progress whose key is `key` or lies below `key + '/'` (`exact`: only `key` itself).
 */
export async function uploadsUnder(ctx: S3Context, key: string, exact: boolean, signal?: AbortSignal): Promise<UploadInProgress[]> {
  const found: UploadInProgress[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await ctx.client.send(
      new ListMultipartUploadsCommand({
        Bucket: ctx.bucket,
        Prefix: key,
        ...(keyMarker !== undefined && { KeyMarker: keyMarker }),
        ...(uploadIdMarker !== undefined && { UploadIdMarker: uploadIdMarker }),
      }),
      sendOptions(signal),
    );
    for (const u of page.Uploads ?? []) {
      if (u.Key === undefined || u.UploadId === undefined) continue;
      if (u.Key !== key && (exact || !u.Key.startsWith(`${key}/`))) continue;
      found.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) });
    }
    if (page.IsTruncated !== true || page.NextKeyMarker === undefined) return found;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
}

/** The parts of an upload in progress, in part-number order. */
export async function partsOf(ctx: S3Context, u: UploadInProgress, signal?: AbortSignal): Promise<UploadedPart[]> {
  const parts: UploadedPart[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await ctx.client.send(
      new ListPartsCommand({
        Bucket: ctx.bucket,
        Key: u.key,
        UploadId: u.uploadId,
        ...(marker !== undefined && { PartNumberMarker: marker }),
      }),
      sendOptions(signal),
    );
    for (const p of page.Parts ?? []) {
      if (p.PartNumber === undefined || p.ETag === undefined) continue;
      parts.push({ partNumber: p.PartNumber, etag: p.ETag, size: p.Size ?? 0 });
    }
    if (page.IsTruncated !== true || page.NextPartNumberMarker === undefined) break;
    marker = page.NextPartNumberMarker;
  }
  return parts.sort((a, b) => a.partNumber - b.partNumber);
}

/**
 * The suffix of a pending-part object: `<key>~pending` holds a copy of the last part of the upload
 * open at `<key>` while that part is under S3's 5 MiB minimum (s3-writer.ts). `~` is outside the
 * driver's path alphabet, so no driver path names one; list and walk leave them out.
 */
export const PENDING_SUFFIX = '~pending';

/** The key of the pending-part object of the upload open at `key`. */
export function pendingKey(key: string): string {
  return `${key}${PENDING_SUFFIX}`;
}

/** Whether `key` is a pending-part object (never shown as a file). */
export function isPendingKey(key: string): boolean {
  return key.endsWith(PENDING_SUFFIX);
}

/** The upload a writer left open at a key: the newest one there, its parts, and their total size. */
export interface OpenUpload {
  readonly upload: UploadInProgress;
  readonly parts: UploadedPart[];
  readonly size: number;
  /** Older uploads at the same key (leftovers that hold nothing of the content). */
  readonly older: UploadInProgress[];
}

/**
 * The upload open at exactly `key`, or undefined when there is none. Whether it holds the content of
 * the key depends on the object there (s3-writer.ts): it does when the object is missing or empty.
 */
export async function openUploadAt(ctx: S3Context, key: string, signal?: AbortSignal): Promise<OpenUpload | undefined> {
  const uploads = (await uploadsUnder(ctx, key, true, signal)).sort((a, b) => b.initiated.getTime() - a.initiated.getTime());
  const [upload, ...older] = uploads;
  if (upload === undefined) return undefined;
  const parts = await partsOf(ctx, upload, signal);
  return { upload, parts, size: parts.reduce((sum, p) => sum + p.size, 0), older };
}

/**
 * Makes the upload open at `key` (if any) the object there: completes it with the parts it has, aborts
 * older leftovers and removes the pending part. Only for a key whose object is missing or empty (then
 * the open upload holds its content). Answers whether an upload was completed.
 */
export async function settleOpenUpload(ctx: S3Context, key: string, signal?: AbortSignal): Promise<boolean> {
  const open = await openUploadAt(ctx, key, signal);
  if (open === undefined) return false;
  for (const u of open.older) await abortUpload(ctx, u.key, u.uploadId);
  if (open.parts.length === 0) {
    await abortUpload(ctx, key, open.upload.uploadId);
    return false;
  }
  await completeUpload(ctx, key, open.upload.uploadId, open.parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })), signal);
  await deletePending(ctx, key);
  return true;
}

/** Removes the pending part of `key`, ignoring failure (a stale one is never taken: see s3-writer.ts). */
export async function deletePending(ctx: S3Context, key: string): Promise<void> {
  try {
    await ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: pendingKey(key) }));
  } catch {
    // Cleanup only: a leftover is removed with its directory, and never taken for a part it is not.
  }
}

/** Starts a multipart upload to `key`; answers its id. */
export async function createUpload(ctx: S3Context, key: string, signal?: AbortSignal): Promise<string> {
  const out = await ctx.client.send(
    new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, ...ctx.createParams }),
    sendOptions(signal),
  );
  if (out.UploadId === undefined) throw new Error(`CreateMultipartUpload of ${key} answered no UploadId`);
  return out.UploadId;
}

/** Completes an upload: its parts become the object at `key`, atomically. */
export async function completeUpload(
  ctx: S3Context,
  key: string,
  uploadId: string,
  parts: readonly CompletedPart[],
  signal?: AbortSignal,
): Promise<void> {
  await ctx.client.send(
    new CompleteMultipartUploadCommand({
      Bucket: ctx.bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: [...parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0)) },
    }),
    sendOptions(signal),
  );
}

/** Aborts an upload, ignoring failure (it is cleanup; a leftover upload is found and aborted later). */
export async function abortUpload(ctx: S3Context, key: string, uploadId: string): Promise<void> {
  try {
    await ctx.client.send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId }));
  } catch {
    // NoSuchUpload (already gone) or the server is unreachable: nothing more to do here.
  }
}

/** What copyRange needs: the source object, the destination upload, where its parts start. */
export interface PartCopy {
  readonly sourceKey: string;
  /** Bytes of the source to copy, from its start. */
  readonly bytes: number;
  readonly destKey: string;
  readonly uploadId: string;
  /** The part number of the first part written. */
  readonly firstPart: number;
  /** About this many bytes per part at most (5 MiB to 5 GiB). */
  readonly partBytes: number;
  /** Whether the upload goes on after these parts (then every one must be at least 5 MiB). */
  readonly morePartsFollow: boolean;
  readonly concurrency: number;
  /** When given, the copy fails if the source changed (its ETag is no longer this). */
  readonly ifMatch?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Where each part of a copy of `bytes` starts: parts of `partBytes` and a smaller last one; or, when
 * more parts follow (so the last one must be at least S3's 5 MiB minimum too), equal parts of at most
 * about `partBytes` with the remainder in the last, fewer and larger when needed, none under 5 MiB.
 */
function partStarts(bytes: number, partBytes: number, morePartsFollow: boolean): number[] {
  if (!morePartsFollow) return Array.from({ length: Math.max(1, Math.ceil(bytes / partBytes)) }, (_, i) => i * partBytes);
  const limit = Math.min(partBytes, MAX_PART_BYTES - MIN_PART_BYTES);
  const count = Math.max(1, Math.min(Math.ceil(bytes / limit), Math.floor(bytes / MIN_PART_BYTES)));
  const size = Math.floor(bytes / count);
  return Array.from({ length: count }, (_, i) => i * size);
}

/** Copies the first `bytes` of the source into consecutive parts of the upload, server-side. */
export async function copyParts(ctx: S3Context, c: PartCopy): Promise<CompletedPart[]> {
  const starts = partStarts(c.bytes, c.partBytes, c.morePartsFollow);
  const count = starts.length;
  const parts: CompletedPart[] = new Array<CompletedPart>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next;
      next += 1;
      const first = starts[i] ?? 0;
      const last = (starts[i + 1] ?? c.bytes) - 1;
      const out = await ctx.client.send(
        new UploadPartCopyCommand({
          Bucket: ctx.bucket,
          Key: c.destKey,
          UploadId: c.uploadId,
          PartNumber: c.firstPart + i,
          CopySource: ctx.copySource(c.sourceKey),
          CopySourceRange: `bytes=${first}-${last}`,
          ...(c.ifMatch !== undefined && { CopySourceIfMatch: c.ifMatch }),
        }),
        sendOptions(c.signal),
      );
      const etag = out.CopyPartResult?.ETag;
      if (etag === undefined) throw new Error(`UploadPartCopy of ${c.sourceKey} answered no ETag`);
      parts[i] = { PartNumber: c.firstPart + i, ETag: etag };
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, Math.max(1, c.concurrency)) }, worker));
  return parts;
}

/** Copies a whole object to `destKey` in parts (objects over CopyObject's 5 GiB, or over the configured threshold). */
export async function multipartCopy(
  ctx: S3Context,
  sourceKey: string,
  destKey: string,
  bytes: number,
  ifMatch: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const uploadId = await createUpload(ctx, destKey, signal);
  try {
    const parts = await copyParts(ctx, {
      sourceKey, bytes, destKey, uploadId, firstPart: 1, ifMatch, signal, morePartsFollow: false,
      partBytes: ctx.options.multipartCopyChunkSize,
      concurrency: ctx.options.multipartCopyMaxConcurrency,
    });
    await completeUpload(ctx, destKey, uploadId, parts, signal);
  } catch (err) {
    await abortUpload(ctx, destKey, uploadId);
    throw err;
  }
}
