/**
 * What an s3 writer starts from (s3-writer.ts has the whole scheme): the key emptied, or the content
 * already there to continue after — an open multipart upload with its parts and the bytes of a short last
 * part (read back from its pending copy), or a plain object to re-send or copy server-side. Whatever
 * contradicts that scheme at the key (older uploads, an upload beside a non-empty object, a short part
 * with no matching copy) is settled here first.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { MIN_PART_BYTES, headObject, isNoSuchKey, s3Status, sendOptions } from './s3-client.js';
import type { S3Context } from './s3-client.js';
import { abortUpload, completeUpload, deletePending, openUploadAt, pendingKey, uploadsUnder } from './s3-multipart.js';
import type { OpenUpload, UploadedPart } from './s3-multipart.js';

/** User metadata of a pending-part object: the upload and the part it copies. */
export const UPLOAD_ID_META = 'berth-upload-id';
export const PART_NUMBER_META = 'berth-part-number';

export const EMPTY = Buffer.alloc(0);

/** What is at the key when a writer opens. */
export interface Start {
  /** Bytes of the content so far (all counted in the writer's size). */
  readonly size: number;
  /** The open upload that holds the content, when there is one. */
  readonly upload?: {
    readonly id: string;
    /** Its parts before the tail, each at least 5 MiB. */
    readonly parts: CompletedPart[];
    /** A short last part and its bytes (read from the pending copy), to be re-uploaded with what follows. */
    readonly tail?: { readonly part: CompletedPart; readonly bytes: Buffer };
  };
  /** Otherwise the object is the content: its bytes when few enough to resend (under 5 MiB)… */
  readonly head?: Buffer;
  /** …or its ETag, when its `size` bytes are to be copied server-side into the upload (5 MiB or more). */
  readonly copy?: { readonly etag: string | undefined };
}

/** What is at `key` as a writer opens on it: emptied (`append: false`), or the content to continue after. */
export function writerStart(ctx: S3Context, key: string, append: boolean, signal?: AbortSignal): Promise<Start> {
  return append ? resume(ctx, key, signal) : truncate(ctx, key, signal);
}

/** `append: false`: no upload at the key survives, and the object is empty from now on. */
async function truncate(ctx: S3Context, key: string, signal?: AbortSignal): Promise<Start> {
  for (const u of await uploadsUnder(ctx, key, true, signal)) await abortUpload(ctx, u.key, u.uploadId);
  await putObject(ctx, key, EMPTY, signal);
  return { size: 0 };
}

/** `append: true`: continues the open upload that holds the content, or starts from the object. */
async function resume(ctx: S3Context, key: string, signal?: AbortSignal): Promise<Start> {
  const [object, open] = await Promise.all([headObject(ctx, key, signal), openUploadAt(ctx, key, signal)]);
  const objectSize = object?.ContentLength ?? 0;
  if (open !== undefined && objectSize === 0) return continueUpload(ctx, key, object !== undefined, open, signal);
  if (open !== undefined) for (const u of [open.upload, ...open.older]) await abortUpload(ctx, u.key, u.uploadId);
  if (object === undefined) {
    await putObject(ctx, key, EMPTY, signal);
    return { size: 0 };
  }
  return fromObject(ctx, key, objectSize, object.ETag, signal);
}

/** The object at `key` (`size` bytes) as the start of the content. */
async function fromObject(ctx: S3Context, key: string, size: number, etag: string | undefined, signal?: AbortSignal): Promise<Start> {
  if (size === 0) return { size };
  if (size >= MIN_PART_BYTES) return { size, copy: { etag } };
  const got = await ctx.client.send(
    new GetObjectCommand({ Bucket: ctx.bucket, Key: key, ...(etag !== undefined && { IfMatch: etag }) }),
    sendOptions(signal),
  );
  const head = Buffer.from((await got.Body?.transformToByteArray()) ?? new Uint8Array(0));
  return { size: head.length, head };
}

/** The open upload `open` holds the content (the object is missing or empty): carry on with it. */
async function continueUpload(ctx: S3Context, key: string, objectExists: boolean, open: OpenUpload, signal?: AbortSignal): Promise<Start> {
  for (const u of open.older) await abortUpload(ctx, u.key, u.uploadId);
  const { upload, parts, size } = open;
  const last = parts.at(-1);
  if (last === undefined) {
    await abortUpload(ctx, key, upload.uploadId);
    if (!objectExists) await putObject(ctx, key, EMPTY, signal);
    return { size: 0 };
  }
  // registry:2's writer leaves no object while its upload is open; an empty one means the same here.
  if (!objectExists) await putObject(ctx, key, EMPTY, signal);
  const completed = parts.map(completedPart);
  if (last.size >= MIN_PART_BYTES) return { size, upload: { id: upload.uploadId, parts: completed } };
  const bytes = await readPending(ctx, key, upload.uploadId, last, signal);
  if (bytes !== undefined) {
    return { size, upload: { id: upload.uploadId, parts: completed.slice(0, -1), tail: { part: completedPart(last), bytes } } };
  }
  // The short last part has no copy to re-send: the upload becomes the object, which starts the content.
  await completeUpload(ctx, key, upload.uploadId, completed, signal);
  await deletePending(ctx, key);
  const object = await headObject(ctx, key, signal);
  return fromObject(ctx, key, object?.ContentLength ?? 0, object?.ETag, signal);
}

/** The bytes of `last` from its pending copy, when that copy is of this very part (upload, number and ETag). */
async function readPending(ctx: S3Context, key: string, uploadId: string, last: UploadedPart, signal?: AbortSignal): Promise<Buffer | undefined> {
  try {
    const got = await ctx.client.send(
      new GetObjectCommand({ Bucket: ctx.bucket, Key: pendingKey(key), IfMatch: last.etag }),
      sendOptions(signal),
    );
    const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? new Uint8Array(0));
    const meta = got.Metadata ?? {};
    const same = meta[UPLOAD_ID_META] === uploadId && meta[PART_NUMBER_META] === String(last.partNumber) && bytes.length === last.size;
    return same ? bytes : undefined;
  } catch (err) {
    if (isNoSuchKey(err) || s3Status(err) === 412) return undefined;
    throw err;
  }
}

export async function putObject(ctx: S3Context, key: string, body: Buffer, signal?: AbortSignal, metadata?: Record<string, string>): Promise<void> {
  await ctx.client.send(
    new PutObjectCommand({
      Bucket: ctx.bucket, Key: key, Body: body, ContentLength: body.length, ...ctx.createParams,
      ...(metadata !== undefined && { Metadata: metadata }),
    }),
    sendOptions(signal),
  );
}

function completedPart(p: UploadedPart): CompletedPart {
  return { PartNumber: p.partNumber, ETag: p.etag };
}
