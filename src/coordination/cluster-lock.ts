/**
 * A lock held by one process of a cluster at a time, with a lease: the online collector takes it so
 * that only one replica collects at once.
 *
 * In Redis it is one key holding the holder's random token (`SET NX PX`), renewed every quarter of
 * the lease while held and deleted on release only by its holder. A holder that crashes keeps the lock
 * for at most one lease. A holder that cannot renew (Redis unreachable, or the key gone: Redis
 * restarted) for half a lease gives it up: the lease's `signal` aborts, and the collection stops at its
 * next check. The per-digest link gate (redis-link-gate.ts), not this lock, is what keeps a collection
 * safe against pushes; this lock keeps two collections from working over the same blobs at once.
 */
import { randomBytes } from 'node:crypto';
import { unavailable } from '../errors.js';
import { type RedisClient, luaScript } from './redis-client.js';

/** A held lock. */
export interface Lease {
  /** Aborts when the lock is lost (it could not be renewed in time). */
  readonly signal: AbortSignal;
  /** Stops renewing and lets go (only of a lock still ours). Never throws. */
  release(): Promise<void>;
}

/** A lock the processes of a cluster take in turn. */
export interface ClusterLock {
  /** The lock when nobody holds it; undefined when another holder does. @throws when the lock service fails */
  tryAcquire(): Promise<Lease | undefined>;
}

export interface RedisClusterLockOptions {
  readonly client: RedisClient;
  /** The lock's key (e.g. `berth:gc:lock`). */
  readonly key: string;
  /** How long the lock outlives a holder that stops renewing (default 30 s). */
  readonly leaseMs?: number;
  /** Told when a renewal fails or the lock is lost. */
  readonly onError?: (msg: string, err?: unknown) => void;
}

const ACQUIRE = luaScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`);
const RENEW = luaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`);
const RELEASE = luaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/** A ClusterLock in Redis. */
export function createRedisClusterLock(o: RedisClusterLockOptions): ClusterLock {
  const leaseMs = o.leaseMs ?? 30_000;
  const report = o.onError ?? (() => undefined);
  return {
    async tryAcquire() {
      const token = randomBytes(12).toString('base64url');
      if ((await o.client.run(ACQUIRE, [o.key], [token, leaseMs])) !== 1) return undefined;
      const lost = new AbortController();
      let renewedAt = Date.now();
      const timer = setInterval(() => {
        o.client.run(RENEW, [o.key], [token, leaseMs]).then(
          (held) => {
            if (held === 1) renewedAt = Date.now();
            else lose(`the lock ${o.key} was lost (expired or taken); stopping`);
          },
          (err: unknown) => {
            report(`renewing the lock ${o.key} failed`, err);
            if (Date.now() - renewedAt > leaseMs / 2) lose(`the lock ${o.key} could not be renewed for half its lease; stopping`);
          },
        );
      }, Math.max(1, Math.floor(leaseMs / 4)));
      timer.unref();
      const lose = (why: string): void => {
        clearInterval(timer);
        if (lost.signal.aborted) return;
        report(why);
        lost.abort(new Error(why));
      };
      return {
        signal: lost.signal,
        async release() {
          clearInterval(timer);
          await o.client.run(RELEASE, [o.key], [token]).catch((err: unknown) => report(`releasing the lock ${o.key} failed`, err));
        },
      };
    },
  };
}

/** What a caller of {@link whileHolding} says when it cannot get the lock. */
export interface HoldingRefusals {
  /** The lock service failed (Redis unreachable). */
  readonly failed: string;
  /** Another holder kept the lock for longer than the wait. */
  readonly busy: string;
}

/**
 * Runs `fn` holding `lock`, and lets go after. A lock another process holds is asked for again after a
 * short wait, growing to 50 ms; a holder that died keeps it for at most its lease.
 * @throws RegistryError UNAVAILABLE (and `fn` does not run) when the lock cannot be had within
 *   `waitMs` (`refusals.busy`) or the lock service fails (`refusals.failed`)
 */
export async function whileHolding<T>(lock: ClusterLock, waitMs: number, refusals: HoldingRefusals, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let pause = 2; ; pause = Math.min(50, pause * 2)) {
    let lease: Lease | undefined;
    try {
      lease = await lock.tryAcquire();
    } catch (err) {
      throw unavailable(refusals.failed, { cause: String(err) });
    }
    if (lease !== undefined) {
      try {
        return await fn();
      } finally {
        await lease.release();
      }
    }
    if (Date.now() > deadline) throw unavailable(refusals.busy);
    await new Promise((r) => setTimeout(r, pause));
  }
}
