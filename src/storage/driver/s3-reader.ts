/**
 * The s3 driver's reader: an object's bytes from an offset, fetched as ranged GetObjects of
 * `READ_PIECE_BYTES`, up to `READ_CONCURRENCY` of them in flight, and handed on in order.
 *
 * Why ranges in parallel: one GetObject through Node's HTTP client ran at about half of what
 * registry:2 (Go) served from the same Ceph RGW bucket; RGW serves several ranges of one object at
 * once faster than one long response. Each piece's body is taken into memory as it arrives (so the
 * next pieces are on their way while the client takes the current one): at most about
 * `READ_CONCURRENCY × READ_PIECE_BYTES` per reader, and a piece is fetched only once the one
 * `READ_CONCURRENCY` places before it has been handed on, so a slow client holds back the requests.
 *
 * - The first piece is requested by `openS3Reader` (it rejects, before any byte flows, for a missing
 *   object or an offset past the end); it also tells the object's size and ETag. Every later piece is
 *   requested with If-Match that ETag, so a replaced object is never spliced in.
 * - A `length` (the caller's byte range, or `cap(n)` before reading) bounds what is requested: a
 *   range of a few KiB is one GetObject of those bytes.
 * - A piece whose connection drops mid-body is re-requested from the byte it stopped at, a few times.
 * - Destroying the reader (or aborting the caller's signal) aborts every request in flight.
 * - It is a SendableReader (driver.ts): `sendTo(dest)` writes the pieces' chunks straight to `dest`,
 *   honouring its backpressure, without the Readable's own buffering.
 */
import { Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import { once, setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { InvalidOffsetError, PathNotFoundError } from './driver.js';
import type { SendableReader } from './driver.js';
import { headObject, s3ErrorCode, sendOptions } from './s3-client.js';
import type { S3Context } from './s3-client.js';
import { RawGetStatusError, openRawGet, rawGetsPossible } from './s3-raw-get.js';
import type { RawBody } from './s3-raw-get.js';

/** Bytes per ranged GetObject: RGW's own stripe (its objects are RADOS objects of 4 MiB). */
export const READ_PIECE_BYTES = 4 * 1024 * 1024;

/** Ranged GetObjects in flight per reader (the one being handed on included). */
export const READ_CONCURRENCY = 4;

/** How often a piece is re-requested after its connection dropped (each time from where it stopped). */
const READ_RETRIES = 3;

/** Where a reader reads: the object, from where, and at most how much. */
export interface ReadTarget {
  /** The driver path (for errors) and the object key. */
  readonly path: string;
  readonly key: string;
  readonly offset: number;
  /** Bytes wanted from `offset` at most; the rest of the object when undefined. */
  readonly length?: number | undefined;
}

/** One ranged GetObject's answer: its body and the bytes it spans, with the object's size and ETag. */
interface Answer {
  readonly body: Readable;
  readonly etag: string | undefined;
  /** The whole object's size. */
  readonly size: number;
}

/**
 * Opens a reader at `t`: requests its first piece, and answers the reader once that answered, or
 * undefined for an offset exactly at the end of the object (nothing to read).
 * @throws PathNotFoundError, InvalidOffsetError (past the end), or the failed request's error.
 */
export async function openS3Reader(ctx: S3Context, t: ReadTarget, signal?: AbortSignal): Promise<S3Reader | undefined> {
  const controller = new AbortController();
  // Each piece in flight listens (its own listener and the SDK's): more than Node's default of 10.
  setMaxListeners(4 * READ_CONCURRENCY + 4, controller.signal);
  const onAbort = (): void => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const firstEnd = t.offset + Math.max(1, Math.min(READ_PIECE_BYTES, t.length ?? READ_PIECE_BYTES));
    const first = await getRange(ctx, t, t.offset, firstEnd, undefined, controller.signal);
    if (first === undefined) return undefined;
    const end = Math.min(first.size, t.length === undefined ? first.size : t.offset + t.length);
    return new S3Reader(ctx, t, { controller, signal, onAbort }, first, Math.min(firstEnd, end), end);
  } catch (err) {
    signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted === true) throw signal.reason instanceof Error ? signal.reason : err;
    throw err;
  }
}

/**
 * GetObject of bytes `[start, end)` of `t`'s object (If-Match `etag` when given), or undefined when
 * `start` is exactly the object's size. @throws PathNotFoundError, InvalidOffsetError past the end
 */
async function getRange(
  ctx: S3Context,
  t: ReadTarget,
  start: number,
  end: number,
  etag: string | undefined,
  signal: AbortSignal,
): Promise<Answer | undefined> {
  try {
    const out = await ctx.client.send(
      new GetObjectCommand({
        Bucket: ctx.bucket, Key: t.key, Range: `bytes=${start}-${end - 1}`, ...(etag !== undefined && { IfMatch: etag }),
      }),
      sendOptions(signal),
    );
    if (!(out.Body instanceof Readable)) throw new Error(`GetObject of ${t.key} answered no stream`);
    // `bytes 0-4194303/1073741824`; a server that ignores the range answers the whole object.
    const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1];
    return { body: out.Body, etag: out.ETag, size: total === undefined ? start + (out.ContentLength ?? 0) : Number(total) };
  } catch (err) {
    if (s3ErrorCode(err) !== 'InvalidRange' || signal.aborted) throw err;
    // A range that starts at or past the end: an empty read at the end, or an offset too far.
    const head = await headObject(ctx, t.key, signal);
    if (head === undefined) throw new PathNotFoundError('s3', t.path);
    if ((head.ContentLength ?? 0) === start) return undefined;
    throw new InvalidOffsetError('s3', t.path, start);
  }
}

/**
 * Bytes handed on in order. A chunk with `release` lends a buffer that is reused once released (a raw
 * GET's, s3-raw-get.ts): the consumer calls it when the bytes are no longer needed.
 */
interface Chunk {
  readonly bytes: Buffer;
  readonly release?: () => void;
}

/** The reader's link to the caller's abort signal, and the controller of its own requests. */
interface Aborting {
  readonly controller: AbortController;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** A piece on its way: the chunks of its body taken so far, and whether it is complete or failed. */
class Piece {
  #chunks: Buffer[] = [];
  #done = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(source: AsyncIterable<Buffer>) {
    void this.#pump(source);
  }

  /** Its chunks in order, as they arrive; throws what the fetch failed with. */
  async *chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#done) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  async #pump(source: AsyncIterable<Buffer>): Promise<void> {
    try {
      for await (const chunk of source) {
        this.#chunks.push(chunk);
        this.#wakeUp();
      }
      this.#done = true;
    } catch (err) {
      this.#error = err ?? new Error('the piece failed');
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** An object's bytes `[start, end)`, fetched in pieces (see the file's comment). */
export class S3Reader extends Readable implements SendableReader {
  readonly sendable = true;
  #end: number;
  /** Bytes a `cap` asked for beyond the object's end (the read then fails once it has sent the rest). */
  #short = 0;
  #started = false;
  #iterator: AsyncGenerator<Chunk> | undefined;

  constructor(
    private readonly ctx: S3Context,
    private readonly target: ReadTarget,
    private readonly aborting: Aborting,
    private readonly first: Answer,
    /** Where the first piece ends. */
    private readonly firstEnd: number,
    end: number,
  ) {
    super();
    this.#end = end;
    const { signal, onAbort } = aborting;
    if (signal !== undefined) {
      signal.removeEventListener('abort', onAbort);
      const destroyOnAbort = (): void => {
        const reason: unknown = signal.reason;
        this.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      };
      signal.addEventListener('abort', destroyOnAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', destroyOnAbort));
    }
  }

  /** The whole object's size, as its first answer gave it. */
  get objectSize(): number {
    return this.first.size;
  }

  /** Yields at most `length` bytes from the offset. @throws when reading has started */
  cap(length: number): this {
    if (this.#started) throw new Error('cap() after reading started');
    const wanted = this.target.offset + length;
    this.#short = wanted > this.first.size ? wanted - this.first.size : 0;
    this.#end = Math.min(this.#end, wanted);
    return this;
  }

  override _read(): void {
    this.#iterator ??= this.#start();
    this.#iterator.next().then(
      (r) => void this.push(r.done === true ? null : owned(r.value)),
      (err: unknown) => this.destroy(this.#failure(err)),
    );
  }

  /**
   * Writes every byte this reader would yield to `dest`, waiting for 'drain' when it asks, then
   * closes the reader. Rejects when a request fails or either stream is destroyed first; `dest` is
   * left open. @throws when reading has started
   */
  async sendTo(dest: Writable): Promise<void> {
    const chunks = this.#start(dest);
    const stop = new AbortController();
    const onClose = (): void => stop.abort();
    for (const s of [this, dest]) s.once('close', onClose);
    const closedEarly = (): Error => this.errored ?? dest.errored ?? new Error('the stream was closed before the end');
    // Nobody else reads this stream: an error it is destroyed with (the caller's abort, a client gone)
    // is this promise's to report, not an 'error' event with no listener (an uncaught exception).
    this.on('error', ignore);
    try {
      for await (const chunk of chunks) {
        if (stop.signal.aborted) throw closedEarly();
        // A lent buffer goes back once `dest` has called back for it (its bytes have left).
        if (!dest.write(chunk.bytes, chunk.release)) await once(dest, 'drain', { signal: stop.signal });
      }
    } catch (err) {
      throw stop.signal.aborted ? closedEarly() : this.#failure(err);
    } finally {
      for (const s of [this, dest]) s.off('close', onClose);
      await chunks.return(undefined);
      this.destroy();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.aborting.controller.abort(err ?? new Error('the reader was closed'));
    this.first.body.destroy();
    cb(err);
  }

  /**
   * Starts the chunks' generator (once): reading begins. With `sink`, a raw GET writes its bytes to it
   * directly (RawBody.pipeTo) instead of yielding them.
   */
  #start(sink?: Writable): AsyncGenerator<Chunk> {
    if (this.#started) throw new Error('the reader was read already');
    this.#started = true;
    return this.#chunks(sink);
  }

  /**
   * Every chunk from the offset to the end, in order: the first piece, then the rest. On a plain
   * `http://` endpoint the rest is one raw GET (s3-raw-get.ts) requested once the first piece has been
   * handed on (and written straight to `sink` when there is one); otherwise it is pieces, each
   * requested once the one `READ_CONCURRENCY` places before it has been handed on.
   */
  async *#chunks(sink: Writable | undefined): AsyncGenerator<Chunk> {
    const { offset } = this.target;
    const end = this.#end;
    const firstEnd = Math.min(this.firstEnd, end);
    const raw = firstEnd < end && rawGetsPossible(this.ctx);
    const pieces: Piece[] = [new Piece(this.#piece(offset, firstEnd, this.first.body))];
    let next = firstEnd;
    const fetchNext = (): void => {
      if (next >= end || raw) return;
      const start = next;
      next = Math.min(end, start + READ_PIECE_BYTES);
      pieces.push(new Piece(this.#piece(start, next, undefined)));
    };
    while (pieces.length < READ_CONCURRENCY && next < end && !raw) fetchNext();
    try {
      for (let piece = pieces.shift(); piece !== undefined; piece = pieces.shift()) {
        for await (const bytes of piece.chunks()) yield { bytes };
        fetchNext();
      }
      if (raw) {
        yield* this.#rawRest(next, end, sink);
        next = end;
      }
      if (this.#short > 0) throw new Error(`${this.target.key} ended ${this.#short} bytes before the end of the range`);
    } finally {
      if (next < end || pieces.length > 0) this.aborting.controller.abort(new Error('the reader stopped'));
    }
  }

  /**
   * Bytes `[start, end)` through raw GETs, re-requested from where they stopped when the connection
   * drops (at most READ_RETRIES times in a row). An answer other than the range asked for (a 412 for a
   * replaced object, a 404, a 5xx) is asked again through the SDK, which retries what it retries and
   * reports the rest as usual. With `sink`, the raw GETs' bytes are written to it (not yielded); the
   * SDK's are still yielded.
   */
  async *#rawRest(start: number, end: number, sink: Writable | undefined): AsyncGenerator<Chunk> {
    const signal = this.aborting.controller.signal;
    const range = { key: this.target.key, etag: this.first.etag };
    let position = start;
    let retries = 0;
    while (position < end) {
      let body: RawBody | undefined;
      try {
        body = await openRawGet(this.ctx, { ...range, start: position, end }, signal);
        if (sink !== undefined) {
          await piped(body, sink, (bytes) => {
            position += bytes;
            if (bytes > 0) retries = 0;
          });
          continue;
        }
        for (let lease = await body.next(); lease !== undefined; lease = await body.next()) {
          position += lease.bytes.length;
          retries = 0;
          yield lease;
        }
      } catch (err) {
        if (err instanceof RawGetStatusError) {
          for await (const bytes of this.#piece(position, end, undefined)) yield { bytes };
          return;
        }
        // A destination that went away (the client) is not asked again.
        if (signal.aborted || sink?.destroyed === true || retries >= READ_RETRIES) throw err;
        retries += 1;
        await sleep(100 * 2 ** retries, undefined, { signal });
      } finally {
        body?.destroy();
      }
    }
  }

  /**
   * Bytes `[start, end)`, from `body` when given (the first piece's), re-requested from where they
   * stopped when the connection drops (at most READ_RETRIES times in a row).
   */
  async *#piece(start: number, end: number, body: Readable | undefined): AsyncGenerator<Buffer> {
    const signal = this.aborting.controller.signal;
    let position = start;
    let current = body;
    let retries = 0;
    // An abort (the reader destroyed, the caller's signal) ends a body that is still arriving.
    const onAbort = (): void => void current?.destroy(signal.reason instanceof Error ? signal.reason : undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (position < end) {
        try {
          current ??= await this.#get(position, end);
          for await (const chunk of current as AsyncIterable<Buffer>) {
            const take = Math.min(chunk.length, end - position);
            position += take;
            retries = 0;
            yield take === chunk.length ? chunk : chunk.subarray(0, take);
            if (position >= end) break;
          }
          if (position < end) throw new Error(`the response for ${this.target.key} ended at ${position} of ${end}`);
        } catch (err) {
          if (signal.aborted || retries >= READ_RETRIES) throw err;
          retries += 1;
          current?.destroy();
          current = undefined;
          await sleep(100 * 2 ** retries, undefined, { signal });
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      current?.destroy();
    }
  }

  /** A later piece (or the rest of one): bytes `[start, end)`, If-Match the first answer's ETag. */
  async #get(start: number, end: number): Promise<Readable> {
    const answer = await getRange(this.ctx, this.target, start, end, this.first.etag, this.aborting.controller.signal);
    if (answer === undefined) throw new Error(`${this.target.key} ended at ${start} of ${end}`);
    return answer.body;
  }

  /** The error to report for a failure while reading: the caller's abort reason, or a DriverError. */
  #failure(err: unknown): Error {
    const signal = this.aborting.signal;
    return this.ctx.fail('reader', this.target.path, err, signal === undefined ? {} : { signal });
  }
}

function ignore(): void {}

/** `body.pipeTo(sink)`, telling `progress` how many bytes it wrote, whether it succeeded or failed. */
async function piped(body: RawBody, sink: Writable, progress: (bytes: number) => void): Promise<void> {
  try {
    await body.pipeTo(sink);
  } finally {
    progress(body.handed);
  }
}

/** The bytes of `c` as the consumer's own: a lent buffer's bytes are copied and the buffer given back. */
function owned(c: Chunk): Buffer {
  if (c.release === undefined) return c.bytes;
  const copy = Buffer.from(c.bytes);
  c.release();
  return copy;
}

/** The reader of nothing (an offset at the end of an object): a SendableReader that ends at once. */
export class EmptyReader extends Readable implements SendableReader {
  readonly sendable = true;

  cap(): this {
    return this;
  }

  override _read(): void {
    this.push(null);
  }

  sendTo(): Promise<void> {
    this.destroy();
    return Promise.resolve();
  }
}
