/**
 * One upstream fetch per blob, however many clients ask for it at once.
 *
 * The first request for a blob starts its fetch; the bytes go to a spool file (a private temporary
 * file of the mirror) as they arrive, and every reader, the cache writer included, follows that file
 * from its own offset (Range requests too), waiting for bytes not there yet. The digest is computed as
 * the bytes arrive; the last byte is released to readers only once the whole blob matches its digest
 * (and its Content-Length), so bytes that do not match are never served whole: a reader gets an error
 * instead, and the HTTP layer cuts its connection. The cache writer stores the blob through storage's
 * upload API (which verifies the digest again), so a failed or wrong fetch leaves nothing cached and the
 * next request fetches again.
 *
 * The fetch belongs to no client: a client that goes away does not stop it, so it still completes into
 * the cache (registry:2's cachewritetimeout: Node's fetch gives up on a body that sends nothing for
 * 5 minutes). Once the fetch and the cache write are over, the entry is dropped and the spool file
 * unlinked; readers that opened it keep their file handles. Spool files live in `dir`, never in
 * storage: the driver may be S3, and a follower needs a file it can read while it grows.
 */
import { randomUUID } from 'node:crypto';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Digest, Digester, digestAlgorithm } from '../storage/digest.js';
import { type UpstreamBlob, UpstreamError } from './upstream.js';

/** A byte range, both ends inclusive (already checked against the size). */
export interface SpoolRange {
  readonly start: number;
  readonly end: number;
}

/** A blob being fetched. */
export interface InFlightBlob {
  readonly digest: Digest;
  /** The blob's size: at once when the upstream sent Content-Length, otherwise once it is verified. @throws the fetch's error */
  size(): Promise<number>;
  /** A stream of the blob (or of `range`) as it arrives; undefined when the fetch is over (read storage instead). */
  open(range?: SpoolRange): Promise<Readable | undefined>;
  /** Settles when the fetch and the cache write are over: resolves when the blob was cached. */
  readonly cached: Promise<void>;
}

/** What a fetch needs: how to start the upstream request, and how to store what arrives. */
export interface BlobFetch {
  readonly digest: Digest;
  /** Starts the upstream GET (its signal stops the transfer). @throws UpstreamError */
  start(signal: AbortSignal): Promise<UpstreamBlob>;
  /** Stores the verified blob from `stream` (storage's upload API). */
  store(stream: Readable): Promise<void>;
  /** Told once the fetch and the cache write are over, with the error when either failed. */
  report?(result: { bytes: number; seconds: number; error?: Error }): void;
}

/** Fetches blobs once each, keyed by the caller (repository and digest). */
export interface BlobSpool {
  /** The blob's fetch in progress under `key`, or a new one. @throws what `fetch.start` throws */
  fetch(key: string, fetch: BlobFetch): Promise<InFlightBlob>;
  /** A fetch of `digest` in progress under any key, for readers that know only the digest. */
  inFlight(digest: Digest): InFlightBlob | undefined;
  /** Stops every fetch in progress (shutdown). */
  close(): Promise<void>;
}

/** Bytes one reader asks the spool file for at a time. */
const READ_CHUNK = 256 * 1024;

/** The latest written bytes kept in memory for readers that keep up (they then read no file). */
const WINDOW_BYTES = 8 * 1024 * 1024;

/** Bytes received from the upstream and not yet written that make the upstream wait. */
const MAX_QUEUED = 4 * 1024 * 1024;

/** A spool of blob fetches whose files go under `dir` (which must exist). */
export function createBlobSpool(dir: string): BlobSpool {
  const byKey = new Map<string, Promise<InFlightBlob>>();
  const byDigest = new Map<Digest, InFlightBlob>();
  const controllers = new Set<AbortController>();

  const begin = async (key: string, f: BlobFetch, self: () => Promise<InFlightBlob> | undefined): Promise<InFlightBlob> => {
    const controller = new AbortController();
    const began = process.hrtime.bigint();
    let upstream: UpstreamBlob;
    try {
      upstream = await f.start(controller.signal);
    } catch (err) {
      if (byKey.get(key) === self()) byKey.delete(key);
      throw err;
    }
    controllers.add(controller);
    const promise = self();
    const path = join(dir, randomUUID());
    const file = new SpoolFile(await open(path, 'w+'), path, f.digest, upstream.size);
    const pumped = file.fill(upstream.body);
    const stored = (async () => {
      const stream = await file.open();
      if (stream === undefined) throw new Error('spool file gone before the cache write began');
      await f.store(stream);
    })();
    const forget = (): void => {
      if (byKey.get(key) === promise) byKey.delete(key);
      if (byDigest.get(f.digest)?.cached === cached) byDigest.delete(f.digest);
    };
    // A failed fetch is forgotten at once, so the next request fetches again without waiting for the cache write to give up.
    pumped.catch(forget);
    // Over once both are: the entry forgotten, the spool file removed, the fetch reported.
    const cached = Promise.allSettled([pumped, stored]).then(async ([p, s]) => {
      forget();
      controllers.delete(controller);
      await file.remove();
      const failed = p.status === 'rejected' ? p.reason : s.status === 'rejected' ? s.reason : undefined;
      const error = failed === undefined ? undefined : failed instanceof Error ? failed : new Error(String(failed));
      f.report?.({ bytes: file.written, seconds: Number(process.hrtime.bigint() - began) / 1e9, ...(error && { error }) });
      if (error) throw error;
    });
    cached.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
    const entry: InFlightBlob = { digest: f.digest, size: () => file.size(), open: (range) => file.open(range), cached };
    byDigest.set(f.digest, entry);
    return entry;
  };

  return {
    fetch(key, f) {
      let entry = byKey.get(key);
      if (entry === undefined) {
        const started: Promise<InFlightBlob> = begin(key, f, () => started);
        entry = started;
        byKey.set(key, entry);
      }
      return entry;
    },
    inFlight: (d) => byDigest.get(d),
    async close() {
      for (const c of controllers) c.abort(new Error('the mirror is shutting down'));
      await Promise.allSettled([...byKey.values()].map(async (e) => (await e).cached));
    },
  };
}

/** The spool file of one fetch: written by `fill`, followed by any number of readers. */
class SpoolFile {
  written = 0;
  private state: 'filling' | 'verified' | 'failed' = 'filling';
  private error: Error | undefined;
  private waiters: (() => void)[] = [];
  private removed = false;
  /** Chunks received and hashed, not yet written, and their bytes. */
  private queue: Buffer[] = [];
  private queued = 0;
  /** The bytes from `windowStart` to `written`, as written: readers at the tail take them from here. */
  private window: Buffer[] = [];
  private windowStart = 0;
  /** The write loop while it runs. */
  private writer: Promise<void> | undefined;
  private writeError: Error | undefined;

  constructor(private readonly handle: FileHandle, private readonly path: string, private readonly digest: Digest, private readonly expected: number | undefined) {}

  /**
   * Copies `body` into the file, hashing it; settles the state. Reading the upstream does not wait for
   * each write: what arrives while a write is in flight is queued (up to MAX_QUEUED bytes, then the
   * upstream waits) and goes out as one larger write, so small chunks cost neither a write each nor
   * a round trip each before the next read.
   */
  async fill(body: Readable): Promise<void> {
    const digester = Digester.create(digestAlgorithm(this.digest));
    let received = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (this.expected !== undefined && received + chunk.length > this.expected) {
          throw new UpstreamError('invalid', `the upstream sent more than its Content-Length of ${this.expected} bytes`);
        }
        digester.update(chunk);
        received += chunk.length;
        this.enqueue(chunk);
        if (this.queued >= MAX_QUEUED) await this.writer;
        if (this.writeError !== undefined) throw this.writeError;
      }
      while (this.writer !== undefined) await this.writer;
      if (this.writeError !== undefined) throw this.writeError;
      if (this.expected !== undefined && this.written !== this.expected) {
        throw new UpstreamError('invalid', `the upstream sent ${this.written} of ${this.expected} bytes`);
      }
      const actual = digester.digest();
      if (actual !== this.digest) throw new UpstreamError('invalid', `the upstream's bytes do not match ${this.digest} (they hash to ${actual})`);
      this.state = 'verified';
    } catch (err) {
      body.destroy();
      while (this.writer !== undefined) await this.writer; // the handle stays open until no write uses it
      this.error = err instanceof UpstreamError ? err : new UpstreamError('invalid', err instanceof Error ? err.message : String(err), undefined, { cause: err });
      this.state = 'failed';
      throw this.error;
    } finally {
      await this.handle.close();
      this.wake();
    }
  }

  /** Adds written `chunks` to the window, dropping its oldest chunks past WINDOW_BYTES. */
  private keep(chunks: readonly Buffer[]): void {
    this.window.push(...chunks);
    let size = this.written + chunks.reduce((n, c) => n + c.length, 0) - this.windowStart;
    for (let first = this.window[0]; first !== undefined && size - first.length >= WINDOW_BYTES; first = this.window[0]) {
      this.window.shift();
      this.windowStart += first.length;
      size -= first.length;
    }
  }

  /** The bytes at `pos` (before `limit`) from the window, without a copy; undefined when the window no longer holds `pos`. */
  private fromWindow(pos: number, limit: number): Buffer | undefined {
    if (pos < this.windowStart) return undefined;
    let at = this.windowStart;
    for (const c of this.window) {
      if (pos < at + c.length) return c.subarray(pos - at, Math.min(c.length, limit - at));
      at += c.length;
    }
    return undefined;
  }

  /** Queues `chunk` for the file, starting the writer when none runs. */
  private enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.writer === undefined) {
      this.writer = this.drain();
      this.writer.catch(() => undefined); // kept in writeError, thrown by fill
    }
  }

  /** Writes the queue out, each batch as one write, waking readers after each; clears `writer` when the queue is empty. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.writeError === undefined) {
        const chunks = this.queue;
        const bytes = this.queued;
        this.queue = [];
        this.queued = 0;
        await writeAll(this.handle, chunks, this.written);
        this.keep(chunks);
        this.written += bytes;
        this.wake();
      }
    } catch (err) {
      this.writeError = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.writer = undefined; // synchronously with the loop's end: a chunk queued after this starts a new writer
    }
  }

  async size(): Promise<number> {
    if (this.expected !== undefined) return this.expected;
    while (this.state === 'filling') await this.change();
    if (this.state === 'failed') throw this.error ?? new Error('fetch failed');
    return this.written;
  }

  /** A reader of `range` (default: everything); undefined once the file is removed. */
  async open(range?: SpoolRange): Promise<Readable | undefined> {
    if (this.state === 'failed') throw this.error ?? new Error('fetch failed');
    if (this.removed) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch {
      return undefined;
    }
    return Readable.from(this.follow(handle, range?.start ?? 0, range === undefined ? undefined : range.end + 1), { objectMode: false });
  }

  private async *follow(handle: FileHandle, start: number, end: number | undefined): AsyncGenerator<Buffer> {
    let pos = start;
    try {
      for (;;) {
        if (this.state === 'failed') throw this.error ?? new Error('fetch failed');
        // Everything but the last byte until the digest is verified: wrong bytes are never served whole.
        const available = this.state === 'verified' ? this.written : Math.max(0, this.written - 1);
        const limit = Math.min(available, end ?? Number.POSITIVE_INFINITY);
        const kept = pos < limit ? this.fromWindow(pos, limit) : undefined;
        if (kept !== undefined) {
          pos += kept.length;
          yield kept;
        } else if (pos < limit) {
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, limit - pos));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, pos);
          if (bytesRead === 0) throw new Error('spool file shorter than written');
          pos += bytesRead;
          yield buffer.subarray(0, bytesRead);
        } else if (this.state === 'verified' && pos >= Math.min(this.written, end ?? this.written)) {
          return;
        } else {
          await this.change();
        }
      }
    } finally {
      await handle.close();
    }
  }

  private change(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  async remove(): Promise<void> {
    this.removed = true;
    this.window = [];
    this.windowStart = this.written;
    await rm(this.path, { force: true });
  }
}

/** Writes `chunks` at `position` with as few writev calls as it takes (no copy into one buffer). */
async function writeAll(handle: FileHandle, chunks: readonly Buffer[], position: number): Promise<void> {
  let rest = chunks;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest, at);
    at += bytesWritten;
    let skip = bytesWritten;
    const left: Buffer[] = [];
    for (const c of rest) {
      if (skip >= c.length) skip -= c.length;
      else {
        left.push(skip > 0 ? c.subarray(skip) : c);
        skip = 0;
      }
    }
    rest = left;
  }
}
