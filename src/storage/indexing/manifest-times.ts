/**
 * Push and pull times per manifest revision (issue #16): when a revision of a repository was last
 * pushed (a manifest PUT, by tag or by digest) and last pulled (a manifest GET, not HEAD). Retention,
 * usage, the mirror's expiry and the UI read them through {@link ManifestTimes}.
 *
 * They are derived state, kept by a {@link TimesStore} (the LevelDB index, src/indexdb/times.ts): a
 * push is written before the PUT is answered; pulls are noted in memory on the GET path and written
 * in batches, so a GET never waits for a write. For a revision the store has no push time for (data
 * copied in from registry:2, or no store at all) the revision link's modification time stands in: a
 * push writes that link, so it is the time of the last push that went through any registry.
 *
 * Without a store (in-memory storage, replicas over one bucket) push times come from the link files
 * alone and pull times live in this process's memory only, lost at restart.
 */
import { type Digest, parseDigest } from '../digest.js';
import { type CallOptions, type StorageDriver, isDriverError } from '../driver/driver.js';
import { paths } from '../paths.js';
import type { RepoName } from '../reference.js';

/** When a revision was last pushed and pulled, in milliseconds since the epoch; absent when unknown. */
export interface RevisionTimes {
  readonly pushedAt?: number;
  readonly pulledAt?: number;
}

/** A repository's latest push and pull over all its revisions, in milliseconds since the epoch. */
export interface RepositoryTimes {
  readonly lastPush?: number;
  readonly lastPull?: number;
}

/**
 * Where times are kept (the index implements it). Reads answer undefined when the store cannot
 * answer at all (closed or failed); a revision it holds nothing for answers `{}`.
 */
export interface TimesStore {
  /** Records a push of `d` in `repo` at `at`; resolves once written. */
  recordPush(repo: RepoName, d: Digest, at: number): Promise<void>;
  /** Notes a pull in memory; written with the next batch. */
  notePull(repo: RepoName, d: Digest, at: number): void;
  /** Sets times outright (tools and tests); resolves once written. */
  setTimes(repo: RepoName, d: Digest, times: RevisionTimes): Promise<void>;
  revisionTimes(repo: RepoName, d: Digest): Promise<RevisionTimes | undefined>;
  /** The times of every revision of `repo` the store holds. */
  repositoryRevisionTimes(repo: RepoName): Promise<ReadonlyMap<Digest, RevisionTimes> | undefined>;
  /**
   * The last push and pull of each of `repos` over the revisions the store holds times for (a page of
   * usage figures: one read for all of them); a repository with none is left out.
   */
  repositoriesTimes?(repos: readonly RepoName[]): Promise<ReadonlyMap<string, RepositoryTimes> | undefined>;
  /** Writes the pulls noted so far. */
  flushPulls(): Promise<void>;
}

/** Push and pull times as storage's callers read and record them. */
export interface ManifestTimes {
  /** Records a push of `d` in `repo` now (storage calls it after a manifest PUT). */
  pushed(repo: RepoName, d: Digest): Promise<void>;
  /** Notes a pull of `d` in `repo` now, in memory (storage calls it on a manifest GET). */
  pulled(repo: RepoName, d: Digest): void;
  /** The revision's times; its link's modification time when no push was recorded. */
  timesOf(repo: RepoName, d: Digest, o?: CallOptions): Promise<RevisionTimes>;
  /** The times of every revision of `repo` that has any recorded (link times are not read). */
  recorded(repo: RepoName): Promise<ReadonlyMap<Digest, RevisionTimes>>;
  /** The last push and pull of each of `repos`, as `repositoryTimes` answers them one by one. */
  repositoriesTimes(repos: readonly RepoName[]): Promise<ReadonlyMap<string, RepositoryTimes>>;
  /** The repository's last push and last pull over the revisions with recorded times. */
  repositoryTimes(repo: RepoName): Promise<RepositoryTimes>;
  /** Sets a revision's times outright (tests, imports). */
  set(repo: RepoName, d: Digest, times: RevisionTimes): Promise<void>;
  /** Writes the pulls noted in memory to the store now. */
  flush(): Promise<void>;
}

/** Times over `store` (or memory when there is none), with `driver` for link modification times. */
export function createManifestTimes(driver: StorageDriver, store?: TimesStore, now: () => number = Date.now): ManifestTimes {
  const memory = new Map<string, RevisionTimes>();
  const keyOf = (repo: RepoName, d: Digest): string => `${repo}@${d}`;
  const remember = (repo: RepoName, d: Digest, t: RevisionTimes): void => {
    memory.set(keyOf(repo, d), { ...memory.get(keyOf(repo, d)), ...t });
  };
  const stored = async <T>(read: (s: TimesStore) => Promise<T | undefined>): Promise<T | undefined> => {
    try {
      return store && (await read(store));
    } catch {
      return undefined; // a failing store loses times, never a request
    }
  };

  const times: ManifestTimes = {
    async pushed(repo, d) {
      if (store) await stored((s) => s.recordPush(repo, d, now()));
      else remember(repo, d, { pushedAt: now() });
    },
    pulled(repo, d) {
      if (store) store.notePull(repo, d, now());
      else remember(repo, d, { pulledAt: now() });
    },
    async timesOf(repo, d, o) {
      const known = (await stored((s) => s.revisionTimes(repo, d))) ?? memory.get(keyOf(repo, d)) ?? {};
      if (known.pushedAt !== undefined) return known;
      const linked = await linkTime(driver, repo, d, o);
      return { ...known, ...(linked !== undefined && { pushedAt: linked }) };
    },
    async recorded(repo) {
      const all = await stored((s) => s.repositoryRevisionTimes(repo));
      if (all) return all;
      const prefix = `${repo}@`;
      const out = new Map<Digest, RevisionTimes>();
      for (const [k, t] of memory) {
        const d = k.startsWith(prefix) ? parseDigest(k.slice(prefix.length)) : undefined;
        if (d) out.set(d, t);
      }
      return out;
    },
    async repositoryTimes(repo) {
      let lastPush: number | undefined;
      let lastPull: number | undefined;
      for (const t of (await times.recorded(repo)).values()) {
        if (t.pushedAt !== undefined) lastPush = Math.max(lastPush ?? 0, t.pushedAt);
        if (t.pulledAt !== undefined) lastPull = Math.max(lastPull ?? 0, t.pulledAt);
      }
      return { ...(lastPush !== undefined && { lastPush }), ...(lastPull !== undefined && { lastPull }) };
    },
    async repositoriesTimes(repos) {
      const batch = await stored((s) => s.repositoriesTimes?.(repos) ?? Promise.resolve(undefined));
      if (batch) return batch;
      return new Map(await Promise.all(repos.map(async (repo) => [repo, await times.repositoryTimes(repo)] as const)));
    },
    async set(repo, d, t) {
      if (store) await stored((s) => s.setTimes(repo, d, t));
      else remember(repo, d, t);
    },
    async flush() {
      await stored((s) => s.flushPulls());
    },
  };
  return times;
}

/** The modification time of the revision's link, or undefined when there is none. */
export async function linkTime(driver: StorageDriver, repo: RepoName, d: Digest, o?: CallOptions): Promise<number | undefined> {
  try {
    return (await driver.stat(paths.revisionLink(repo, d), o)).modTime.getTime();
  } catch (err) {
    if (isDriverError(err, 'PATH_NOT_FOUND')) return undefined;
    throw err;
  }
}
