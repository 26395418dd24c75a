/**
 * In-process state shared by every repository's uploads: one lock per session, so requests on the
 * same session run one after another, and the running hash of each session, so a commit need not
 * read the data again. Losing this state (a restart) costs a re-read, never correctness.
 */
import { Digester } from '../digest.js';

/** Per-session locks and running hashes, shared by every repository of a registry. */
export interface UploadSessions {
  /** Runs `fn` once every earlier call for the same key has settled. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Removes and returns the running hash when it covers exactly `size` bytes; a fresh one at size 0. */
  takeHash(key: string, size: number): Digester | undefined;
  /** The running hash when it covers exactly `size` bytes, left in place. */
  peekHash(key: string, size: number): Digester | undefined;
  keepHash(key: string, digester: Digester): void;
  forget(key: string): void;
}

/** `maxHashes` bounds memory: the oldest hash states are dropped first (they are only an optimisation). */
export function createUploadSessions(maxHashes = 4096): UploadSessions {
  const locks = new Map<string, Promise<unknown>>();
  const hashes = new Map<string, Digester>();

  const peekHash = (key: string, size: number): Digester | undefined => {
    const h = hashes.get(key);
    if (h && h.size === size) return h;
    return size === 0 ? Digester.create() : undefined;
  };

  return {
    async exclusive(key, fn) {
      const before = locks.get(key) ?? Promise.resolve();
      const run = before.then(fn, fn);
      const settled = run.catch(() => undefined);
      locks.set(key, settled);
      try {
        return await run;
      } finally {
        if (locks.get(key) === settled) locks.delete(key);
      }
    },
    takeHash(key, size) {
      const h = peekHash(key, size);
      hashes.delete(key);
      return h;
    },
    peekHash,
    keepHash(key, digester) {
      hashes.delete(key);
      hashes.set(key, digester);
      if (hashes.size > maxHashes) hashes.delete(hashes.keys().next().value as string);
    },
    forget(key) {
      hashes.delete(key);
    },
  };
}
