/**
 * The rebuild walk: reads the whole layout through an IndexSource (the very walk storage answers from)
 * and writes every entry into an empty database in batches. It decides no trust by itself; index-db.ts
 * runs it, merges the changes that arrived meanwhile, and only then trusts the result.
 *
 * A damaged tree is indexed as the walk sees it: a tag whose `current/link` is empty lists (its entry
 * holds ''), a revision whose manifest is missing or does not parse is no referrer. What the index
 * cannot hold faithfully is left to storage instead: a repository or tag name the keys cannot order
 * (keys.ts), a tag list or manifest that cannot be read. Those repositories (or the whole catalog)
 * are recorded as distrusted, and listings for them are answered by the walk, as without an index.
 */
import type { Digest } from '../storage/digest.js';
import type { CallOptions } from '../storage/driver/driver.js';
import type { IndexSource, RepoName } from '../storage/indexing/index-port.js';
import { type Distrust, type IndexLevel, putBlobHints } from './entries.js';
import { type LinkHow, isIndexable, linkKey, referrerKey, repoKey, subjectKey, tagKey, timeKey, userKey } from './keys.js';

/** How many repositories, tags and manifests the walk reads at once. */
const REPOS_AT_ONCE = 4;
const ITEMS_AT_ONCE = 16;
const BATCH = 1000;

/** What the walk wrote. */
export interface WalkCounts {
  repositories: number;
  tags: number;
  referrers: number;
  /** Blob descriptors written (one per descriptor a manifest gives, repeats included). */
  blobs: number;
  /** Revisions whose push time was missing and taken from their link's modification time. */
  linkTimes: number;
  /** Blob links (`_layers` links and manifest revisions) recorded for usage (usage.ts). */
  links: number;
}

type Op = { type: 'put'; key: string; value: unknown };

/**
 * Writes every entry the layout implies into `db` (which the caller has emptied but for the times
 * table), and records in `distrust` what it could not index faithfully. A revision with no times
 * entry gets one with its link's modification time as its push time; `o.seen` collects the times key
 * of every revision walked, so that the caller can drop the entries of revisions that are gone.
 */
export async function walkInto(
  db: IndexLevel,
  source: IndexSource,
  distrust: Distrust,
  o: CallOptions & { warn: (msg: string, fields: Record<string, unknown>) => void; seen: Set<string> },
): Promise<WalkCounts> {
  const result: WalkCounts = { repositories: 0, tags: 0, referrers: 0, blobs: 0, linkTimes: 0, links: 0 };
  let ops: Op[] = [];
  const put = async (key: string, value: unknown): Promise<void> => {
    o.signal?.throwIfAborted();
    ops.push({ type: 'put', key, value });
    if (ops.length >= BATCH) await flush();
  };
  const flush = async (): Promise<void> => {
    const now = ops;
    ops = [];
    if (now.length > 0) await db.batch(now);
  };
  const call: CallOptions = o.signal ? { signal: o.signal } : {};

  const tagsOf = async (repo: RepoName): Promise<void> => {
    const names = await source.tagNames(repo, call);
    if (!names.every(isIndexable)) {
      o.warn('index: a tag name cannot be indexed; its repository lists tags from storage', { repository: repo });
      distrust.repos.add(repo);
      return;
    }
    await eachLimited(names, ITEMS_AT_ONCE, async (tag) => {
      await put(tagKey(repo, tag), (await source.tagTarget(repo, tag, call)) ?? '');
      result.tags += 1;
    });
  };

  const link = async (repo: RepoName, d: Digest, how: LinkHow): Promise<void> => {
    await put(linkKey(repo, d, how), 1);
    await put(userKey(d, repo, how), 1);
    result.links += 1;
  };

  const layersOf = async (repo: RepoName): Promise<void> => {
    for await (const d of source.layers(repo, call)) await link(repo, d, 'layer');
  };

  const revisionsOf = async (repo: RepoName): Promise<void> => {
    const revisions: Digest[] = [];
    for await (const d of source.revisions(repo, call)) revisions.push(d);
    await eachLimited(revisions, ITEMS_AT_ONCE, async (d) => {
      const facts = await source.revisionFacts(d, call);
      await link(repo, d, 'revision');
      if (facts.referrer) {
        await put(referrerKey(repo, facts.referrer.subject, d), facts.referrer.descriptor);
        await put(subjectKey(repo, d), facts.referrer.subject);
        result.referrers += 1;
      }
      const hints = await putBlobHints(facts, put);
      result.blobs += hints;
      o.seen.add(timeKey(repo, d));
      if ((await db.get(timeKey(repo, d))) === undefined) {
        const pushedAt = await source.revisionLinkTime(repo, d, call);
        if (pushedAt !== undefined) await put(timeKey(repo, d), { pushedAt });
        result.linkTimes += 1;
      }
    });
  };

  const names = await source.repositories(call);
  await eachLimited(names, REPOS_AT_ONCE, async (repo) => {
    if (!isIndexable(repo)) {
      o.warn('index: a repository name cannot be indexed; the catalog is listed from storage', { repository: repo });
      distrust.catalog = true;
      distrust.usage = true;
      return;
    }
    await put(repoKey(repo), 1);
    result.repositories += 1;
    // One unreadable repository leaves its own listings to storage, not the whole index; usage
    // figures depend on every repository's links, so missing links turn them all off.
    for (const part of [tagsOf, revisionsOf, layersOf]) {
      try {
        await part(repo);
      } catch (err) {
        if (o.signal?.aborted) throw err;
        o.warn('index: part of a repository could not be read; its listings come from storage', { repository: repo, err });
        distrust.repos.add(repo);
        if (part !== tagsOf) distrust.usage = true;
      }
    }
  });
  await flush();
  return result;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. After a failure no new item starts; it settles
 * once every started item has, then rejects with the first failure (so nothing writes afterwards).
 */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const item = items[next] as T;
      next += 1;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}
