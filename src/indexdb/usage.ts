/**
 * The usage tables of the index (keys.ts `l`, `u`, `c`) and the figures answered from them: what each
 * repository links (`l`), who links each blob (`u`), and each linked blob's size and whether two or
 * more repositories link it (`c`). Like every other table they are derived from the layout: the rebuild
 * walk writes `l` and `u` for every `_layers` link and manifest revision and then `c` for every linked
 * blob (`writeCosts`); a change re-reads one link (refresh.ts `linkOps`) and then recounts that blob
 * (`refreshCost`, one at a time per blob in the index's key queue, after the link's write, so the last
 * recount of a blob reads the last state of its links and of its data).
 *
 * A repository's figures are then two range reads and one multi-get: its links, its tags, the costs of
 * its distinct blobs. `logicalBytes` sums the sizes of those blobs, `sharedBytes` those another
 * repository links too, `exclusiveBytes` the rest (what deleting the repository frees at the next
 * collection). A blob linked but without data costs nothing (there is nothing to free); a link whose
 * blob has not been recounted yet (for the instant between the link's write and its recount) also
 * counts 0 bytes.
 */
import { type Digest, parseDigest } from '../storage/digest.js';
import type { CallOptions } from '../storage/driver/driver.js';
import type { IndexSource, RepoName, RepoScope, ScopeUsage, UsageFigures } from '../storage/indexing/index-port.js';
import type { IndexLevel } from './entries.js';
import { type LinkHow, type PrefixRange, costKey, lastField, linkKey, linkKeyFields, linkPrefixRange, repoOfKey, repoPrefixRange, repoSpan, userKey, userRange } from './keys.js';
import { eachLimited } from './rebuild.js';

/** A `c` entry: the blob's size (0 when it has no data) and whether two or more repositories link it. */
export interface BlobCost {
  readonly size: number;
  readonly shared: boolean;
}

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

/** How many keys a long range read takes at a time. */
const KEYS_AT_ONCE = 1000;

/** Each key of `range`, read in batches (a scope or the whole `u` table can be large: never all at once). */
async function eachKey(db: IndexLevel, range: PrefixRange, fn: (key: string) => boolean | void): Promise<void> {
  const keys = db.keys(range);
  try {
    for (let batch = await keys.nextv(KEYS_AT_ONCE); batch.length > 0; batch = await keys.nextv(KEYS_AT_ONCE)) {
      for (const key of batch) if (fn(key) === false) return;
    }
  } finally {
    await keys.close();
  }
}

/** How many blobs the rebuild stats at once. */
const STATS_AT_ONCE = 16;

export function isBlobCost(v: unknown): v is BlobCost {
  return typeof v === 'object' && v !== null && typeof (v as { size?: unknown }).size === 'number';
}

/**
 * A repository name read back from a key. Every `r`, `l` and `u` key was written from a RepoName the
 * IndexSource gave (read from the tree as paths.ts brands names), so the key holds one.
 */
export function storedName(key: string): RepoName {
  return key as RepoName;
}

/** The writes that record whether `repo` links `d` in the way `how` (both directions). */
export function linkOps(repo: RepoName, d: Digest, how: LinkHow, linked: boolean): Op[] {
  const keys = [linkKey(repo, d, how), userKey(d, repo, how)];
  return keys.map((key): Op => (linked ? { type: 'put', key, value: 1 } : { type: 'del', key }));
}

/** Recounts blob `d`'s cost from its `u` keys and its data (run in the blob's queue slot). */
export async function refreshCost(db: IndexLevel, source: IndexSource, d: Digest): Promise<void> {
  // Keys are ordered by repository and a repository has at most two (layer, revision): three keys
  // are enough to tell one linking repository from two or more.
  const users = await db.keys(userRange(d, 3)).all();
  if (users.length === 0) return db.del(costKey(d));
  const repos = new Set(users.map((key) => linkKeyFields(key).second));
  const blob = await source.blob(d);
  const cost: BlobCost = { size: blob?.size ?? 0, shared: repos.size > 1 };
  return db.put(costKey(d), cost);
}

/** After the rebuild walk wrote every link: writes the cost of every linked blob. Answers how many. */
export async function writeCosts(db: IndexLevel, source: IndexSource, o: CallOptions): Promise<number> {
  const linked: { d: Digest; shared: boolean }[] = [];
  let repo = '';
  await eachKey(db, userRange(), (key) => {
    const { first, second } = linkKeyFields(key);
    const last = linked.at(-1);
    const d = parseDigest(first);
    if (last?.d === first) last.shared ||= second !== repo;
    else if (d !== undefined) linked.push({ d, shared: false });
    repo = second;
  });
  const ops: Op[] = [];
  await eachLimited(linked, STATS_AT_ONCE, async ({ d, shared }) => {
    o.signal?.throwIfAborted();
    const blob = await source.blob(d, o);
    const cost: BlobCost = { size: blob?.size ?? 0, shared };
    ops.push({ type: 'put', key: costKey(d), value: cost });
  });
  for (let i = 0; i < ops.length; i += 1000) await db.batch(ops.slice(i, i + 1000));
  return linked.length;
}

/** What a page's range reads gather of one repository. */
interface RepoLinks {
  /** The distinct blobs it links, in digest order. */
  readonly digests: string[];
  manifests: number;
  tags: number;
}

/**
 * The figures of `repos` (which the index knows), in their order: three range reads over the span
 * from the first to the last of them in key order (their links, their tags), then one multi-get of
 * the costs of their blobs, however many they are. Repositories between them that are not asked for
 * are read past (a page filtered by `include` may read more than it answers).
 */
export async function figuresOf(db: IndexLevel, repos: readonly RepoName[]): Promise<UsageFigures[]> {
  if (repos.length === 0) return [];
  const wanted = new Map<string, RepoLinks>(repos.map((name) => [name, { digests: [], manifests: 0, tags: 0 }]));
  const sorted = [...wanted.keys()].sort();
  const first = sorted[0] ?? '';
  const last = sorted.at(-1) ?? '';
  for (const key of await db.keys(repoSpan('l', first, last)).all()) {
    const { first: repo, second: d, how } = linkKeyFields(key);
    const w = wanted.get(repo);
    if (w === undefined) continue;
    if (how === 'revision') w.manifests += 1;
    if (w.digests.at(-1) !== d) w.digests.push(d); // a blob's keys are adjacent (digest order)
  }
  for (const key of await db.keys(repoSpan('t', first, last)).all()) {
    const w = wanted.get(repoOfKey(key));
    if (w !== undefined) w.tags += 1;
  }
  const digests = [...new Set([...wanted.values()].flatMap((w) => w.digests))];
  const values = digests.length === 0 ? [] : await db.getMany(digests.map(costKey));
  const costs = new Map<string, BlobCost>();
  digests.forEach((d, i) => {
    const cost = values[i];
    if (isBlobCost(cost)) costs.set(d, cost);
  });
  return repos.map((name) => {
    const w = wanted.get(name) ?? { digests: [], manifests: 0, tags: 0 };
    let logicalBytes = 0;
    let sharedBytes = 0;
    for (const d of w.digests) {
      const cost = costs.get(d);
      logicalBytes += cost?.size ?? 0;
      if (cost?.shared === true) sharedBytes += cost.size;
    }
    return { name, logicalBytes, sharedBytes, exclusiveBytes: logicalBytes - sharedBytes, tags: w.tags, manifests: w.manifests };
  });
}

/** How many repository names a page of usages reads at a time. */
const NAMES_AT_ONCE = 500;

/**
 * Repositories starting with `prefix` after `after` that `include` admits, at most `limit`, in name
 * order; `trusted` says whether the index may answer for each (the whole page is undefined if not).
 */
export async function usagePage(
  db: IndexLevel,
  query: { prefix: string; after: string | undefined; limit: number; include: ((name: string) => boolean) | undefined },
  trusted: (repo: string) => boolean,
): Promise<UsageFigures[] | undefined> {
  const page: UsageFigures[] = [];
  let after = query.after;
  while (page.length < query.limit) {
    const names = (await db.keys(repoPrefixRange(query.prefix, after, NAMES_AT_ONCE)).all()).map(lastField);
    const wanted = names.filter((name) => query.include?.(name) ?? true).slice(0, query.limit - page.length);
    if (!wanted.every(trusted)) return undefined;
    page.push(...(await figuresOf(db, wanted.map(storedName))));
    if (names.length < NAMES_AT_ONCE) break;
    after = names.at(-1);
  }
  return page;
}

/** The distinct blobs the repositories of `scope` link, with their total size, and how many repositories it holds. */
export async function scopeUsageOf(db: IndexLevel, scope: RepoScope): Promise<ScopeUsage> {
  const accepted = acceptor(scope);
  const digests = new Set<string>();
  await eachKey(db, linkPrefixRange(scope.prefix), (key) => {
    const { first: repo, second: d } = linkKeyFields(key);
    if (accepted(repo)) digests.add(d);
  });
  let repositories = 0;
  await eachKey(db, repoPrefixRange(scope.prefix, undefined), (key) => {
    if (accepted(lastField(key))) repositories += 1;
  });
  const costs = digests.size === 0 ? [] : await db.getMany([...digests].map(costKey));
  const bytes = costs.reduce((sum: number, cost) => sum + (isBlobCost(cost) ? cost.size : 0), 0);
  return { bytes, repositories };
}

/** Whether some repository of `scope` links blob `d`. */
export async function scopeLinksOf(db: IndexLevel, scope: RepoScope, d: Digest): Promise<boolean> {
  const accepted = acceptor(scope);
  let found = false;
  await eachKey(db, userRange(d), (key) => {
    found = accepted(linkKeyFields(key).second);
    return !found;
  });
  return found;
}

/** `scope.accepts` asked once per repository of a run of keys sorted by repository. */
function acceptor(scope: RepoScope): (repo: string) => boolean {
  let last: { repo: string; ok: boolean } | undefined;
  return (repo) => {
    if (last?.repo !== repo) last = { repo, ok: repo.startsWith(scope.prefix) && scope.accepts(storedName(repo)) };
    return last.ok;
  };
}
