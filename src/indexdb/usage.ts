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
import { type LinkHow, costKey, lastField, linkKey, linkKeyFields, linkPrefixRange, linkRange, repoPrefixRange, tagRange, userKey, userRange } from './keys.js';
import { eachLimited } from './rebuild.js';

/** A `c` entry: the blob's size (0 when it has no data) and whether two or more repositories link it. */
export interface BlobCost {
  readonly size: number;
  readonly shared: boolean;
}

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

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
  for await (const key of db.keys(userRange())) {
    const { first, second } = linkKeyFields(key);
    const last = linked.at(-1);
    const d = parseDigest(first);
    if (last?.d === first) last.shared ||= second !== repo;
    else if (d !== undefined) linked.push({ d, shared: false });
    repo = second;
  }
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

/** The figures of `repo` (which the index knows): its links, its tags, the costs of its blobs. */
export async function figuresOf(db: IndexLevel, repo: RepoName): Promise<UsageFigures> {
  const digests: string[] = [];
  let manifests = 0;
  for (const key of await db.keys(linkRange(repo)).all()) {
    const { second: d, how } = linkKeyFields(key);
    if (how === 'revision') manifests += 1;
    if (digests.at(-1) !== d) digests.push(d); // a blob's keys are adjacent (digest order)
  }
  const costs = digests.length === 0 ? [] : await db.getMany(digests.map(costKey));
  let logicalBytes = 0;
  let sharedBytes = 0;
  for (const cost of costs) {
    if (!isBlobCost(cost)) continue;
    logicalBytes += cost.size;
    if (cost.shared) sharedBytes += cost.size;
  }
  const tags = (await db.keys(tagRange(repo, {})).all()).length;
  return { name: repo, logicalBytes, sharedBytes, exclusiveBytes: logicalBytes - sharedBytes, tags, manifests };
}

/** How many repository names a page of usages reads at a time. */
const NAMES_AT_ONCE = 100;

/**
 * Repositories starting with `prefix` after `after` that `include` admits, at most `limit`, in name
 * order; `figures` gives each one's (undefined when it cannot: the whole page is then undefined).
 */
export async function usagePage(
  db: IndexLevel,
  query: { prefix: string; after: string | undefined; limit: number; include: ((name: string) => boolean) | undefined },
  figures: (repo: RepoName) => Promise<UsageFigures | undefined>,
): Promise<UsageFigures[] | undefined> {
  const page: UsageFigures[] = [];
  let after = query.after;
  while (page.length < query.limit) {
    const names = (await db.keys(repoPrefixRange(query.prefix, after, NAMES_AT_ONCE)).all()).map(lastField);
    const wanted = names.filter((name) => query.include?.(name) ?? true).slice(0, query.limit - page.length);
    const got = await Promise.all(wanted.map((name) => figures(storedName(name))));
    for (const f of got) {
      if (f === undefined) return undefined;
      page.push(f);
    }
    if (names.length < NAMES_AT_ONCE) break;
    after = names.at(-1);
  }
  return page;
}

/** The distinct blobs the repositories of `scope` link, with their total size, and how many repositories it holds. */
export async function scopeUsageOf(db: IndexLevel, scope: RepoScope): Promise<ScopeUsage> {
  const accepted = acceptor(scope);
  const digests = new Set<string>();
  for await (const key of db.keys(linkPrefixRange(scope.prefix))) {
    const { first: repo, second: d } = linkKeyFields(key);
    if (accepted(repo)) digests.add(d);
  }
  let repositories = 0;
  for await (const key of db.keys(repoPrefixRange(scope.prefix, undefined))) if (accepted(lastField(key))) repositories += 1;
  const costs = digests.size === 0 ? [] : await db.getMany([...digests].map(costKey));
  const bytes = costs.reduce((sum: number, cost) => sum + (isBlobCost(cost) ? cost.size : 0), 0);
  return { bytes, repositories };
}

/** Whether some repository of `scope` links blob `d`. */
export async function scopeLinksOf(db: IndexLevel, scope: RepoScope, d: Digest): Promise<boolean> {
  const accepted = acceptor(scope);
  for await (const key of db.keys(userRange(d))) if (accepted(linkKeyFields(key).second)) return true;
  return false;
}

/** `scope.accepts` asked once per repository of a run of keys sorted by repository. */
function acceptor(scope: RepoScope): (repo: string) => boolean {
  let last: { repo: string; ok: boolean } | undefined;
  return (repo) => {
    if (last?.repo !== repo) last = { repo, ok: repo.startsWith(scope.prefix) && scope.accepts(storedName(repo)) };
    return last.ok;
  };
}
