/** The filesystem driver's reader (filesystem.ts). */
import { close as closeFd, read as readFd } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { DriverError, abortError } from './driver.js';
import type { SendableReader } from './driver.js';
import { close, failure, fdCall, isAbort, toError } from './filesystem-io.js';

/** Read chunk size: large reads keep blob downloads fast. */
const READ_CHUNK = 1 << 20;

/**
 * A file's bytes from an offset, as a Readable over a raw descriptor (the callback API costs about half
 * the CPU per call of FileHandle's, which counts for small ranged reads), read `READ_CHUNK` at a time.
 *
 * A SendableReader (driver.ts), which the driver declares with `capabilities.sendableReaders`:
 * `cap(n)` caps what it yields, so a byte range reads no more than it needs; `sendTo(dest)` writes what
 * it would yield straight to a writable through two buffers, reading into one while the other is being
 * written and reusing each only once the writable has called back for it (the bytes have left for the
 * socket). A download then allocates two buffers instead of one per chunk, which otherwise costs a
 * garbage collection every few dozen megabytes.
 *
 * A signal given to the constructor destroys the reader with an AbortError when it aborts (what
 * `stream.addAbortSignal` does). It is watched with one plain listener, removed when the reader is
 * destroyed: `addAbortSignal` also watches the stream with `finished`, which builds a premature-close
 * error for every reader that `sendTo` closes (it never reads through the Readable side, so the stream
 * never ends): some 25 µs of a blob GET (issue #13).
 */
export class FileReader extends Readable implements SendableReader {
  readonly sendable = true;
  private position: number;
  private remaining = Number.POSITIVE_INFINITY;
  private started = false;
  /** The read in flight, settled either way: the descriptor is closed only after it. */
  private inFlight: Promise<void> = Promise.resolve();
  /** Stops watching the constructor's signal (a no-op without one). */
  private readonly unwatch: () => void;

  constructor(
    private readonly fd: number,
    private readonly path: string,
    offset: number,
    signal?: AbortSignal,
  ) {
    super();
    this.position = offset;
    this.unwatch = signal === undefined ? () => undefined : this.watch(signal);
  }

  /** Yields at most `length` bytes. @throws when reading has started */
  cap(length: number): this {
    if (this.started) throw new Error('cap() after reading started');
    this.remaining = length;
    return this;
  }

  override _read(): void {
    this.started = true;
    const want = Math.min(READ_CHUNK, this.remaining);
    if (want <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafeSlow(want);
    this.readInto(buf, want).then(
      (n) => {
        this.remaining -= n; // Infinity stays Infinity
        this.push(n === 0 ? null : n === buf.length ? buf : buf.subarray(0, n));
      },
      (err: unknown) => this.destroy(failure(this.path, err)),
    );
  }

  /**
   * Writes everything this reader would yield to `dest` (which must not keep a chunk after calling back
   * for it, as sockets and HTTP responses do not), then closes the file. Rejects when the file ends
   * before a `cap` length, when reading or writing fails, or when either stream is destroyed (an
   * aborted request). @throws when reading has started
   */
  async sendTo(dest: Writable): Promise<void> {
    if (this.started) throw new Error('sendTo() after reading started');
    this.started = true;
    // An error that destroys this reader (its signal aborted) is this call's rejection, through
    // `stopped`: without a listener its 'error' event would be an uncaught exception.
    this.on('error', ignoreError);
    const stopped = this.stopped(dest);
    const size = Math.min(READ_CHUNK, this.remaining);
    const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] as const;
    const writes: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
    try {
      for (let i = 0; this.remaining > 0; i ^= 1) {
        const buf = buffers[i] as Buffer;
        await Promise.race([writes[i], stopped.promise]); // this buffer is free again
        const n = await Promise.race([this.readInto(buf, Math.min(size, this.remaining)), stopped.promise]);
        if (n === 0) {
          if (Number.isFinite(this.remaining)) throw new Error(`file ended ${this.remaining} bytes early`);
          break;
        }
        this.remaining -= n; // Infinity stays Infinity
        writes[i] = writeChunk(dest, n === buf.length ? buf : buf.subarray(0, n));
      }
      await Promise.race([Promise.all(writes), stopped.promise]);
    } catch (err) {
      throw err instanceof DriverError || isAbort(err) ? err : failure(this.path, err);
    } finally {
      stopped.dispose();
      await close(this);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.unwatch();
    void this.inFlight.then(() => closeFd(this.fd, (closeErr) => cb(err ?? (closeErr ? toError(closeErr) : null))));
  }

  /** Reads up to `length` bytes at the current position into `buf`; answers how many (0 at the end). */
  private readInto(buf: Buffer, length: number): Promise<number> {
    const read = fdCall<number>((cb) => readFd(this.fd, buf, 0, length, this.position, cb)).then((n) => {
      this.position += n;
      return n;
    });
    this.inFlight = read.then(
      () => undefined,
      () => undefined,
    );
    return read;
  }

  /** Destroys this reader with an AbortError once `signal` aborts (at once if it has); answers how to stop watching. */
  private watch(signal: AbortSignal): () => void {
    const onAbort = (): void => {
      this.destroy(abortError(signal));
    };
    if (signal.aborted) {
      onAbort();
      return () => undefined;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  /** A promise that rejects once this reader or `dest` is destroyed or closed before the end. */
  private stopped(dest: Writable): { promise: Promise<never>; dispose(): void } {
    let onStop = (): void => undefined;
    const promise = new Promise<never>((_, reject) => {
      onStop = () => reject(this.errored ?? dest.errored ?? new Error('the stream was closed before the end'));
    });
    promise.catch(() => undefined);
    for (const s of [this, dest]) s.once('close', onStop);
    if (this.destroyed || dest.destroyed) onStop();
    return {
      promise,
      dispose: () => {
        for (const s of [this, dest]) s.off('close', onStop);
      },
    };
  }
}

function ignoreError(): void {}

/** Writes `chunk` to `dest`, settling when `dest` calls back for it. */
export function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    dest.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()));
  });
  written.catch(() => undefined); // awaited by sendTo, or dropped once it has failed for another reason
  return written;
}
