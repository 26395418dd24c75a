/** The filesystem driver's writer (filesystem.ts). */
import { rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, addAbortSignal } from 'node:stream';
import { DriverError } from './driver.js';
import type { FileWriter } from './driver.js';
import { close, dropBytes, failure, finish, isAbort, syncDir, toError } from './filesystem-io.js';

/** Bytes a writer may hold before `write()` returns false. */
const WRITE_BUFFER = 1 << 20;
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
 * A Writable over an open file handle. Each chunk is written at the end of what is already there before
 * its callback fires, so at most `WRITE_BUFFER` bytes are held in memory. Every `FLUSH_EVERY` bytes a
 * background fdatasync starts (one at a time) so that the disk writes while more bytes arrive; `end()`
 * waits for it and fsyncs, so durability is decided there as before. I/O errors (a failed background
 * flush included) destroy the writer with a DRIVER_FAILURE DriverError.
 */
export class FilesystemWriter extends Writable implements FileWriter {
  private written: number;
  /** Bytes appended since the last background flush started. */
  private unflushed = 0;
  /** The background flush in flight, if any; it settles to undefined, keeping a failure in flushError. */
  private flushing: Promise<void> | undefined;
  private flushError: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly at: { readonly path: string; readonly full: string; readonly created: boolean },
    size: number,
    signal: AbortSignal | undefined,
  ) {
    super({ highWaterMark: WRITE_BUFFER });
    this.written = size;
    if (signal) addAbortSignal(signal, this);
  }

  get size(): number {
    return this.written;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.append([chunk]).then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    this.append(buffers).then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  /** end(): the bytes, and the file's directory entry when the file is new, become durable. */
  override _final(cb: (err?: Error | null) => void): void {
    const sync = async (): Promise<void> => {
      await this.flushing;
      if (this.flushError !== undefined) throw this.flushError;
      await this.fh.sync();
      if (this.at.created) await syncDir(dirname(this.at.full));
    };
    sync().then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
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
