/**
 * The part buffers of the s3 driver's writers (s3-writer.ts), shared by every writer of one driver.
 *
 * A writer copies what it is given into one buffer of `chunksize` + 5 MiB and sends its first
 * `chunksize` bytes as a part straight from it, with no copy into a part of its own and no list of
 * the request's chunks kept alive. A buffer comes back once its writer has ended (its last part
 * stored), and the next writer (the next PATCH of a chunked upload, on any session) takes it again, so
 * a stream of uploads allocates a buffer or two instead of one per part and per request. Buffers nobody took for
 * `IDLE_RELEASE_MS` are dropped, so an idle server does not hold them.
 *
 * A dropped buffer is let go (`letGo`): its memory is moved into a new ArrayBuffer (a transfer, no
 * copy) that nothing holds. A buffer that served a few uploads lives in V8's old generation, whose
 * dead buffers only a full collection frees (often not before the next upload has filled a new buffer
 * of its own: 15 MiB more resident then, issue #18); the new ArrayBuffer is young, and the next
 * young-generation collection frees it (uploads ask for one every 4 MiB, src/http/young-garbage.ts).
 *
 * Where the memory comes from (mappedBuffer). A plain Buffer of this size is malloc'd, and glibc's
 * malloc serves the first one with a mapping of its own but raises its mmap threshold to that size
 * when it is freed: every later buffer of the same size came from the main heap (brk), and a freed one
 * there stays resident (glibc returns only the top of that heap, and small allocations soon sit in the
 * hole, so the next 15 MiB buffer went above them). In /proc/<pid>/smaps the `[heap]` mapping grew by
 * about 15 MiB per upload (9.8 → 26 → 40 → 55 MiB over a PUT, PATCHes and a PUT) and the peaks with it
 * (issue #18, bench/results/s3-2026-12-07-10.md). A resizable ArrayBuffer is mapped by V8 itself and
 * unmapped when collected, so the heap stays where the request chunks keep it (9-12 MiB).
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
    return mappedBuffer(this.size);
  }

  /** Gives `buf` back; the caller must not touch it afterwards (another writer may fill it at once). */
  give(buf: Buffer): void {
    if (buf.length !== this.size || this.#free.includes(buf)) return;
    if (this.#free.length >= this.keep) {
      letGo(buf);
      return;
    }
    this.#free.push(buf);
    clearTimeout(this.#release);
    this.#release = setTimeout(() => {
      for (const b of this.#free.splice(0)) letGo(b);
    }, IDLE_RELEASE_MS);
    this.#release.unref();
  }

  /** Free buffers held now. */
  get free(): number {
    return this.#free.length;
  }
}

/** `new ArrayBuffer(length, { maxByteLength })` (ES2024; this project's TypeScript lib is ES2023). */
const ResizableArrayBuffer = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer;

/**
 * A buffer of `size` bytes whose memory V8 maps from the system itself, outside malloc's heap: a
 * resizable ArrayBuffer (V8 reserves and commits its pages directly, as for WebAssembly memory),
 * viewed at its full length. Pages become resident as they are written; the mapping is unmapped
 * when the ArrayBuffer is collected. See the file's comment for why not malloc.
 */
export function mappedBuffer(size: number): Buffer {
  return Buffer.from(new ResizableArrayBuffer(size, { maxByteLength: size }), 0, size);
}

/**
 * Drops `buf` so that its memory goes at the next young-generation collection rather than the next
 * full one (see the file's comment). `buf` is empty (detached) afterwards. A buffer that shares its
 * ArrayBuffer with others is left alone.
 */
export function letGo(buf: Buffer): void {
  const ab = buf.buffer;
  if (!(ab instanceof ArrayBuffer) || buf.byteOffset !== 0 || ab.byteLength !== buf.length) return;
  structuredClone(ab, { transfer: [ab] });
}
