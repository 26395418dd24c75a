/**
 * Tag lanes shared by replicas (`redis` configured): the writes of one tag take turns across every
 * replica, not only within one (storage/manifests/tag-lanes.ts says why they take turns: the first
 * pushes of an immutable tag, retention's conditional tag delete).
 *
 * A call first waits its turn in this process's own lane (so one replica asks Redis once per tag at a
 * time), then takes the tag's cluster lock (`<prefix>tag:<repo>:<tag>`, cluster-lock.ts: a key with
 * the holder's token and a lease, renewed while held), runs, and lets go. A lock another replica holds
 * is asked for again after a short wait, growing to 50 ms; a holder that died keeps it for at most its
 * lease. A call that cannot get the lock within `waitMs`, or cannot reach Redis, fails with
 * UNAVAILABLE and writes nothing (a push needs Redis's link gate anyway).
 */
import { type TagLanes, createTagLanes } from '../storage/manifests/tag-lanes.js';
import { type ClusterLock, whileHolding } from './cluster-lock.js';

export interface RedisTagLanesOptions {
  /** The cluster lock of one tag. */
  readonly lockFor: (repo: string, tag: string) => ClusterLock;
  /** How long a call waits for a tag another replica holds (default 30 s). */
  readonly waitMs?: number;
}

export function createRedisTagLanes(o: RedisTagLanesOptions): TagLanes {
  const local = createTagLanes();
  const waitMs = o.waitMs ?? 30_000;
  return {
    run: (repo, tag, fn) =>
      local.run(repo, tag, () => whileHolding(o.lockFor(repo, tag), waitMs, {
        failed: `the tag ${repo}:${tag} cannot be written: the replicas' lock service (Redis) failed`,
        busy: `the tag ${repo}:${tag} is being written by another replica; try again`,
      }, fn)),
  };
}
