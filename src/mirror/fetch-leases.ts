/**
 * What replicas of one mirror share (`redis` configured; issue #18): a lease per upstream fetch, so
 * that replicas over one storage fetch each blob and manifest once, and the time each tag was last
 * revalidated and the size the upstream told of each blob not cached, so that `revalidate` holds
 * across them. Without replicas there is nothing to share:
 * the in-process fetches (blob-fetches.ts, Flights) already fetch once.
 *
 * A replica about to fetch takes the fetch's lease. While another replica holds it, it waits for what
 * that replica fetches to land in the shared storage (checking every few ms, growing to 200 ms) and
 * then serves it from there. The holder renews its lease while it fetches; one that dies lets it lapse
 * (after the lease, 10 s in Redis), and a waiter then takes it and fetches from the upstream itself.
 * A lease service that fails is no reason to fail a pull: the replica fetches without a lease (at
 * worst once more than needed), and says so.
 */
import type { Lease } from '../coordination/cluster-lock.js';

export type { Lease } from '../coordination/cluster-lock.js';

/** The shared state of a mirror's replicas. */
export interface MirrorSharing {
  /** The lease on fetching `key` when no replica holds it; undefined while one does. @throws when the lease service fails */
  tryLease(key: string): Promise<Lease | undefined>;
  /** Whether any replica revalidated tag `key` within its `revalidate`. @throws when the service fails */
  checkedRecently(key: string): Promise<boolean>;
  /** Notes that tag `key` was revalidated now, for `ms`. @throws when the service fails */
  markChecked(key: string, ms: number): Promise<void>;
  /** The size of blob `key` (`<name>@<digest>`) a replica's HEAD upstream told within `revalidate`. @throws when the service fails */
  knownSize(key: string): Promise<number | undefined>;
  /** Notes the size of blob `key` the upstream told, for `ms`. @throws when the service fails */
  noteSize(key: string, size: number, ms: number): Promise<void>;
}

/** What `claim` found: the thing landed (another replica fetched it), or this replica is to fetch it (holding `lease` when it got one). */
export type Claim<T> = { readonly landed: T } | { readonly lease: Lease | undefined };

export interface ClaimOptions<T> {
  readonly sharing: MirrorSharing;
  readonly key: string;
  /** What the fetch would produce, once it is in storage; undefined while it is not. */
  readonly landed: () => Promise<T | undefined>;
  /** How long to wait for another replica's fetch before fetching anyway. */
  readonly waitMs: number;
  /** Told when the lease service fails (the fetch goes ahead without a lease). */
  readonly failed: (err: unknown) => void;
}

/**
 * The lease on fetching `o.key`, or what another replica's fetch of it stored. A lease taken after the
 * thing landed is let go at once.
 */
export async function claim<T>(o: ClaimOptions<T>): Promise<Claim<T>> {
  const deadline = Date.now() + o.waitMs;
  for (let pause = 5; ; pause = Math.min(200, pause * 2)) {
    let lease: Lease | undefined;
    try {
      lease = await o.sharing.tryLease(o.key);
    } catch (err) {
      o.failed(err);
      return { lease: undefined };
    }
    const landed = await o.landed();
    if (landed !== undefined) {
      await lease?.release();
      return { landed };
    }
    if (lease !== undefined || Date.now() > deadline) return { lease };
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
