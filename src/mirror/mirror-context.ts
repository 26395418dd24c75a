/**
 * What the parts of a mirrored repository share: its upstream, the name it has there, single-flight
 * requests, the revalidation clock of its tags, and the events the metrics and the log are told of.
 */
import type { Digest } from '../storage/digest.js';
import type { StoredManifest } from '../storage/registry.js';
import type { Claim } from './fetch-leases.js';
import type { UpstreamClient } from './upstream.js';

/** Runs one call per key at a time: callers that come while it runs share its result. */
export interface Flights {
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /**
   * As `run`, for a call whose result is ready before its work is done (`then`: a cache write after
   * the answer): callers get `value` at once, and the key stays taken, sharing that value, until
   * `then` settles.
   */
  runHeld<T>(key: string, fn: () => Promise<{ value: T; then: Promise<unknown> }>): Promise<T>;
  /** Settles once every held call's work is done (shutdown). */
  settled(): Promise<void>;
}

/** A Flights over one map of calls in progress. */
export function createFlights(): Flights {
  const running = new Map<string, Promise<unknown>>();
  const held = new Set<Promise<unknown>>();
  return {
    run<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const current = running.get(key);
      if (current !== undefined) return current as Promise<T>;
      const started = fn().finally(() => running.delete(key));
      running.set(key, started);
      return started;
    },
    runHeld<T>(key: string, fn: () => Promise<{ value: T; then: Promise<unknown> }>): Promise<T> {
      const current = running.get(key);
      if (current !== undefined) return current as Promise<T>;
      const started = fn().then(
        ({ value, then }) => {
          const work = then.catch(() => undefined).finally(() => {
            held.delete(work);
            if (running.get(key) === started) running.delete(key);
          });
          held.add(work);
          return value;
        },
        (err: unknown) => {
          running.delete(key);
          throw err;
        },
      );
      running.set(key, started);
      return started;
    },
    async settled() {
      while (held.size > 0) await Promise.allSettled([...held]);
    },
  };
}

/** One upstream fetch, as the log line and the metrics see it. */
export interface FetchRecord {
  readonly upstream: string;
  readonly kind: 'manifest' | 'blob';
  readonly repository: string;
  readonly digest: string;
  readonly bytes: number;
  readonly seconds: number;
  readonly error?: Error;
}

/** What the mirror reports (metrics/log): all optional to listen to. */
export interface MirrorEvents {
  hit(upstream: string): void;
  miss(upstream: string): void;
  revalidated(upstream: string): void;
  /** A cached manifest was served because the upstream failed. */
  stale(upstream: string, err: unknown): void;
  /** An upstream request failed and the client got an error. */
  failed(upstream: string, err: unknown): void;
  /** One upstream fetch of a manifest or blob is over (successful or not). */
  fetched(record: FetchRecord): void;
  /** A cached image was evicted (eviction.ts). */
  evicted(upstream: string): void;
}

/** Events nobody listens to. */
export const NO_EVENTS: MirrorEvents = {
  hit: () => undefined, miss: () => undefined, revalidated: () => undefined, stale: () => undefined, failed: () => undefined, fetched: () => undefined, evicted: () => undefined,
};

/** One mirrored repository's view of its upstream. */
export interface MirrorContext {
  /** The repository's name here (with the prefix, in Berth's form). */
  readonly name: string;
  /** Its name at the upstream. */
  readonly remote: string;
  readonly client: UpstreamClient;
  readonly flights: Flights;
  readonly events: MirrorEvents;
  /** True when tag `key` was revalidated within the upstream's `revalidate` (by any replica, with replicas). */
  fresh(key: string): Promise<boolean>;
  markFresh(key: string): void;
  /**
   * Before an upstream fetch of `key`: with replicas, the fetch's lease, or what another replica's
   * fetch of it stored (`landed`, once it is there); without, at once a claim with no lease.
   */
  claim<T>(key: string, landed: () => Promise<T | undefined>): Promise<Claim<T>>;
  /** Notes a pull (a GET) of manifest `digest` of this repository (for expiry by last pull). */
  pulled(digest: Digest): void;
  /** The signal of a fetch of this repository: not a client's (an abandoned fetch still completes), but bounded. */
  signal(): AbortSignal;
  /** Manifests fetched and answered whose cache write is still under way, by `<name>@<digest>` and `<name>:<tag>`. */
  readonly pending: Map<string, StoredManifest>;
  /**
   * The last cache write of each tag under way, by `<name>:<tag>`: a tag's writes are chained so the
   * newer answer's lands last (a tag that moved upstream while its first fetch was being written).
   */
  readonly tagWrites: Map<string, Promise<void>>;
  /** Sizes of this repository's blobs as the upstream told them (to any replica, with replicas), each for at most `revalidate`. */
  readonly sizes: {
    get(d: Digest): Promise<number | undefined>;
    set(d: Digest, size: number): Promise<void>;
  };
}
