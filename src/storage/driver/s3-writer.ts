/**
 * The s3 driver's FileWriter: a multipart upload kept open between writers, as registry:2's s3 driver
 * keeps its own between PATCH requests, holding one part buffer in memory.
 *
 * What a key holds. Either a plain object (no upload open at the key), or, while a writer's content
 * is not committed, an open multipart upload at the key plus an empty object there (so that the path
 * exists; registry:2's writer leaves no object, which means the same). An open upload holds the content
 * only while the object at its key is missing or empty: a non-empty object is the content, and an
 * upload beside it is a leftover (a writer that died while moving the object into a new upload) that
 * is aborted. `stat` of an empty object therefore looks for an open upload and counts its parts;
 * `reader`, `getContent` and `move` of one complete it first (s3.ts, settleOpenUpload).
 *
 * Parts. Bytes are buffered and uploaded as parts of `chunksize` once a part and S3's 5 MiB minimum
 * more are buffered, so what is left when the writer ends is at least 5 MiB whenever the content is:
 * `end()` uploads it as one more part and answers only then (the durability point; the upload stays
 * open). Bytes are copied into a buffer of `chunksize` + 5 MiB from the driver's pool (s3-part-buffers.ts),
 * and a part is sent straight from its first `chunksize` bytes; the write that filled it is called back
 * once that part is stored and the 5 MiB after it moved to the front (one buffer per writer, reused
 * by the next writer once it ends). The request waits while a part is sent (its bytes wait in the
 * socket's buffers): a second buffer filling meanwhile was 15 MiB more resident memory per upload, and
 * without it Berth's upload speeds stayed about where they were (issue #18; bench/results/s3-2026-12-07-3.md).
 * A writer told how many bytes it will take (`expectedBytes`: a request's Content-Length) needs no
 * 5 MiB in hand: it sends a part once `chunksize` bytes are buffered, and cuts the one before the last
 * so that the last is at least 5 MiB (#partDue), so the buffer's last 5 MiB are never written, nor
 * resident (bench/results/s3-2026-12-07-10.md: the 1 GiB PUT's peak 93.8 MiB against 101.8).
 *
 * The pending part. Only the last part may be under 5 MiB, so a short tail (a content still under
 * 5 MiB, or a short PATCH after one) cannot stay a part once more bytes follow. `end()` then stores a
 * copy of it beside the key (`<key>~pending`, tagged with the upload id and the part number), and the
 * next writer, on any process, reads that copy back (If-Match the part's ETag) and re-uploads the same
 * part number with the new bytes after it: nothing before it is read or copied again. Without a
 * matching copy (registry:2's writer, or a process that died between the part and its copy) the upload
 * is completed and the object becomes the start of the new content, as registry:2 does: read back
 * under 5 MiB, otherwise copied server-side (UploadPartCopy, guarded by its ETag) into the new upload.
 *
 * `commit()` completes the upload (CompleteMultipartUpload), which makes the object whole at its key,
 * and removes the pending copy. A writer destroyed before `end()` keeps the parts it had stored (a
 * prefix of what it took); one that began from a plain object aborts the upload it started, leaving
 * the object as it was. `cancel()` aborts every upload at the key and removes the object.
 */
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DeleteObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { DriverError } from './driver.js';
import type { FileWriter, WriterOptions } from './driver.js';
import { MIN_PART_BYTES, sendOptions } from './s3-client.js';
import type { S3Context } from './s3-client.js';
import { abortUpload, completeUpload, copyParts, createUpload, deletePending, pendingKey, uploadsUnder } from './s3-multipart.js';
import { EMPTY, PART_NUMBER_META, UPLOAD_ID_META, putObject, writerStart } from './s3-writer-start.js';
import type { Start } from './s3-writer-start.js';

/** Opens a writer on `path`: truncating it, or continuing after its last byte. */
export async function openS3Writer(ctx: S3Context, path: string, o: WriterOptions): Promise<FileWriter> {
  const key = ctx.key(path);
  const { signal } = o;
  try {
    const start = await writerStart(ctx, key, o.append, signal);
    const end = o.expectedBytes === undefined ? undefined : start.size + o.expectedBytes;
    return new S3Writer(ctx, path, key, start, end, signal);
  } catch (err) {
    throw ctx.fail('writer', path, err, signal ? { signal } : {});
  }
}

class S3Writer extends Writable implements FileWriter {
  #size: number;
  /**
   * Bytes after the last whole part, in the first `#buffered` bytes of `#fill` (a buffer of the
   * driver's pool, `#uploadAt` bytes long); while `#tail` is set, exactly the bytes of that stored part.
   */
  #fill: Buffer | undefined;
  #buffered = 0;
  /** Where the buffered bytes end in the content (the content's size once written bytes are copied in). */
  #bufferEnd: number;
  /** The content's size once the bytes the caller said it would write are written, when it said. */
  readonly #expectedEnd: number | undefined;
  /** The upload that holds (or will hold) the content; none until a part is due for a plain object. */
  #uploadId: string | undefined;
  /** The parts before the buffered bytes, each at least 5 MiB, numbered from 1 on. */
  #parts: CompletedPart[] = [];
  /** The stored short last part that holds the buffered bytes, until more bytes change them. */
  #tail: CompletedPart | undefined;
  /** Bytes of the object to copy into the upload when it starts (with the object's ETag), or 0. */
  #copyBytes: number;
  readonly #copyEtag: string | undefined;
  /** The object at the key holds content that a new upload repeats: emptied once the upload holds all of it. */
  #objectHoldsContent: boolean;
  /** Whether anything was written (an untouched writer changes nothing at end()). */
  #dirty = false;
  #cancelled = false;
  #committed = false;

  constructor(
    private readonly ctx: S3Context,
    private readonly path: string,
    private readonly key: string,
    start: Start,
    expectedEnd: number | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    super({ decodeStrings: true });
    this.#size = start.size;
    this.#bufferEnd = start.size;
    this.#expectedEnd = expectedEnd;
    this.#copyBytes = start.copy === undefined ? 0 : start.size;
    this.#copyEtag = start.copy?.etag;
    this.#objectHoldsContent = start.upload === undefined && start.size > 0;
    if (start.upload !== undefined) {
      this.#uploadId = start.upload.id;
      this.#parts = [...start.upload.parts];
      this.#tail = start.upload.tail?.part;
    }
    const first = start.upload?.tail?.bytes ?? start.head;
    if (first !== undefined && first.length > 0) this.#copyIn(first, 0); // under 5 MiB: it fits
    this.#bufferEnd = start.size; // `first` is the end of the content so far, already counted
    if (signal !== undefined) {
      const onAbort = (): void => void this.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  get size(): number {
    return this.#size;
  }

  /** Buffered bytes that trigger a part upload when the writer's length is not known: a part, and enough after it for a last part of 5 MiB. */
  get #uploadAt(): number {
    return this.ctx.options.chunkSize + MIN_PART_BYTES;
  }

  /**
   * Bytes of the buffer to send as a part now, or 0 to buffer more. Without a known length: `chunksize`
   * once a part and 5 MiB more are buffered, so that whatever end() finds is a valid last part. With
   * the length the caller announced (`expectedBytes`), what is still to come counts as the 5 MiB: a
   * part goes as soon as `chunksize` bytes are buffered, and the buffer's last 5 MiB are never written
   * (nor resident: its pages are mapped on first write, s3-part-buffers.ts). When less than a part and
   * 5 MiB are left in all, the part is cut so that 5 MiB remain for the last one.
   */
  #partDue(): number {
    const chunk = this.ctx.options.chunkSize;
    if (this.#buffered >= this.#uploadAt) return chunk;
    const toCome = this.#expectedEnd === undefined ? -1 : this.#expectedEnd - this.#bufferEnd;
    if (toCome < 0) return 0; // no length given, or more bytes than it said: the rule without a length
    const left = this.#buffered + toCome;
    if (this.#buffered >= chunk && left - chunk >= MIN_PART_BYTES) return chunk;
    const cut = left - MIN_PART_BYTES;
    if (left > chunk && cut >= MIN_PART_BYTES && this.#buffered >= cut) return cut;
    return 0;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#size += chunk.length;
    this.#dirty = true;
    this.#tail = undefined;
    let from = this.#copyIn(chunk, 0);
    if (this.#partDue() === 0 && from === chunk.length) {
      callback();
      return;
    }
    const sendAndGoOn = async (): Promise<void> => {
      for (let due = this.#partDue(); due > 0; due = this.#partDue()) {
        await this.#sendPart(due);
        from = this.#copyIn(chunk, from);
      }
      // #partSized keeps this from happening; a mistake there must fail the write, not drop bytes.
      if (from < chunk.length) throw new Error(`part buffer full with ${this.#buffered} bytes and no part due`);
    };
    sendAndGoOn().then(() => callback(), (err: unknown) => callback(this.#fail('write', err)));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#end().then(() => callback(), (err: unknown) => callback(this.#fail('write', err)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Not given back to the pool: a part may still be sent from it, or a write copying into it.
    this.#fill = undefined;
    this.#buffered = 0;
    const uploadId = this.#uploadId;
    // Parts in an upload that holds the content stay: they are a prefix of it. An upload begun beside
    // an object that still holds the content repeats it and goes.
    if (uploadId === undefined || !this.#objectHoldsContent) {
      callback(error);
      return;
    }
    this.#uploadId = undefined;
    void abortUpload(this.ctx, this.key, uploadId).finally(() => callback(error));
  }

  async commit(): Promise<void> {
    if (this.#cancelled) throw new DriverError('DRIVER_FAILURE', 's3', `commit of ${this.path}: the writer was cancelled`);
    if (!this.writableFinished) {
      if (this.destroyed) throw new DriverError('DRIVER_FAILURE', 's3', `commit of ${this.path}: the writer was destroyed before it ended`);
      if (!this.writableEnded) this.end();
      await finished(this);
    }
    const uploadId = this.#uploadId;
    if (this.#committed || uploadId === undefined) return;
    const parts = this.#tail === undefined ? this.#parts : [...this.#parts, this.#tail];
    try {
      await completeUpload(this.ctx, this.key, uploadId, parts, this.signal);
    } catch (err) {
      throw this.#fail('commit', err);
    }
    this.#committed = true;
    this.#uploadId = undefined;
    await deletePending(this.ctx, this.key);
  }

  async cancel(): Promise<void> {
    this.#cancelled = true;
    if (!this.closed) {
      const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
      this.destroy();
      await closed;
    }
    try {
      for (const u of await uploadsUnder(this.ctx, this.key, true)) await abortUpload(this.ctx, u.key, u.uploadId);
      await Promise.all(
        [this.key, pendingKey(this.key)].map((Key) => this.ctx.client.send(new DeleteObjectCommand({ Bucket: this.ctx.bucket, Key }))),
      );
    } catch (err) {
      throw this.ctx.fail('cancel', this.path, err);
    }
  }

  /**
   * Sends the first `partBytes` bytes of the buffer as the next part and waits until it is stored;
   * what followed them then moves to the front of the same buffer. One buffer per writer: the request
   * waits while its part is sent (TCP holds what the client sends meanwhile).
   */
  async #sendPart(partBytes: number): Promise<void> {
    const fill = this.#fill;
    if (fill === undefined) throw new Error('the writer was destroyed');
    this.#parts.push(await this.#uploadPart(fill.subarray(0, partBytes)));
    if (this.#fill !== fill) throw new Error('the writer was destroyed');
    fill.copyWithin(0, partBytes, this.#buffered);
    this.#buffered -= partBytes;
  }

  /**
   * end(): the buffered bytes become the last part (with a pending copy when short), and the object is
   * emptied when the upload now holds what it held. Content that never reached a part (and had no
   * upload) is written as one object instead.
   */
  async #end(): Promise<void> {
    if (!this.#dirty) return;
    const fill = this.#fill;
    const bytes = fill === undefined ? EMPTY : fill.subarray(0, this.#buffered);
    try {
      if (this.#uploadId === undefined && this.#copyBytes === 0) {
        await putObject(this.ctx, this.key, bytes, this.signal);
        this.#objectHoldsContent = false;
        return;
      }
      const uploadId = await this.#ensureUpload();
      if (bytes.length > 0) {
        const part = await this.#uploadPart(bytes);
        if (bytes.length >= MIN_PART_BYTES) {
          this.#parts.push(part);
        } else {
          this.#tail = part;
          const meta = { [UPLOAD_ID_META]: uploadId, [PART_NUMBER_META]: String(part.PartNumber) };
          await putObject(this.ctx, pendingKey(this.key), bytes, this.signal, meta);
        }
      }
    } finally {
      // Every request that sent these bytes has settled. A writer that ended keeps no bytes (a
      // failed end leaves it unusable, and the next writer starts from what was stored).
      this.#fill = undefined;
      this.#buffered = 0;
      if (fill !== undefined) this.ctx.partBuffers.give(fill);
    }
    if (this.#objectHoldsContent) {
      await putObject(this.ctx, this.key, EMPTY, this.signal);
      this.#objectHoldsContent = false;
    }
  }

  /** The upload, started on first need with the object's bytes copied in as its first parts. */
  async #ensureUpload(): Promise<string> {
    if (this.#uploadId !== undefined) return this.#uploadId;
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
    return uploadId;
  }

  /** Uploads `body` as the part after `#parts` (replacing a short last part stored before). */
  async #uploadPart(body: Buffer): Promise<CompletedPart> {
    const uploadId = await this.#ensureUpload();
    const partNumber = (this.#parts.at(-1)?.PartNumber ?? 0) + 1;
    const out = await this.ctx.client.send(
      new UploadPartCommand({
        Bucket: this.ctx.bucket, Key: this.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length,
      }),
      sendOptions(this.signal),
    );
    if (out.ETag === undefined) throw new Error(`UploadPart ${partNumber} of ${this.key} answered no ETag`);
    return { PartNumber: partNumber, ETag: out.ETag };
  }

  /**
   * Whether the buffer needs to hold no more than a part, with `more` bytes about to be copied in: the
   * caller's length holds for them, and a part is at least 10 MiB, so that whatever is left after a
   * full buffer (more than a part) can be cut into a part and a last part of 5 MiB or more (#partDue).
   */
  #partSized(more: number): boolean {
    const end = this.#expectedEnd;
    return end !== undefined && this.#bufferEnd + more <= end && this.ctx.options.chunkSize >= 2 * MIN_PART_BYTES;
  }

  /**
   * Copies `chunk` from `from` into the buffer, as much as fits (when the writer's length is known, no
   * more than a part: the buffer's last 5 MiB stay untouched); answers where the copy stopped.
   */
  #copyIn(chunk: Buffer, from: number): number {
    const fill = (this.#fill ??= this.ctx.partBuffers.take());
    const upTo = this.#partSized(chunk.length - from) ? Math.max(this.#buffered, this.ctx.options.chunkSize) : fill.length;
    const copied = chunk.copy(fill, this.#buffered, from, from + Math.min(chunk.length - from, upTo - this.#buffered));
    this.#buffered += copied;
    this.#bufferEnd += copied;
    return from + copied;
  }

  #fail(op: string, err: unknown): Error {
    return this.ctx.fail(op, this.path, err, this.signal ? { signal: this.signal } : {});
  }
}
