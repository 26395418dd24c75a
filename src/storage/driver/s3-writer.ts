/**
 * The s3 driver's FileWriter: a multipart upload that holds at most one part in memory.
 *
 * The object at the writer's key always holds whole, ended content; nothing partial ever appears
 * there. Bytes are buffered until a part (`chunksize`) is full, then uploaded as the next part of a
 * multipart upload, and the write is called back only once that part is stored (backpressure).
 * `end()` uploads what is left as the last part and completes the upload, so the object then holds
 * everything written (a writer that never filled a part sends one PutObject instead). That is the
 * durability point: from then on `stat` and `reader` see the content, and any replica can continue it.
 *
 * Append (`writer(path, { append: true })`, registry:2's resume): an upload still in progress for the
 * key (left by a process that died, or by registry:2's s3 driver, whose writers keep theirs open
 * between requests) is completed first, so its parts count. Then the existing object is the start of
 * the new content: under S3's 5 MiB minimum part it is read back into the buffer (as registry:2
 * does), otherwise it becomes the first parts of the new upload by server-side copy (UploadPartCopy,
 * guarded by its ETag), and new bytes follow. A writer that is destroyed (error, abort) aborts its
 * upload, leaving the object as it was before it: a prefix of what it was given.
 */
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { DriverError } from './driver.js';
import type { FileWriter } from './driver.js';
import { MIN_PART_BYTES, isNoSuchKey, sendOptions } from './s3-client.js';
import type { S3Context } from './s3-client.js';
import { abortUpload, completeUpload, copyParts, createUpload, partsOf, uploadsUnder } from './s3-multipart.js';

/** What is at the key when a writer opens. */
interface Start {
  /** Bytes of the object so far (all counted in the writer's size). */
  readonly size: number;
  /** Those bytes, when they are few enough to resend (under S3's minimum part). */
  readonly head: Buffer | undefined;
  /** The object's ETag, when its bytes are to be copied server-side. */
  readonly etag: string | undefined;
}

/** Opens a writer on `path`: truncating it, or continuing after its last byte. */
export async function openS3Writer(ctx: S3Context, path: string, append: boolean, signal?: AbortSignal): Promise<FileWriter> {
  const key = ctx.key(path);
  try {
    const start = append ? await resume(ctx, key, signal) : await truncate(ctx, key, signal);
    return new S3Writer(ctx, path, key, start, signal);
  } catch (err) {
    throw ctx.fail('writer', path, err, signal ? { signal } : {});
  }
}

/** `append: false`: no upload in progress survives, and the object is empty from now on. */
async function truncate(ctx: S3Context, key: string, signal?: AbortSignal): Promise<Start> {
  for (const u of await uploadsUnder(ctx, key, true, signal)) await abortUpload(ctx, u.key, u.uploadId);
  await putObject(ctx, key, Buffer.alloc(0), signal);
  return { size: 0, head: undefined, etag: undefined };
}

/** `append: true`: completes a leftover upload, then takes the object as the start of the content. */
async function resume(ctx: S3Context, key: string, signal?: AbortSignal): Promise<Start> {
  const uploads = (await uploadsUnder(ctx, key, true, signal)).sort((a, b) => b.initiated.getTime() - a.initiated.getTime());
  const [latest, ...older] = uploads;
  for (const u of older) await abortUpload(ctx, u.key, u.uploadId);
  if (latest !== undefined) {
    const parts = await partsOf(ctx, latest, signal);
    if (parts.length === 0) await abortUpload(ctx, latest.key, latest.uploadId);
    else await completeUpload(ctx, key, latest.uploadId, parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })), signal);
  }
  let head;
  try {
    head = await ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key }), sendOptions(signal));
  } catch (err) {
    if (!isNoSuchKey(err)) throw err;
    await putObject(ctx, key, Buffer.alloc(0), signal);
    return { size: 0, head: undefined, etag: undefined };
  }
  const size = head.ContentLength ?? 0;
  if (size >= MIN_PART_BYTES) return { size, head: undefined, etag: head.ETag };
  if (size === 0) return { size, head: undefined, etag: undefined };
  const got = await ctx.client.send(
    new GetObjectCommand({ Bucket: ctx.bucket, Key: key, ...(head.ETag !== undefined && { IfMatch: head.ETag }) }),
    sendOptions(signal),
  );
  const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? new Uint8Array(0));
  return { size: bytes.length, head: bytes, etag: undefined };
}

async function putObject(ctx: S3Context, key: string, body: Buffer, signal?: AbortSignal): Promise<void> {
  await ctx.client.send(
    new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: body, ContentLength: body.length, ...ctx.createParams }),
    sendOptions(signal),
  );
}

class S3Writer extends Writable implements FileWriter {
  #size: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The upload this writer started (none until a part is due). */
  #uploadId: string | undefined;
  #parts: CompletedPart[] = [];
  /** Bytes of the existing object still to be copied into the upload (with its ETag), or 0. */
  #copyBytes: number;
  readonly #copyEtag: string | undefined;
  /** Whether anything was written (an untouched writer changes nothing at end()). */
  #dirty = false;
  #cancelled = false;

  constructor(
    private readonly ctx: S3Context,
    private readonly path: string,
    private readonly key: string,
    start: Start,
    private readonly signal: AbortSignal | undefined,
  ) {
    super({ decodeStrings: true });
    this.#size = start.size;
    this.#copyEtag = start.etag;
    this.#copyBytes = start.head === undefined ? start.size : 0;
    if (start.head !== undefined && start.head.length > 0) {
      this.#chunks.push(start.head);
      this.#buffered = start.head.length;
    }
    if (signal !== undefined) {
      const onAbort = (): void => void this.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  get size(): number {
    return this.#size;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#size += chunk.length;
    this.#dirty = true;
    if (this.#buffered < this.ctx.options.chunkSize) {
      callback();
      return;
    }
    this.#uploadFullParts().then(() => callback(), (err: unknown) => callback(this.#fail(err)));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(() => callback(), (err: unknown) => callback(this.#fail(err)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const uploadId = this.#uploadId;
    this.#uploadId = undefined;
    this.#chunks = [];
    if (uploadId === undefined) {
      callback(error);
      return;
    }
    void abortUpload(this.ctx, this.key, uploadId).finally(() => callback(error));
  }

  async commit(): Promise<void> {
    if (this.#cancelled) throw new DriverError('DRIVER_FAILURE', 's3', `commit of ${this.path}: the writer was cancelled`);
    if (this.writableFinished) return;
    if (this.destroyed) throw new DriverError('DRIVER_FAILURE', 's3', `commit of ${this.path}: the writer was destroyed before it ended`);
    if (!this.writableEnded) this.end();
    await finished(this);
  }

  async cancel(): Promise<void> {
    this.#cancelled = true;
    if (!this.closed) {
      const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
      this.destroy();
      await closed;
    }
    try {
      await this.ctx.client.send(new DeleteObjectCommand({ Bucket: this.ctx.bucket, Key: this.key }));
    } catch (err) {
      throw this.ctx.fail('cancel', this.path, err);
    }
  }

  /** Uploads parts while a whole one is buffered. */
  async #uploadFullParts(): Promise<void> {
    while (this.#buffered >= this.ctx.options.chunkSize) await this.#uploadPart(this.#take(this.ctx.options.chunkSize));
  }

  /** end(): the last part and the completion, or a single PutObject when no part was ever due. */
  async #finish(): Promise<void> {
    if (!this.#dirty) return;
    if (this.#uploadId === undefined && this.#copyBytes === 0) {
      await putObject(this.ctx, this.key, this.#take(this.#buffered), this.signal);
      return;
    }
    await this.#ensureUpload();
    if (this.#buffered > 0) await this.#uploadPart(this.#take(this.#buffered));
    const uploadId = this.#uploadId;
    if (uploadId === undefined) return;
    await completeUpload(this.ctx, this.key, uploadId, this.#parts, this.signal);
    this.#uploadId = undefined;
  }

  /** Starts the upload on first need, its first parts copied from the existing object. */
  async #ensureUpload(): Promise<void> {
    if (this.#uploadId !== undefined) return;
    const uploadId = await createUpload(this.ctx, this.key, this.signal);
    this.#uploadId = uploadId;
    if (this.#copyBytes > 0) {
      this.#parts = await copyParts(this.ctx, {
        sourceKey: this.key, bytes: this.#copyBytes, destKey: this.key, uploadId, firstPart: 1, morePartsFollow: true,
        partBytes: this.ctx.options.multipartCopyChunkSize, concurrency: this.ctx.options.multipartCopyMaxConcurrency,
        ifMatch: this.#copyEtag, signal: this.signal,
      });
      this.#copyBytes = 0;
    }
  }

  async #uploadPart(body: Buffer): Promise<void> {
    await this.#ensureUpload();
    const partNumber = this.#parts.length + 1;
    const out = await this.ctx.client.send(
      new UploadPartCommand({
        Bucket: this.ctx.bucket, Key: this.key, UploadId: this.#uploadId, PartNumber: partNumber,
        Body: body, ContentLength: body.length,
      }),
      sendOptions(this.signal),
    );
    if (out.ETag === undefined) throw new Error(`UploadPart ${partNumber} of ${this.key} answered no ETag`);
    this.#parts.push({ PartNumber: partNumber, ETag: out.ETag });
  }

  /** The first `n` buffered bytes as one buffer; the rest stays buffered. */
  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 && this.#chunks[0] !== undefined ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#buffered);
    const part = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return part;
  }

  #fail(err: unknown): Error {
    return this.ctx.fail('write', this.path, err, this.signal ? { signal: this.signal } : {});
  }
}
