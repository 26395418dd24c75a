/**
 * In-process state shared by every repository's uploads: one lock per session, so requests on the
 * same session run one after another, and the last saved hash state of each chunked session, so the
 * next request on this process need not read it back from storage. Losing this state (a restart)
 * costs a read of the saved state, or of the data where there is none, never correctness.
 */

/** A session's SHA-256 state in Go's format (resumable-sha256.ts) and the size it covers. */
export interface SavedHashState {
  readonly size: number;
  readonly state: Buffer;
}

/** Per-session locks and saved hash states, shared by every repository of a registry. */
export interface UploadSessions {
  /** Runs `fn` once every earlier call for the same key has settled. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** The state kept for the session when it covers exactly `size` bytes. */
  hashState(key: string, size: number): Buffer | undefined;
  keepHashState(key: string, saved: SavedHashState): void;
  forget(key: string): void;
}

/** `maxStates` bounds memory: the oldest states are dropped first (they are only an optimisation). */
export function createUploadSessions(maxStates = 4096): UploadSessions {
  const locks = new Map<string, Promise<unknown>>();
  const states = new Map<string, SavedHashState>();

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
    hashState(key, size) {
      const saved = states.get(key);
      return saved?.size === size ? saved.state : undefined;
    },
    keepHashState(key, saved) {
      states.delete(key);
      states.set(key, saved);
      if (states.size > maxStates) states.delete(states.keys().next().value as string);
    },
    forget(key) {
      states.delete(key);
    },
  };
}
