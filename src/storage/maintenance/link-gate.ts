/**
 * The ordering between linking a blob into a repository and the collector deleting it.
 *
 * Blobs are global, so a blob the collector found unreferenced can be revived at any moment by an
 * upload commit, a mount or a manifest PUT that names it. Every such operation runs inside
 * `link(digests, op)`: it holds a shared lock on each digest while it checks the blob exists and
 * writes its links, and records the time it did. The sweep deletes a blob only inside
 * `sweep(d, op)`, which holds the digest's exclusive lock and is told when the blob was last linked.
 * So, for any digest, either
 *   - the link operation ran first: the sweep sees a link time after its run began and keeps the
 *     blob; or
 *   - the sweep ran first: the link operation then finds the blob gone and fails cleanly (a mount
 *     becomes an upload session, a manifest PUT answers MANIFEST_BLOB_UNKNOWN), and nothing that was
 *     acknowledged points at a missing blob.
 * `touch` records a read (a HEAD before a client skips an upload) without a lock: it makes the sweep
 * keep the blob when the read came first, and costs nothing when it did not.
 *
 * This gate is in-process: it orders the server's own requests against the server's own collector.
 * Replicas sharing storage use src/coordination/redis-link-gate.ts, the same interface in Redis.
 */
import type { Digest } from '../digest.js';

/** See the file comment: the lock and the link times that order linking against sweeping. */
export interface LinkGate {
  /** Runs `op` with a shared lock on every digest in `digests`, then records them as linked now. */
  link<T>(digests: readonly Digest[], op: () => Promise<T>): Promise<T>;
  /** Records that `d` was just read through a repository. */
  touch(d: Digest): void;
  /** Runs `op` with the exclusive lock on `d`; `op` learns when `d` was last linked or touched (ms), if known. */
  sweep<T>(d: Digest, op: (lastLinked: number | undefined) => Promise<T>): Promise<T>;
  /** Drops link times older than `before` (ms), which no collector run can need any more. */
  forgetBefore(before: number): void;
}

interface DigestLock {
  readers: number;
  writer: boolean;
  /** Callers waiting for their turn, in order. */
  readonly waiting: { exclusive: boolean; wake: () => void }[];
}

/**
 * How many link times are kept. The oldest go first; a collector run only needs those since it began
 * (and its grace period), so this bounds memory on a busy registry with collection off.
 */
const MAX_LINK_TIMES = 200_000;

/** A gate with its own clock; `maxLinkTimes` bounds how many link times it keeps. */
export function createLinkGate(now: () => number = Date.now, maxLinkTimes = MAX_LINK_TIMES): LinkGate {
  const locks = new Map<Digest, DigestLock>();
  const lastLinked = new Map<Digest, number>();
  /** Map order is insertion order: re-inserting keeps the newest last, so the first entry is the oldest. */
  const record = (d: Digest, at: number): void => {
    lastLinked.delete(d);
    lastLinked.set(d, at);
    if (lastLinked.size > maxLinkTimes) lastLinked.delete(lastLinked.keys().next().value as Digest);
  };

  const lockOf = (d: Digest): DigestLock => {
    let lock = locks.get(d);
    if (!lock) {
      lock = { readers: 0, writer: false, waiting: [] };
      locks.set(d, lock);
    }
    return lock;
  };

  /** Lets waiters in, in order: any number of shared ones, or one exclusive one. */
  const admit = (d: Digest, lock: DigestLock): void => {
    while (lock.waiting.length > 0 && !lock.writer) {
      const next = lock.waiting[0]!;
      if (next.exclusive && lock.readers > 0) break;
      lock.waiting.shift();
      if (next.exclusive) lock.writer = true;
      else lock.readers += 1;
      next.wake();
      if (next.exclusive) break;
    }
    if (lock.readers === 0 && !lock.writer && lock.waiting.length === 0) locks.delete(d);
  };

  const acquire = (d: Digest, exclusive: boolean): Promise<void> =>
    new Promise((resolve) => {
      const lock = lockOf(d);
      lock.waiting.push({ exclusive, wake: resolve });
      admit(d, lock);
    });

  const release = (d: Digest, exclusive: boolean): void => {
    const lock = locks.get(d);
    if (!lock) return;
    if (exclusive) lock.writer = false;
    else lock.readers -= 1;
    admit(d, lock);
  };

  return {
    async link(digests, op) {
      const unique = [...new Set(digests)].sort();
      for (const d of unique) await acquire(d, false);
      try {
        const result = await op();
        const at = now();
        for (const d of unique) record(d, at);
        return result;
      } finally {
        for (const d of unique) release(d, false);
      }
    },
    touch(d) {
      record(d, now());
    },
    async sweep(d, op) {
      await acquire(d, true);
      try {
        return await op(lastLinked.get(d));
      } finally {
        release(d, true);
      }
    },
    forgetBefore(before) {
      for (const [d, at] of lastLinked) if (at < before) lastLinked.delete(d);
    },
  };
}
