/**
 * One upstream fetch per blob, however many clients ask for it at once, and each byte written once.
 *
 * The first request for a blob starts its fetch, and with it the cache write (storage's upload API,
 * `store`), whose session is made while the upstream answers. The upstream's bytes go straight into
 * that write, which hashes nothing (the fetch hashes them once, on their way in, and the write
 * commits only a stream that ended verified), and the latest of them stay in memory (a window of
 * WINDOW_BYTES) for the readers: every reader follows the fetch from its own offset (Range requests
 * too), waiting for bytes not there yet. A reader slower than the upstream sets the fetch's pace rather
 * than fall out of the window (until it takes nothing for READER_STALL_MS: a stalled client does not
 * hold the others back). Readers get everything but the blob's last byte as it
 * arrives, and that byte once the whole blob matched its digest (and the upstream's Content-Length):
 * a client never waits for the cache write's fsyncs or commit, and bytes that do not match are never
 * served whole (a reader gets an error instead and the HTTP layer cuts its connection) nor cached, so
 * the next request fetches again. A reader that fell behind the window waits for the commit and reads
 * the rest from storage (`stored`).
 *
 * The fetch belongs to no client: a client that goes away does not stop it, so it still completes into
 * the cache (registry:2's cachewritetimeout: the upstream request gives up on a body that sends nothing
 * for 5 minutes, upstream-http.ts). A fetch that fails leaves no blob: the upload session is cancelled
 * (after a crash, the collector's upload purge removes it, as any abandoned upload). Once the fetch is
 * over, the entry is dropped; readers still following it read storage.
 */
import { Readable } from 'node:stream';
import { isRegistryError } from '../errors.js';
import { type Digest, Digester, digestAlgorithm } from '../storage/digest.js';
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
  /**
   * Stores the blob from `stream`, which ends only once its bytes matched the digest and fails otherwise
   * (storage's CacheUploads.ingestVerified); resolves once the blob is committed.
   */
  store(stream: Readable): Promise<void>;
  /** The stored blob's bytes `range` (once `store` resolved), for a reader that fell behind. */
  stored(range: BlobRange): Promise<Readable>;
  /**
   * The bytes the cache write has put in its file so far, from `start` to the file's current end, read
   * back before the commit (storage's IngestOptions.onWriting); undefined where storage cannot read a file
   * being written (S3) or the write has not begun. A reader that fell behind reads these rather than wait
   * for the commit's fsyncs.
   */
  written?(start: number): Promise<Readable | undefined>;
  /** Told once the fetch and the cache write are over, with the error when either failed. */
  report?(result: { bytes: number; seconds: number; error?: Error }): void;
}

/** Fetches blobs once each, keyed by the caller (repository and digest). */
export interface BlobFetches {
  /** The blob's fetch in progress under `key`, or a new one. @throws what `fetch.start` throws */
  fetch(key: string, fetch: BlobFetch): Promise<InFlightBlob>;
  /** A fetch of `digest` in progress under any key, for readers that know only the digest. */
  inFlight(digest: Digest): InFlightBlob | undefined;
  /** The fetch in progress under `key` (it may still be waiting for the upstream's answer). */
  running(key: string): Promise<InFlightBlob> | undefined;
  /** Stops every fetch in progress (shutdown). */
  close(): Promise<void>;
}

/** The latest bytes kept in memory for readers that keep up. */
const WINDOW_BYTES = 8 * 1024 * 1024;

/** How far the upstream may get ahead of the cache write (the bytes the write has not taken stay in memory). */
const MAX_AHEAD = 16 * 1024 * 1024;

/**
 * How far it may get ahead before the cache write took its first byte: its upload session is made
 * durable first (two fsyncs, which take hundreds of ms on a busy disk), and meanwhile the readers
 * are served rather than held at MAX_AHEAD.
 */
const STARTING_AHEAD = 32 * 1024 * 1024;

/**
 * A reader that took nothing for this long no longer holds the fetch back: it falls behind the window
 * and reads the rest from storage once the blob is there.
 */
const READER_STALL_MS = 1000;

/** How often a reader following the cache write's file looks again when the file had nothing new. */
const WRITTEN_POLL_MS = 5;

/** A set of blob fetches. */
export function createBlobFetches(): BlobFetches {
  const byKey = new Map<string, Promise<InFlightBlob>>();
  const byDigest = new Map<Digest, InFlightBlob>();
  const controllers = new Set<AbortController>();

  const begin = async (key: string, f: BlobFetch, self: () => Promise<InFlightBlob> | undefined): Promise<InFlightBlob> => {
    const controller = new AbortController();
    const began = process.hrtime.bigint();
    let cached: Promise<void> | undefined;
    const forget = (): void => {
      if (byKey.get(key) === self()) byKey.delete(key);
      if (cached !== undefined && byDigest.get(f.digest)?.cached === cached) byDigest.delete(f.digest);
    };
    // A failed fetch is forgotten at once, so the next request fetches again without waiting for the cache write to give up.
    const tee = new Tee(f, forget);
    // The cache write starts now, so its session is made while the upstream answers, not while the bytes wait.
    const storing = tee.store();
    let upstream: UpstreamBlob;
    try {
      upstream = await f.start(controller.signal);
    } catch (err) {
      forget();
      tee.abandon(asError(err));
      void storing.catch(() => undefined); // the cache write removes its session; nobody waits for it
      throw err;
    }
    controllers.add(controller);
    cached = tee.run(upstream, storing).finally(() => {
      forget();
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
    running: (key) => byKey.get(key),
    async close() {
      for (const c of controllers) c.abort(new Error('the mirror is shutting down'));
      await Promise.allSettled([...byKey.values()].map(async (e) => (await e).cached));
    },
  };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * One fetch: the upstream's bytes pumped into a window in memory, hashed on the way, from which the
 * cache write and the readers each take them at their own pace. The window keeps the latest
 * WINDOW_BYTES and everything the cache write has not taken yet; the pump waits while it is more than
 * MAX_AHEAD bytes ahead of the cache write (unless that write failed: readers then still get the blob).
 */
class Tee {
  /** Bytes received from the upstream so far. */
  received = 0;
  /** The upstream's bytes: still arriving, all there and matching the digest, or failed. */
  private state: 'filling' | 'verified' | 'failed' = 'filling';
  private error: Error | undefined;
  /** The cache write: under way, committed, or failed. */
  private storage: 'writing' | 'stored' | 'failed' = 'writing';
  private storeError: Error | undefined;
  /** Bytes the cache write has taken. */
  private storePos = 0;
  private waiters: (() => void)[] = [];
  private released = false;
  /** The bytes from `windowStart` to `received`. */
  private window: Buffer[] = [];
  private windowStart = 0;
  /** Where each reader following the window is, and when it last took bytes. */
  private readonly readers = new Set<{ pos: number; tookAt: number }>();

  /** The upstream's Content-Length, once it answered. */
  private expected: number | undefined;

  /** `failed` is called as soon as the upstream's bytes turn out wrong or stop coming. */
  constructor(private readonly f: BlobFetch, private readonly failed: () => void) {}

  /**
   * Starts the cache write (before the upstream answers: its session is made meanwhile); settles once
   * the blob is stored, or with the failure.
   */
  store(): Promise<void> {
    const storing = this.f.store(Readable.from(this.forStorage(), { objectMode: false })).then(
      () => this.settleStorage('stored'),
      (err: unknown) => {
        this.settleStorage('failed', asUpstreamFailure(err, this.f.digest));
        throw this.storeError;
      },
    );
    // The cache write may fail while the upstream is still sending (a quota, a full disk): handled
    // here at once, so its rejection is never unhandled while the pump runs (Node would exit on it);
    // awaiting it in `run` still sees the failure.
    storing.catch(() => undefined);
    return storing;
  }

  /** The upstream never answered: the cache write stops and keeps nothing. */
  abandon(err: Error): void {
    this.error = err;
    this.state = 'failed';
    this.wake();
  }

  /** Pumps the upstream's body into the window; resolves once the blob is verified and `storing` is done, rejects with the first failure. */
  async run(upstream: UpstreamBlob, storing: Promise<void>): Promise<void> {
    this.expected = upstream.size;
    try {
      await this.pump(upstream.body);
    } catch (err) {
      this.error = asUpstreamFailure(err, this.f.digest);
      this.state = 'failed';
      this.failed();
      this.wake();
      await storing.catch(() => undefined);
      throw this.error;
    }
    await storing;
  }

  /** Copies `body` into the window, checking its length and digest; marks it verified. */
  private async pump(body: Readable): Promise<void> {
    const digester = Digester.create(digestAlgorithm(this.f.digest));
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (this.expected !== undefined && this.received + chunk.length > this.expected) {
        throw new UpstreamError('invalid', `the upstream sent more than its Content-Length of ${this.expected} bytes`);
      }
      digester.update(chunk);
      this.keep(chunk);
      this.wake();
      while (this.storage === 'writing' && this.received - this.storePos > (this.storePos === 0 ? STARTING_AHEAD : MAX_AHEAD)) await this.change();
      // Readers that keep up, slower than the upstream, set the pace (as a client of a mirror that
      // writes to it and to the cache in turn would), instead of falling out of the window into a wait
      // for the cache's commit; one that stalls stops holding the fetch back after READER_STALL_MS.
      for (let lag = this.laggard(); lag !== undefined; lag = this.laggard()) await this.changeOrTimeout(lag);
    }
    if (this.expected !== undefined && this.received !== this.expected) {
      throw new UpstreamError('invalid', `the upstream sent ${this.received} of ${this.expected} bytes`);
    }
    const actual = digester.digest();
    if (actual !== this.f.digest) throw new UpstreamError('invalid', `the upstream's bytes do not match ${this.f.digest} (they hash to ${actual})`);
    this.state = 'verified';
    this.wake();
  }

  /** What the cache write takes: every byte, as it arrives; ends once the blob is verified. */
  private async *forStorage(): AsyncGenerator<Buffer> {
    for (;;) {
      this.throwIfFailed();
      const kept = this.storePos < this.received ? this.fromWindow(this.storePos, this.received) : undefined;
      if (kept !== undefined) {
        this.storePos += kept.length;
        this.wake(); // the pump may be waiting for the cache write
        yield kept;
      } else if (this.state === 'verified') {
        return;
      } else {
        await this.change();
      }
    }
  }

  private settleStorage(outcome: 'stored' | 'failed', err?: Error): void {
    this.storage = outcome;
    this.storeError = err;
    this.trim();
    this.wake();
  }

  /** Adds `chunk` to the window. */
  private keep(chunk: Buffer): void {
    this.window.push(chunk);
    this.received += chunk.length;
    this.trim();
  }

  /**
   * How long to wait for the slowest reader still taking bytes that lags a whole window behind (until
   * it counts as stalled); undefined when there is none.
   */
  private laggard(): number | undefined {
    const now = Date.now();
    let wait: number | undefined;
    for (const r of this.readers) {
      const left = r.tookAt + READER_STALL_MS - now;
      if (this.received - r.pos >= WINDOW_BYTES && left > 0) wait = Math.max(wait ?? 0, left);
    }
    return wait;
  }

  /** The oldest byte a reader that is not stalled still needs. */
  private readersFrom(): number {
    const now = Date.now();
    let from = this.received;
    for (const r of this.readers) if (now - r.tookAt < READER_STALL_MS) from = Math.min(from, r.pos);
    return from;
  }

  /** Drops the window's oldest chunks past WINDOW_BYTES that the cache write and live readers have taken (never the newest). */
  private trim(): void {
    const taken = Math.min(this.storage === 'writing' ? this.storePos : this.received, this.readersFrom());
    for (let first = this.window[0]; first !== undefined && this.window.length > 1; first = this.window[0]) {
      const end = this.windowStart + first.length;
      if (end > taken || this.received - end < WINDOW_BYTES) break;
      this.window.shift();
      this.windowStart = end;
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
    const cursor = { pos: start, tookAt: Date.now() };
    this.readers.add(cursor);
    try {
      yield* this.read(cursor, end);
    } finally {
      // Done, failed or destroyed (the client went away): it no longer holds the fetch back.
      this.readers.delete(cursor);
      this.wake();
    }
  }

  private async *read(cursor: { pos: number; tookAt: number }, end: number | undefined): AsyncGenerator<Buffer> {
    for (;;) {
      const pos = cursor.pos;
      this.throwIfFailed();
      const available = this.available();
      const limit = Math.min(available, end ?? Number.POSITIVE_INFINITY);
      if (this.state === 'verified' && pos >= limit) return;
      if (pos >= limit) {
        if (end !== undefined && pos >= end) this.readers.delete(cursor); // its range is read: it holds nothing back
        await this.change();
        continue;
      }
      const kept = this.fromWindow(pos, limit);
      if (kept !== undefined) {
        yield kept;
        // Taken: the pump may be waiting for this reader.
        cursor.pos = pos + kept.length;
        cursor.tookAt = Date.now();
        this.wake();
        continue;
      }
      // Fell behind the window: what the cache write has written comes from its file while it writes
      // (where storage can read it), the rest from storage once the blob is committed.
      this.readers.delete(cursor);
      this.wake();
      yield* this.fromCacheWrite(cursor, end);
      if (this.state === 'verified' && cursor.pos >= (end ?? this.received)) return;
      while (this.storage === 'writing') await this.change();
      if (this.storage === 'failed') throw this.storeError ?? new Error('the cache write failed');
      yield* (await this.f.stored({ start: cursor.pos, end: (end ?? this.received) - 1 })) as AsyncIterable<Buffer>;
      return;
    }
  }

  /**
   * For a reader that fell behind the window: the bytes from `cursor.pos` that the cache write has put
   * in its file, up to `end` and no further than readers may go (`available`: never the last byte of
   * unverified content), following the file while the write goes on. It stops, leaving the rest to the
   * committed blob, once the write is over, where storage cannot read the file (S3), or when a read
   * fails (the commit moved the file). The file holds the fetch's own bytes, in order: the cache write
   * only appends what the fetch received.
   */
  private async *fromCacheWrite(cursor: { pos: number }, end: number | undefined): AsyncGenerator<Buffer> {
    while (this.storage === 'writing') {
      this.throwIfFailed();
      const limit = Math.min(this.available(), end ?? Number.POSITIVE_INFINITY);
      if (cursor.pos >= limit) {
        if (this.state === 'verified') return;
        await this.change();
        continue;
      }
      let got = 0;
      try {
        const file = await this.f.written?.(cursor.pos);
        if (file === undefined) return;
        for await (const chunk of file as AsyncIterable<Buffer>) {
          const part = chunk.subarray(0, limit - cursor.pos);
          cursor.pos += part.length;
          got += part.length;
          if (part.length > 0) yield part;
          if (cursor.pos >= limit) break;
        }
      } catch {
        return;
      }
      // The file had nothing more yet: its writes trail the fetch, and tell nobody when they land.
      if (got === 0) await this.changeOrTimeout(WRITTEN_POLL_MS);
    }
  }

  /**
   * How far readers may read: everything once the blob is verified; until then all but its last byte
   * (wrong bytes are never served whole), that is all but the last received while the size is unknown.
   */
  private available(): number {
    if (this.state === 'verified') return this.received;
    return Math.max(0, Math.min(this.received, (this.expected ?? this.received) - 1));
  }

  private throwIfFailed(): void {
    if (this.state === 'failed') throw this.error ?? new Error('fetch failed');
  }

  private change(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The next change, or `ms` passing. */
  private changeOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  /**
   * The fetch is over: new readers read storage. Once the blob is stored the window goes too (readers
   * still following it read storage); after a failed cache write it stays for them (and goes with them).
   */
  release(): void {
    this.released = true;
    if (this.storage !== 'stored') return;
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
