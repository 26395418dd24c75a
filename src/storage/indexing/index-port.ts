/**
 * The port between storage and a derived index (the LevelDB index of `src/indexdb/`, issue #5).
 * Storage depends on these interfaces only; it never imports an index implementation.
 *
 * The contract, in three rules:
 * 1. The layout is the truth. An index answers `repositories`, `tags` and `referrers` only when it can
 *    vouch for the answer; `undefined` means "not trustworthy right now, ask storage", and storage then
 *    walks the tree exactly as it does without an index. No index, or a failing one, changes nothing.
 *    Usage figures (`usage`, `usages`, `scopeUsage`, `scopeLinks`) follow the same rule, except that
 *    storage has no walk for them: the management API answers UNAVAILABLE instead (management.ts).
 * 2. Storage tells the index WHAT changed, never what it changed TO. Every driver write under the layout
 *    (`index-observer.ts`) is followed, once the write has settled, by `onChange` naming the tag,
 *    revision, layer link, repository or blob it touched, and the index re-reads that item from storage through an
 *    {@link IndexSource}. Two requests racing on one tag may report their changes in either order; an
 *    index that applies changes in arrival order would keep the loser's value, while an index that
 *    re-reads (one item at a time) ends with what storage holds, because its last read of an item
 *    comes after the last write to it.
 * 3. `onChange` resolves once the index reflects storage for that item (or has stopped answering), so
 *    a request that wrote something and got its answer sees its own write in the next listing. It never
 *    rejects on purpose; if it does, or a query rejects, {@link guardIndex} stops consulting the index
 *    for the life of the process.
 */
import type { Digest } from '../digest.js';
import type { CallOptions } from '../driver/driver.js';
import type { RepoName, Tag } from '../reference.js';

export type { RepoName, Tag };
import type { ReferrerDescriptor } from '../manifests/referrers.js';
import type { RepoUsage, UsageQuery } from '../management/management-face.js';

export type { UsageQuery };

/** The usage figures an index keeps of one repository (the times come from elsewhere). */
export type UsageFigures = Omit<RepoUsage, 'lastPush' | 'lastPull'>;

/**
 * A set of repositories (a quota's glob): every name starting with `prefix` that `accepts` admits.
 * `prefix` only narrows the range an index reads; `accepts` decides.
 */
export interface RepoScope {
  readonly prefix: string;
  accepts(name: RepoName): boolean;
}

/** What the repositories of a {@link RepoScope} take together. */
export interface ScopeUsage {
  /** The sizes of the distinct blobs (layers, configs, manifests) they link, each counted once. */
  readonly bytes: number;
  readonly repositories: number;
}

/** A slice of a sorted listing: names strictly after `after` (when given), at most `limit` of them. */
export interface ListRange {
  readonly after?: string | undefined;
  readonly limit?: number | undefined;
}

/** A referrer as the referrers API lists it (the same shape storage answers). */
export type IndexedReferrer = ReferrerDescriptor;

/**
 * Something in the layout that may have changed. Names are repository names and tags as they appear
 * in the tree (through Berth's API they are always valid ones).
 * - `repository`: whether `repo` is a repository (its directory holds `_layers` or `_manifests`).
 * - `tag`: whether the tag exists and what its `current/link` holds (also implies `repository`).
 * - `revision`: whether the manifest revision exists, and so whether it lists as a referrer (and
 *   counts in the repository's usage).
 * - `layer`: whether the repository links blob `digest` in `_layers` (its usage; also implies `repository`).
 * - `blob`: the global blob's data (blob descriptors are hints; nothing is answered from them).
 * - `contents`: a whole folder of one repository (`_manifests`, `_layers`, the tags or revisions
 *   folder) was written or removed, as a repository delete does: every tag, revision and layer link
 *   of `repo` may have changed (and whether it is a repository). An index re-reads each of them, those
 *   it holds and those storage holds, one item at a time as for the kinds above.
 * - `everything`: a change the index cannot attribute (a repository directory itself, a folder of
 *   repositories or the tree above them removed or moved): only a full rebuild makes the index
 *   trustworthy again.
 */
export type IndexChange =
  | { readonly kind: 'repository'; readonly repo: RepoName }
  | { readonly kind: 'tag'; readonly repo: RepoName; readonly tag: Tag }
  | { readonly kind: 'revision'; readonly repo: RepoName; readonly digest: Digest }
  | { readonly kind: 'layer'; readonly repo: RepoName; readonly digest: Digest }
  | { readonly kind: 'blob'; readonly digest: Digest }
  | { readonly kind: 'contents'; readonly repo: RepoName }
  | { readonly kind: 'everything' };

export interface RegistryIndex {
  /** Repository names in code-unit order within `range`, or undefined when the index cannot vouch. */
  repositories(range: ListRange): Promise<readonly string[] | undefined>;
  /**
   * Tag names of `repo` in code-unit order within `range` ([] for a repository without tags), or
   * undefined when the index cannot vouch, including when it does not know `repo` (storage then decides
   * between [] and NAME_UNKNOWN).
   */
  tags(repo: RepoName, range: ListRange): Promise<readonly string[] | undefined>;
  /** Referrers of `subject` in `repo`, sorted by digest, or undefined when the index cannot vouch. */
  referrers(repo: RepoName, subject: Digest): Promise<IndexedReferrer[] | undefined>;
  /** Called after a storage write to `change` has settled (succeeded or failed); see rule 3 above. */
  onChange(change: IndexChange): Promise<void>;
  /** What `repo` costs (management-face.ts RepoUsage), or undefined when the index cannot vouch or does not know `repo`. */
  usage?(repo: RepoName): Promise<UsageFigures | undefined>;
  /** Usage of a page of repositories, sorted by name, or undefined when the index cannot vouch. */
  usages?(query: UsageQuery): Promise<UsageFigures[] | undefined>;
  /** What the repositories of `scope` take together (quotas), or undefined when the index cannot vouch. */
  scopeUsage?(scope: RepoScope): Promise<ScopeUsage | undefined>;
  /** Whether some repository of `scope` links blob `d` (a layer or manifest link), undefined as above. */
  scopeLinks?(scope: RepoScope, d: Digest): Promise<boolean | undefined>;
  /**
   * The tags of `repo` within `range` with what each names (`digest` undefined when its link is broken),
   * in code-unit order; undefined as for `tags`. (The web UI's tag list: one range read.)
   */
  tagTargets?(repo: RepoName, range: ListRange): Promise<TagTarget[] | undefined>;
  /** What the index was told of blob or manifest `d` (size, media type), a hint; undefined when nothing. */
  descriptorOf?(d: Digest): Promise<Omit<BlobDescriptor, 'digest'> | undefined>;
}

/** A tag and the manifest its current link names (undefined when the link is missing or broken). */
export interface TagTarget {
  readonly tag: string;
  readonly digest: Digest | undefined;
}

/** A blob descriptor as a manifest or the blob store gives it. */
export interface BlobDescriptor {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType?: string;
}

/** What the index keeps of one manifest revision. */
export interface RevisionFacts {
  /** How the manifest lists among the referrers of its subject, when it has one. */
  readonly referrer?: { readonly subject: Digest; readonly descriptor: IndexedReferrer };
  /** Descriptors the manifest gives: of itself and of the blobs and manifests it names. */
  readonly blobs: readonly BlobDescriptor[];
}

/**
 * What an index reads from storage, bypassing any index: the same walk storage answers from, one item
 * at a time. `index-source.ts` implements it over a driver.
 */
export interface IndexSource {
  /** Every repository name, sorted (the catalog walk). */
  repositories(o?: CallOptions): Promise<RepoName[]>;
  repositoryExists(repo: RepoName, o?: CallOptions): Promise<boolean>;
  /** Every tag folder name of `repo`, sorted ([] when there are none). */
  tagNames(repo: RepoName, o?: CallOptions): Promise<Tag[]>;
  /** Whether the tag's folder exists (a tag lists whatever its `current/link` holds). */
  tagExists(repo: RepoName, tag: Tag, o?: CallOptions): Promise<boolean>;
  /** The digest the tag's `current/link` holds, or undefined when it is missing, empty or not a digest. */
  tagTarget(repo: RepoName, tag: Tag, o?: CallOptions): Promise<Digest | undefined>;
  /** Every manifest revision of `repo` (the folders under `_manifests/revisions`), in no particular order. */
  revisions(repo: RepoName, o?: CallOptions): AsyncIterable<Digest>;
  revisionExists(repo: RepoName, d: Digest, o?: CallOptions): Promise<boolean>;
  /** Every blob `repo` links in `_layers` (the folders `_layers/<alg>/<hex>`), in no particular order. */
  layers(repo: RepoName, o?: CallOptions): AsyncIterable<Digest>;
  /** Whether `repo` links blob `d` in `_layers` (its folder `_layers/<alg>/<hex>` exists). */
  layerExists(repo: RepoName, d: Digest, o?: CallOptions): Promise<boolean>;
  /** The modification time of the revision's link (ms since the epoch), or undefined when it has none. */
  revisionLinkTime(repo: RepoName, d: Digest, o?: CallOptions): Promise<number | undefined>;
  /** What the stored manifest `d` says, as the referrers walk reads it; {blobs: []} when unreadable. */
  revisionFacts(d: Digest, o?: CallOptions): Promise<RevisionFacts>;
  /** The global blob's size, or undefined when it has no data. */
  blob(d: Digest, o?: CallOptions): Promise<{ size: number } | undefined>;
}

/** An index as storage uses it: every call safe, `undefined` whenever the index cannot help. */
export interface GuardedIndex {
  readonly active: boolean;
  usage(repo: RepoName): Promise<UsageFigures | undefined>;
  usages(query: UsageQuery): Promise<UsageFigures[] | undefined>;
  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined>;
  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined>;
  repositories(range: ListRange): Promise<readonly string[] | undefined>;
  tags(repo: RepoName, range: ListRange): Promise<readonly string[] | undefined>;
  tagTargets(repo: RepoName, range: ListRange): Promise<TagTarget[] | undefined>;
  descriptorOf(d: Digest): Promise<Omit<BlobDescriptor, 'digest'> | undefined>;
  referrers(repo: RepoName, subject: Digest): Promise<IndexedReferrer[] | undefined>;
  onChange(change: IndexChange): Promise<void>;
}

/**
 * Wraps `index` so that nothing it does can fail a request: the first rejection from any of its calls
 * (a broken promise of the port) turns it off for good, and storage answers from the walk from then on.
 */
export function guardIndex(index: RegistryIndex | undefined): GuardedIndex {
  let on = index !== undefined;
  const ask = async <T>(q: (i: RegistryIndex) => Promise<T | undefined>): Promise<T | undefined> => {
    if (!on || index === undefined) return undefined;
    try {
      return await q(index);
    } catch {
      on = false;
      return undefined;
    }
  };
  return {
    get active() {
      return on;
    },
    repositories: (range) => ask((i) => i.repositories(range)),
    tags: (repo, range) => ask((i) => i.tags(repo, range)),
    referrers: (repo, subject) => ask((i) => i.referrers(repo, subject)),
    usage: (repo) => ask((i) => i.usage?.(repo) ?? Promise.resolve(undefined)),
    usages: (query) => ask((i) => i.usages?.(query) ?? Promise.resolve(undefined)),
    scopeUsage: (scope) => ask((i) => i.scopeUsage?.(scope) ?? Promise.resolve(undefined)),
    scopeLinks: (scope, d) => ask((i) => i.scopeLinks?.(scope, d) ?? Promise.resolve(undefined)),
    tagTargets: (repo, range) => ask((i) => i.tagTargets?.(repo, range) ?? Promise.resolve(undefined)),
    descriptorOf: (d) => ask((i) => i.descriptorOf?.(d) ?? Promise.resolve(undefined)),
    onChange: async (change) => {
      await ask(async (i) => {
        await i.onChange(change);
        return undefined;
      });
    },
  };
}

/** The part of a sorted list that `range` selects: `sorted` itself when that is all of it. */
export function sliceSorted(sorted: readonly string[], range: ListRange): readonly string[] {
  const { after, limit } = range;
  const from = after === undefined || after === '' ? 0 : firstAfter(sorted, after);
  const to = limit === undefined ? sorted.length : Math.min(sorted.length, from + Math.max(0, limit));
  return from === 0 && to === sorted.length ? sorted : sorted.slice(from, to);
}

/** The index of the first entry of `sorted` greater than `after` (its length when none is). */
function firstAfter(sorted: readonly string[], after: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) > after) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
