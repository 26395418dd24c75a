/**
 * Each repository's sorted tag list held in memory, in front of the database (index-db.ts): a full
 * list of 10,000 tags costs one LevelDB range read of 10,000 keys (about 13 ms), the same list from
 * memory a binary search and a slice. Bounded by the number of tags held, least recently used first out;
 * a repository with more tags than the whole budget is marked oversized, and the index then reads its
 * pages from the database range by range instead of reading the whole list for each.
 *
 * Freshness. A list is dropped when a change to its repository's tags or to the repository has been
 * written to the database (`invalidate`, called by the index after each refresh, before the change's
 * request is answered), and everything is dropped whenever the index stops being ready (`clear`). A
 * read of the database that began before an invalidation may end after it with the old list; such a
 * fill is discarded, not kept, so what is kept was read after the last write. Concurrent misses of one
 * repository share one read.
 */

/** Reads a repository's whole sorted tag list from the database; undefined when the index cannot vouch. */
export type ReadTags = () => Promise<readonly string[] | undefined>;

export interface TagLists {
  /** The sorted list of `repo`, from memory or read once through `read` and kept. */
  get(repo: string, read: ReadTags): Promise<readonly string[] | undefined>;
  /** True once `repo` was found to hold more tags than the budget (for the life of the process): read it by ranges, not whole. */
  oversized(repo: string): boolean;
  /** Forgets `repo`'s list and discards any read of it under way. */
  invalidate(repo: string): void;
  /** Forgets every list and discards every read under way. */
  clear(): void;
  /** Tags held now, over all lists (for tests and metrics). */
  readonly held: number;
}

/** A read under way; `current` turns false when the list changes before it ends. */
class Fill {
  current = true;
  readonly list: Promise<readonly string[] | undefined>;

  /** Starts `read`; `settle` runs once it ends, whether it answered or failed. */
  constructor(read: ReadTags, settle: (fill: Fill, list: readonly string[] | undefined) => void) {
    this.list = (async () => {
      let list: readonly string[] | undefined;
      try {
        list = await read();
        return list;
      } finally {
        settle(this, list);
      }
    })();
  }
}

/** At most `budget` tags are held (a longer list is served once, not kept, and its repository marked oversized). */
export function createTagLists(budget: number): TagLists {
  /** Lists by repository, least recently used first (a Map iterates in insertion order). */
  const lists = new Map<string, readonly string[]>();
  const fills = new Map<string, Fill>();
  const tooLong = new Set<string>();
  let held = 0;

  const forget = (repo: string): void => {
    const list = lists.get(repo);
    if (list === undefined) return;
    lists.delete(repo);
    held -= list.length;
  };

  const keep = (repo: string, list: readonly string[]): void => {
    if (list.length > budget) {
      tooLong.add(repo);
      return;
    }
    forget(repo);
    for (const [oldest, old] of lists) {
      if (held + list.length <= budget) break;
      lists.delete(oldest);
      held -= old.length;
    }
    lists.set(repo, list);
    held += list.length;
  };

  const fill = (repo: string, read: ReadTags): Fill => {
    const started = new Fill(read, (done, list) => {
      if (fills.get(repo) === done) fills.delete(repo);
      if (done.current && list !== undefined) keep(repo, list);
    });
    fills.set(repo, started);
    return started;
  };

  return {
    get(repo, read) {
      const list = lists.get(repo);
      if (list !== undefined) {
        // Most recently used goes last.
        lists.delete(repo);
        lists.set(repo, list);
        return Promise.resolve(list);
      }
      return (fills.get(repo) ?? fill(repo, read)).list;
    },
    oversized: (repo) => tooLong.has(repo),
    invalidate(repo) {
      forget(repo);
      const under = fills.get(repo);
      if (under === undefined) return;
      under.current = false;
      fills.delete(repo);
    },
    clear() {
      lists.clear();
      held = 0;
      for (const f of fills.values()) f.current = false;
      fills.clear();
    },
    get held() {
      return held;
    },
  };
}
