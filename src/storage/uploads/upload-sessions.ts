/**
 * In-process state shared by every repository's uploads: one lock per session, so requests on the
 * same session run one after another, and the hash of each chunked session between its requests:
 * Node's running hash when this process is alone on its storage, else the last saved state of the
 * resumable one, so the next request here need not read it back. Losing this (a restart) costs a read
 * of the saved state, or of the data where there is none, never correctness.
 */
import type { Digester } from '../digest.js';

/** A session's SHA-256 state in Go's format (resumable-sha256.ts) and the size it covers. */
export interface SavedHashState {
  readonly size: number;
  readonly state: Buffer;
}

/** What a session keeps between requests. */
export type KeptHash = Digester | SavedHashState;

/** Per-session locks and hashes, shared by every repository of a registry. */
export interface UploadSessions {
  /** Whether PATCHes save their hash state for other processes (RegistryOptions.sharedUploads). */
  readonly saveHashStates: boolean;
  /** Runs `fn` once every earlier call for the same key has settled. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Removes and returns what is kept for the session when it covers exactly `size` bytes. */
  takeHash(key: string, size: number): KeptHash | undefined;
  keepHash(key: string, kept: KeptHash): void;
  forget(key: string): void;
}

/** `maxHashes` bounds memory: the oldest hashes are dropped first (they are only an optimisation). */
export function createUploadSessions(o: { saveHashStates: boolean; maxHashes?: number }): UploadSessions {
  const maxHashes = o.maxHashes ?? 4096;
  const locks = new Map<string, Promise<unknown>>();
  const hashes = new Map<string, KeptHash>();

  return {
    saveHashStates: o.saveHashStates,
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
      const kept = hashes.get(key);
      hashes.delete(key);
      return kept?.size === size ? kept : undefined;
    },
    keepHash(key, kept) {
      hashes.delete(key);
      hashes.set(key, kept);
      if (hashes.size > maxHashes) hashes.delete(hashes.keys().next().value as string);
    },
    forget(key) {
      hashes.delete(key);
    },
  };
}
