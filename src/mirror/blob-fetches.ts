/**
 * One upstream fetch per blob, however many clients ask for it at once, and each byte written once.
 *
 * The first request for a blob starts its fetch. The upstream's bytes go straight into the cache
 * write (`store`: storage's upload API, which hashes them as it writes and verifies the digest at its
 * commit), and on their way in, the latest of them stay in memory (a window of WINDOW_BYTES) for the
 * readers: every reader follows the fetch from its own offset (Range requests too), waiting for bytes
 * not there yet. The last byte is released to readers only once the cache write has committed, that is
 * once the whole blob matched its digest (and the upstream's Content-Length): bytes that do not match
 * are never served whole (a reader gets an error instead and the HTTP layer cuts its connection) and
 * nothing of them is cached, so the next request fetches again. A reader that fell behind the window
 * waits for the commit and reads the rest from storage (`stored`).
 *
 * The fetch belongs to no client: a client that goes away does not stop it, so it still completes into
 * the cache (registry:2's cachewritetimeout: the upstream request gives up on a body that sends nothing
 * for 5 minutes, upstream-http.ts). A fetch that fails leaves no blob: the upload session is cancelled
 * (after a crash, the collector's upload purge removes it, as any abandoned upload). Once the fetch is
 * over, the entry is dropped; readers still following it read storage.
 */
import { Readable } from 'node:stream';
import { isRegistryError } from '../errors.js';
import type { Digest } from '../storage/digest.js';
import { type UpstreamBlob, UpstreamError } from './upstream.js';

/** A byte range, both ends inclusive (already checked against the size). */
export interface BlobRange {
  readonly start: number;
  readonly end: number;
}

/** A blob being fetched. */
export interface InFlightBlob {
  readonly digest: Digest;
  /** The blob's size: at once when the upstream sent Content-Length, otherwise once it is verified. @throws the fetch's error */
  size(): Promise<number>;
  /** A stream of the blob (or of `range`) as it arrives; undefined when the fetch is over (read storage instead). */
  open(range?: BlobRange): Promise<Readable | undefined>;
  /** Settles when the fetch and the cache write are over: resolves when the blob was cached. */
  readonly cached: Promise<void>;
}

/** What a fetch needs: how to start the upstream request, how to store what arrives, how to read it back. */
export interface BlobFetch {
  readonly digest: Digest;
  /** Starts the upstream GET (its signal stops the transfer). @throws UpstreamError */
  start(signal: AbortSignal): Promise<UpstreamBlob>;
  /** Stores the blob from `stream` (storage's upload API, which verifies the digest); resolves once it is committed. */
  store(stream: Readable): Promise<void>;
  /** The stored blob's bytes `range` (once `store` resolved), for a reader that fell behind. */
  stored(range: BlobRange): Promise<Readable>;
  /** Told once the fetch and the cache write are over, with the error when either failed. */
  report?(result: { bytes: number; seconds: number; error?: Error }): void;
}

/** Fetches blobs once each, keyed by the caller (repository and digest). */
export interface BlobFetches {
  /** The blob's fetch in progress under `key`, or a new one. @throws what `fetch.start` throws */
  fetch(key: string, fetch: BlobFetch): Promise<InFlightBlob>;
  /** A fetch of `digest` in progress under any key, for readers that know only the digest. */
  inFlight(digest: Digest): InFlightBlob | undefined;
  /** Stops every fetch in progress (shutdown). */
  close(): Promise<void>;
}

/** The latest bytes kept in memory for readers that keep up. */
const WINDOW_BYTES = 8 * 1024 * 1024;

/** A set of blob fetches. */
export function createBlobFetches(): BlobFetches {
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
    const tee = new Tee(f, upstream.size);
    const settled = tee.run(upstream.body);
    const cached = settled.finally(() => {
      if (byKey.get(key) === promise) byKey.delete(key);
      if (byDigest.get(f.digest)?.cached === cached) byDigest.delete(f.digest);
      controllers.delete(controller);
      tee.release();
    });
    void cached.then(
      () => f.report?.({ bytes: tee.received, seconds: Number(process.hrtime.bigint() - began) / 1e9 }),
      (err: unknown) => f.report?.({ bytes: tee.received, seconds: Number(process.hrtime.bigint() - began) / 1e9, error: asError(err) }),
    );
    const entry: InFlightBlob = { digest: f.digest, size: () => tee.size(), open: (range) => tee.open(range), cached };
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

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** One fetch: the upstream's bytes into the cache write, the latest of them kept for the readers. */
class Tee {
  /** Bytes passed on to the cache write so far. */
  received = 0;
  private state: 'filling' | 'verified' | 'failed' = 'filling';
  private error: Error | undefined;
  private waiters: (() => void)[] = [];
  private released = false;
  /** The bytes from `windowStart` to `received`. */
  private window: Buffer[] = [];
  private windowStart = 0;

  constructor(private readonly f: BlobFetch, private readonly expected: number | undefined) {}

  /** Stores `body` through the fetch's cache write; settles the state (and rejects) when either fails. */
  async run(body: Readable): Promise<void> {
    try {
      await this.f.store(Readable.from(this.pass(body), { objectMode: false }));
      this.state = 'verified';
    } catch (err) {
      body.destroy();
      this.error = asUpstreamFailure(err, this.f.digest);
      this.state = 'failed';
      throw this.error;
    } finally {
      this.wake();
    }
  }

  /** `body`'s chunks, counted against Content-Length and kept in the window as they go by. */
  private async *pass(body: Readable): AsyncGenerator<Buffer> {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (this.expected !== undefined && this.received + chunk.length > this.expected) {
        throw new UpstreamError('invalid', `the upstream sent more than its Content-Length of ${this.expected} bytes`);
      }
      this.keep(chunk);
      this.wake();
      yield chunk;
    }
    if (this.expected !== undefined && this.received !== this.expected) {
      throw new UpstreamError('invalid', `the upstream sent ${this.received} of ${this.expected} bytes`);
    }
  }

  /** Adds `chunk` to the window, dropping its oldest chunks past WINDOW_BYTES (never the newest). */
  private keep(chunk: Buffer): void {
    this.window.push(chunk);
    this.received += chunk.length;
    for (let first = this.window[0]; first !== undefined && this.window.length > 1 && this.received - this.windowStart - first.length >= WINDOW_BYTES; first = this.window[0]) {
      this.window.shift();
      this.windowStart += first.length;
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

  async size(): Promise<number> {
    if (this.expected !== undefined) return this.expected;
    while (this.state === 'filling') await this.change();
    this.throwIfFailed();
    return this.received;
  }

  /** A reader of `range` (default: everything); undefined once the fetch is over. */
  async open(range?: BlobRange): Promise<Readable | undefined> {
    this.throwIfFailed();
    if (this.released) return undefined;
    return Readable.from(this.follow(range?.start ?? 0, range === undefined ? undefined : range.end + 1), { objectMode: false });
  }

  private async *follow(start: number, end: number | undefined): AsyncGenerator<Buffer> {
    let pos = start;
    for (;;) {
      this.throwIfFailed();
      // Everything but the last byte until the blob is verified and stored: wrong bytes are never served whole.
      const available = this.state === 'verified' ? this.received : Math.max(0, this.received - 1);
      const limit = Math.min(available, end ?? Number.POSITIVE_INFINITY);
      if (this.state === 'verified' && pos >= limit) return;
      if (pos >= limit) {
        await this.change();
        continue;
      }
      const kept = this.fromWindow(pos, limit);
      if (kept !== undefined) {
        pos += kept.length;
        yield kept;
        continue;
      }
      // Fell behind the window: the rest comes from storage once the blob is there.
      while (this.state === 'filling') await this.change();
      this.throwIfFailed();
      yield* (await this.f.stored({ start: pos, end: (end ?? this.received) - 1 })) as AsyncIterable<Buffer>;
      return;
    }
  }

  private throwIfFailed(): void {
    if (this.state === 'failed') throw this.error ?? new Error('fetch failed');
  }

  private change(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  /** The fetch is over: the window goes (readers still following it read storage). */
  release(): void {
    this.released = true;
    this.window = [];
    this.windowStart = this.received;
  }
}

/** A failed fetch or cache write as an UpstreamError the client is told of (a digest mismatch is the upstream's fault). */
function asUpstreamFailure(err: unknown, digest: Digest): Error {
  if (err instanceof UpstreamError) return err;
  if (isRegistryError(err, 'DIGEST_INVALID')) return new UpstreamError('invalid', `the upstream's bytes do not match ${digest}`, undefined, { cause: err });
  if (isRegistryError(err)) return err;
  return new UpstreamError('invalid', asError(err).message, undefined, { cause: err });
}
