/**
 * The part buffers of the s3 driver's writers (s3-writer.ts), shared by every writer of one driver.
 *
 * A writer copies what it is given into one buffer of `chunksize` + 5 MiB and sends its first
 * `chunksize` bytes as a part straight from it, with no copy into a part of its own and no list of
 * the request's chunks kept alive. A buffer comes back once its writer has ended (its last part
 * stored), and the next writer (the next PATCH of a chunked upload, on any session) takes it again, so
 * a stream of uploads allocates a buffer or two instead of one per part and per request. Buffers nobody took for
 * `IDLE_RELEASE_MS` are dropped, so an idle server does not hold them.
 */

/** How long free buffers are kept after the last one came back. */
export const IDLE_RELEASE_MS = 10_000;

/** A pool of equal buffers: `take` one, `give` it back when no request uses it any more. */
export class PartBufferPool {
  readonly #free: Buffer[] = [];
  #release: NodeJS.Timeout | undefined;
  /** Buffers allocated so far (for tests: reuse shows as a count that stops growing). */
  allocated = 0;

  /**
   * @param size bytes per buffer
   * @param keep at most this many free buffers are kept (a writer uses one at a time)
   */
  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `size` bytes with any content: a free one, or a new one. */
  take(): Buffer {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    this.allocated += 1;
    return Buffer.allocUnsafeSlow(this.size);
  }

  /** Gives `buf` back; the caller must not touch it afterwards (another writer may fill it at once). */
  give(buf: Buffer): void {
    if (buf.length !== this.size || this.#free.length >= this.keep || this.#free.includes(buf)) return;
    this.#free.push(buf);
    clearTimeout(this.#release);
    this.#release = setTimeout(() => {
      this.#free.length = 0;
    }, IDLE_RELEASE_MS);
    this.#release.unref();
  }

  /** Free buffers held now. */
  get free(): number {
    return this.#free.length;
  }
}
