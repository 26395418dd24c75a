/** The filesystem driver's writer (filesystem.ts). */
import { rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, addAbortSignal } from 'node:stream';
import { DriverError } from './driver.js';
import type { FileWriter } from './driver.js';
import { close, dropBytes, failure, finish, isAbort, syncDir, toError } from './filesystem-io.js';

/**
 * Bytes a writer holds at most (taken from its stream and not yet written) while few others write:
 * what arrives during one write goes out in the next, batched into one writev of up to this much.
 */
const WRITE_BUFFER = 1 << 20;
/**
 * Bytes all writers of the process hold at most together, shared equally among those holding any
 * (each still may hold MIN_HOLD). Each writer holding a full WRITE_BUFFER while 100 uploads waited for
 * the writers' threads kept 100 MiB and more of request chunks alive, and glibc's heap, where Node
 * allocates them, kept that memory resident after the burst (issue #19, bench/probe-upload-burst.ts).
 */
const ALL_WRITERS_HOLD = 32 << 20;
/** Bytes any writer may hold whatever the others hold: two socket reads. */
const MIN_HOLD = 128 << 10;

/** Writers holding bytes now (for their share of ALL_WRITERS_HOLD). */
let writersHolding = 0;

/** What one writer may hold now: WRITE_BUFFER, or its share of ALL_WRITERS_HOLD when that is less. */
function holdLimit(): number {
  return Math.max(MIN_HOLD, Math.min(WRITE_BUFFER, Math.floor(ALL_WRITERS_HOLD / Math.max(1, writersHolding))));
}

/**
 * Bytes a writer appends between two background flushes (fdatasync, not awaited by the writes). The
 * kernel would otherwise keep a large upload's pages dirty until the final fsync and write them all
 * only then, after the last byte arrived; flushing as the bytes come overlaps the disk with the network.
 */
const FLUSH_EVERY = 32 << 20;

/**
 * libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise, read when the process
 * starts) runs every file call of the process. Writers' writes and flushes together hold at most half
 * of its threads, so that the small reads and stats of everything else (a manifest GET's link checks)
 * never queue behind the writes and fdatasyncs of several large uploads: with four 1 GiB uploads and
 * 50 connections on a manifest, the manifest p99 went from 171 ms to 37 ms (issue #19).
 */
const WRITER_THREADS = Math.max(1, Math.floor((Number(process.env['UV_THREADPOOL_SIZE']) || 4) / 2));

/** Runs calls at most `limit` at a time, the others waiting in order. */
class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  /** Whether a call is running now. */
  get running(): boolean {
    return this.busy > 0;
  }

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.busy >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy += 1;
    try {
      return await call();
    } finally {
      const next = this.waiting.shift();
      if (next === undefined) this.busy -= 1;
      else next();
    }
  }
}

/** The thread-pool share of every writer of the process (WRITER_THREADS). */
const writerThreads = new Slots(WRITER_THREADS);

/** Whether a writer of this process has a write or a flush running now (filesystem-shared-stat.ts asks). */
export function writersBusy(): boolean {
  return writerThreads.running;
}

/**
 * A Writable over an open file handle. Chunks are taken into a batch and written at the end of what is
 * already there, one writev at a time; a chunk's callback fires at once while the writer holds no more
 * than its limit (holdLimit: 1 MiB alone, its share of ALL_WRITERS_HOLD among many), else once a write
 * has brought it under, so the stream asks for more only as the disk takes it. Every `FLUSH_EVERY`
 * bytes a background fdatasync starts (one at a time) so that the disk writes while more bytes arrive;
 * `end()` waits for the last write and that flush and fsyncs, so durability is decided there as
 * before. I/O errors (a failed background flush included) destroy the writer with a DRIVER_FAILURE
 * DriverError.
 */
export class FilesystemWriter extends Writable implements FileWriter {
  private written: number;
  /** Bytes appended since the last background flush started. */
  private unflushed = 0;
  /** The background flush in flight, if any; it settles to undefined, keeping a failure in flushError. */
  private flushing: Promise<void> | undefined;
  private flushError: unknown;
  /** Chunks taken and not yet handed to a write, and their bytes. */
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** The write in flight (it starts the next batch's when it ends), and its bytes. */
  private writing: Promise<void> | undefined;
  private writingBytes = 0;
  /** A chunk's callback held back while the writer holds more than its limit. */
  private heldBack: ((err?: Error | null) => void) | undefined;
  /** The first write failure (a DRIVER_FAILURE): the writer is destroyed with it. */
  private failed: DriverError | undefined;
  /** Whether this writer counts in writersHolding. */
  private counted = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly at: { readonly path: string; readonly full: string; readonly created: boolean },
    size: number,
    signal: AbortSignal | undefined,
  ) {
    // The stream's own queue only fills while a callback is held back: one chunk or two.
    super({ highWaterMark: MIN_HOLD });
    this.written = size;
    if (signal) addAbortSignal(signal, this);
  }

  /** Bytes in the file, counting those taken and not yet written (end() waits for them). */
  get size(): number {
    return this.written + this.batchBytes + this.writingBytes;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.take([chunk], cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.take(chunks.map((c) => c.chunk), cb);
  }

  /** end(): the bytes, and the file's directory entry when the file is new, become durable. */
  override _final(cb: (err?: Error | null) => void): void {
    const sync = async (): Promise<void> => {
      while (this.writing !== undefined) await this.writing;
      if (this.failed !== undefined) throw this.failed.cause;
      await this.flushing;
      if (this.flushError !== undefined) throw this.flushError;
      await this.fh.sync();
      if (this.at.created) await syncDir(dirname(this.at.full));
    };
    sync().then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.batch = [];
    this.batchBytes = 0;
    this.heldBack = undefined;
    this.count();
    // FileHandle.close() waits for a write still in flight.
    this.fh.close().then(() => cb(err), (closeErr: unknown) => cb(err ?? toError(closeErr)));
  }

  /** Ends the writer if needed; once end() has synced, the file is already in place. */
  async commit(): Promise<void> {
    try {
      await finish(this);
    } catch (err) {
      throw err instanceof DriverError || isAbort(err) ? err : failure(this.at.path, err);
    }
  }

  /** Stops writing, closes the file and removes it. */
  async cancel(): Promise<void> {
    await close(this);
    await rm(this.at.full, { force: true }).catch((err: unknown) => {
      throw failure(this.at.path, err);
    });
  }

  /** Adds `buffers` to the batch, starts a write if none runs, and lets the stream go on while under the limit. */
  private take(buffers: Buffer[], cb: (err?: Error | null) => void): void {
    if (this.failed !== undefined) {
      cb(this.failed);
      return;
    }
    for (const b of buffers) {
      this.batch.push(b);
      this.batchBytes += b.length;
    }
    this.count();
    this.writeBatch();
    if (this.held() <= holdLimit()) cb();
    else this.heldBack = cb;
  }

  /** Bytes taken and not yet written. */
  private held(): number {
    return this.destroyed ? 0 : this.batchBytes + this.writingBytes;
  }

  /** Keeps writersHolding true to whether this writer holds bytes. */
  private count(): void {
    const holding = this.held() > 0;
    if (holding !== this.counted) writersHolding += holding ? 1 : -1;
    this.counted = holding;
  }

  /** Writes the batch when no write runs; each write starts the next batch's when it ends. */
  private writeBatch(): void {
    if (this.writing !== undefined || this.batch.length === 0 || this.destroyed) return;
    const buffers = this.batch;
    this.writingBytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.writing = this.append(buffers).then(
      () => this.afterWrite(),
      (err: unknown) => {
        this.failed ??= failure(this.at.path, err);
        this.batch = [];
        this.batchBytes = 0;
        this.afterWrite();
      },
    );
  }

  /**
   * A write ended: the next batch's starts, and a held-back callback fires once under the limit. After
   * a failure the writer is destroyed with it (through the held-back callback when there is one).
   */
  private afterWrite(): void {
    this.writing = undefined;
    this.writingBytes = 0;
    if (this.failed === undefined) this.writeBatch();
    this.count();
    const cb = this.heldBack;
    if (this.failed !== undefined) {
      this.heldBack = undefined;
      if (cb !== undefined) cb(this.failed);
      else this.destroy(this.failed);
    } else if (cb !== undefined && this.held() <= holdLimit()) {
      this.heldBack = undefined;
      cb();
    }
  }

  /** Writes all of `buffers` at the current end, looping over short writes. */
  private async append(buffers: Buffer[]): Promise<void> {
    if (this.flushError !== undefined) throw this.flushError;
    let pending = buffers;
    while (pending.length > 0) {
      const at = this.written;
      const { bytesWritten } = await writerThreads.run(() => this.fh.writev(pending, at));
      this.written += bytesWritten;
      this.unflushed += bytesWritten;
      pending = dropBytes(pending, bytesWritten);
      if (bytesWritten === 0 && pending.length > 0) throw new Error('write made no progress');
    }
    if (this.unflushed >= FLUSH_EVERY && this.flushing === undefined) this.flushInBackground();
  }

  /** Starts an fdatasync that the writes do not wait for (close() and end() do). */
  private flushInBackground(): void {
    this.unflushed = 0;
    this.flushing = writerThreads.run(() => this.fh.datasync()).then(
      () => {
        this.flushing = undefined;
      },
      (err: unknown) => {
        this.flushError ??= err;
        this.flushing = undefined;
      },
    );
  }
}
