/**
 * The times table of the index (`p NUL <repo> NUL <digest>` → {pushedAt?, pulledAt?}): push and pull
 * times per manifest revision (storage/indexing/manifest-times.ts says what they mean).
 *
 * Unlike the other tables it is not emptied by a rebuild: pull times and exact push times cannot be
 * read back from the layout. The rebuild walk fills in the push time of every revision that has no
 * entry from its link's modification time, and drops the entries of revisions that are gone
 * (`pruneTimes`); the refresh of a revision does the same for that one revision (refresh.ts).
 *
 * Writes of one entry go through the index's per-item queue under the revision's item key, the key
 * its refreshes use, so a push or a batch of pulls never races the refresh that removes the entry of
 * a deleted revision. Once the index is ready, an entry that is missing means the revision is gone
 * (a push's own refresh wrote one), so a push or pull noted for it is dropped rather than written.
 * Pulls are held in memory and written every few seconds and at close.
 */
import { type Digest, parseDigest } from '../storage/digest.js';
import type { RepoName } from '../storage/indexing/index-port.js';
import type { RepositoryTimes, RevisionTimes, TimesStore } from '../storage/indexing/manifest-times.js';
import type { IndexLevel } from './entries.js';
import { type KeyQueue, createKeyQueue } from './key-queue.js';
import { repoSpan, subjectKey, timeKey, timeKeyFields, timeRange } from './keys.js';

/** How often noted pulls are written. */
export const PULL_FLUSH_MS = 5_000;

/** What the table needs from the index that holds it. */
export interface TimesHost {
  readonly db: IndexLevel;
  readonly queue: KeyQueue;
  /** True once the index is ready (entries of existing revisions are then all present). */
  ready(): boolean;
  /** True while the database may be used. */
  open(): boolean;
  fail(what: string, err: unknown): void;
}

/** A times entry, when `v` is one. */
export function asTimes(v: unknown): RevisionTimes | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { pushedAt, pulledAt } = v as { pushedAt?: unknown; pulledAt?: unknown };
  return {
    ...(typeof pushedAt === 'number' && { pushedAt }),
    ...(typeof pulledAt === 'number' && { pulledAt }),
  };
}

/** The later of two times, either of which may be unknown. */
export const later = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

/** The times table of one index. */
export class TimesTable implements TimesStore {
  private pulls = new Map<string, { repo: RepoName; d: Digest; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly host: TimesHost) {}

  recordPush(repo: RepoName, d: Digest, at: number): Promise<void> {
    return this.update(repo, d, (t) => ({ ...t, pushedAt: later(t?.pushedAt, at) as number }), false);
  }

  setTimes(repo: RepoName, d: Digest, times: RevisionTimes): Promise<void> {
    return this.update(repo, d, (t) => ({ ...t, ...times }), true);
  }

  notePull(repo: RepoName, d: Digest, at: number): void {
    if (!this.host.open()) return;
    this.pulls.set(timeKey(repo, d), { repo, d, at });
    if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.flushPulls(), PULL_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes the pulls noted so far (joining a write under way, then writing what came since). */
  async flushPulls(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.pulls.size === 0 || !this.host.open()) return;
    const batch = [...this.pulls.values()];
    this.pulls = new Map();
    this.flushing = Promise.all(
      batch.map(({ repo, d, at }) => this.update(repo, d, (t) => ({ ...t, pulledAt: later(t?.pulledAt, at) as number }), false)),
    ).then(() => undefined);
    await this.flushing;
  }

  revisionTimes(repo: RepoName, d: Digest): Promise<RevisionTimes | undefined> {
    return this.read(async (db) => this.withPending(timeKey(repo, d), asTimes(await db.get(timeKey(repo, d))) ?? {}));
  }

  repositoryRevisionTimes(repo: RepoName): Promise<ReadonlyMap<Digest, RevisionTimes> | undefined> {
    return this.read(async (db) => {
      const out = new Map<Digest, RevisionTimes>();
      for (const [key, value] of await db.iterator(timeRange(repo)).all()) {
        const t = asTimes(value);
        const d = parseDigest(timeKeyFields(key).digest);
      if (t && d) out.set(d, this.withPending(key, t));
      }
      return out;
    });
  }

  repositoriesTimes(repos: readonly RepoName[]): Promise<ReadonlyMap<string, RepositoryTimes> | undefined> {
    return this.read(async (db) => {
      const out = new Map<string, RepositoryTimes>();
      if (repos.length === 0) return out;
      const wanted = new Set<string>(repos);
      const sorted = [...wanted].sort();
      for (const [key, value] of await db.iterator(repoSpan('p', sorted[0] ?? '', sorted.at(-1) ?? '')).all()) {
        const { repo } = timeKeyFields(key);
        const t = asTimes(value);
        if (!wanted.has(repo) || t === undefined) continue;
        const { pushedAt, pulledAt } = this.withPending(key, t);
        const before = out.get(repo) ?? {};
        const lastPush = later(before.lastPush, pushedAt);
        const lastPull = later(before.lastPull, pulledAt);
        out.set(repo, { ...(lastPush !== undefined && { lastPush }), ...(lastPull !== undefined && { lastPull }) });
      }
      return out;
    });
  }

  /** A read of the table: undefined once the index failed or closed (a LevelDB failure fails the index). */
  private async read<T>(fn: (db: IndexLevel) => Promise<T>): Promise<T | undefined> {
    if (!this.host.open()) return undefined;
    try {
      return await fn(this.host.db);
    } catch (err) {
      this.host.fail('reading the index database failed', err);
      return undefined;
    }
  }

  /** A noted pull not yet written, merged into what the database says. */
  private withPending(key: string, t: RevisionTimes): RevisionTimes {
    const pending = this.pulls.get(key);
    return pending ? { ...t, pulledAt: later(t.pulledAt, pending.at) as number } : t;
  }

  /** Rewrites one entry in its item's queue; a missing entry of a ready index is left alone unless `create`. */
  private async update(repo: RepoName, d: Digest, change: (t: RevisionTimes | undefined) => RevisionTimes, create: boolean): Promise<void> {
    if (!this.host.open()) return;
    await this.host.queue.run(subjectKey(repo, d), async () => {
      try {
        if (!this.host.open()) return;
        const before = asTimes(await this.host.db.get(timeKey(repo, d)));
        if (before === undefined && !create && this.host.ready()) return;
        await this.host.db.put(timeKey(repo, d), change(before));
      } catch (err) {
        this.host.fail('writing the index database failed', err);
      }
    });
  }
}

/**
 * The times table of a database an offline command holds (no index runs over it): reads, and pushes
 * for revisions that have an entry. What the command deletes leaves entries the next rebuild drops.
 */
export function offlineTimes(db: IndexLevel): TimesStore {
  return new TimesTable({ db, queue: createKeyQueue(), ready: () => true, open: () => db.status === 'open', fail: () => undefined });
}

/** Deletes the times entries whose revision the walk did not see, except in repositories it could not read. */
export async function pruneTimes(db: IndexLevel, seen: ReadonlySet<string>, unread: ReadonlySet<string>): Promise<number> {
  const gone: { type: 'del'; key: string }[] = [];
  for (const key of await db.keys(timeRange()).all()) {
    if (!seen.has(key) && !unread.has(timeKeyFields(key).repo)) gone.push({ type: 'del', key });
  }
  if (gone.length > 0) await db.batch(gone);
  return gone.length;
}
