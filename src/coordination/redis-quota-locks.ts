/**
 * Quota locks shared by replicas (`redis` configured): a quota's check and the link it admits
 * (storage/quotas/quotas.ts) run under one lock per quota across every replica, so two pushes on two
 * replicas cannot both take a quota's last room. Each quota is a cluster lock (cluster-lock.ts, a key
 * `<prefix>quota:<globs>` with the holder's token and a lease renewed while held), taken after the
 * replica's own turn for the quota, so one replica asks Redis once per quota at a time.
 *
 * The lock is held across the link itself (on S3 a server-side copy of the blob into place), so the
 * pushes of one quota's glob publish one at a time across the cluster; a push waits up to `waitMs`
 * for its turn, then fails with UNAVAILABLE and writes nothing, as it does when Redis cannot be reached.
 */
import type { SharedQuotaLocks } from '../storage/registry.js';
import { type ClusterLock, whileHolding } from './cluster-lock.js';

export interface RedisQuotaLocksOptions {
  /** The cluster lock of one quota, named by its globs. */
  readonly lockFor: (quota: string) => ClusterLock;
  /** How long a push waits for a quota another replica holds (default 120 s: big blobs publish under it). */
  readonly waitMs?: number;
}

export function createRedisQuotaLocks(o: RedisQuotaLocksOptions): SharedQuotaLocks {
  const waitMs = o.waitMs ?? 120_000;
  return {
    run: (quota, fn) => whileHolding(o.lockFor(quota), waitMs, {
      failed: `the quota ${quota} cannot be checked: the replicas' lock service (Redis) failed`,
      busy: `the quota ${quota} is being checked by another replica for too long; try again`,
    }, fn),
  };
}
