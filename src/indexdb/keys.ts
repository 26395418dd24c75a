/**
 * The key layout of the index database. LevelDB orders keys by their bytes, so every key is a one-letter
 * table name and its fields joined by NUL: all keys of one repository (or one subject) are contiguous,
 * and for names of printable ASCII (every valid repository name, tag and digest) byte order is the
 * distribution-spec's lexical (code-unit) order. A page after `last` is then one range read:
 * `gt: prefix + last, lt: prefix-end`, `limit: n`.
 *
 *   m NUL generation                          → GenerationRecord
 *   r NUL <repo>                              → 1                        (the catalog)
 *   t NUL <repo> NUL <tag>                    → digest | ''              (tags; '' when current/link is broken)
 *   f NUL <repo> NUL <subject> NUL <digest>   → IndexedReferrer          (referrers, in digest order)
 *   s NUL <repo> NUL <digest>                 → subject                  (which `f` key a revision owns)
 *   b NUL <digest>                            → {size, mediaType?}       (blob descriptors, hints)
 *   p NUL <repo> NUL <digest>                 → {pushedAt?, pulledAt?}   (push and pull times, times.ts)
 *   l NUL <repo> NUL <digest> NUL <how>       → 1                        (usage: the blobs a repository links)
 *   u NUL <digest> NUL <repo> NUL <how>       → 1                        (usage: the repositories linking a blob)
 *   c NUL <digest>                            → BlobCost                 (usage: a linked blob's size, shared or not)
 *
 * `how` is `layer` (a `_layers` link) or `revision` (a manifest revision); a blob linked both ways has
 * two keys, each written only by the refresh of its own link, so neither refresh rewrites the other's.
 * `c` exists for every blob some repository links: its size as the global blob data says (usage.ts).
 *
 * Every table but `p` is derived from the layout and emptied by each rebuild; `p` holds what the
 * layout cannot give back (pull times, exact push times), so a rebuild keeps it, fills in what is
 * missing and drops what no longer exists (times.ts).
 *
 * A name holding anything outside printable ASCII (possible only in a tree written by something other
 * than Berth) would break both the separators and the order; `isIndexable` says so, and the index then
 * declines to answer for it rather than answer in the wrong order.
 */
import type { Digest } from '../storage/digest.js';
import type { ListRange } from '../storage/indexing/index-port.js';

const SEP = '\x00';
/** One past SEP: the end of every "prefix + SEP" range. */
const END = '\x01';

/** Options of a LevelDB range read. */
export interface RangeOptions {
  readonly gt: string;
  readonly lt: string;
  readonly limit?: number;
}

export const GENERATION_KEY = `m${SEP}generation`;

/** True when `s` can be a key field: non-empty printable ASCII. */
export function isIndexable(s: string): boolean {
  return /^[\x20-\x7e]+$/.test(s);
}

export const repoKey = (repo: string): string => `r${SEP}${repo}`;
export const tagKey = (repo: string, tag: string): string => `t${SEP}${repo}${SEP}${tag}`;
export const referrerKey = (repo: string, subject: Digest, d: Digest): string => `f${SEP}${repo}${SEP}${subject}${SEP}${d}`;
export const subjectKey = (repo: string, d: Digest): string => `s${SEP}${repo}${SEP}${d}`;
export const blobKey = (d: Digest): string => `b${SEP}${d}`;
export const timeKey = (repo: string, d: Digest): string => `p${SEP}${repo}${SEP}${d}`;

/** The key-queue slot of a `contents` change (refresh.ts): never stored, so outside every table. */
export const contentsKey = (repo: string): string => `*${SEP}${repo}`;

/** Every `s` key of `repo`: the revisions of it that are referrers. */
export function subjectRange(repo: string): RangeOptions {
  return within(`s${SEP}${repo}${SEP}`, `s${SEP}${repo}${END}`, {});
}

/** The ranges a rebuild empties: every table but the times (`p`). */
export const REBUILT_RANGES: readonly { gte?: string; lt?: string }[] = [{ lt: 'p' }, { gte: 'q' }];

/** The repository and digest of a `p` key. */
export function timeKeyFields(key: string): { repo: string; digest: string } {
  const at = key.lastIndexOf(SEP);
  return { repo: key.slice(2, at), digest: key.slice(at + 1) };
}

/** Every times key, or those of one repository. */
export function timeRange(repo?: string): RangeOptions {
  return repo === undefined ? { gt: `p${SEP}`, lt: 'p' + END } : within(`p${SEP}${repo}${SEP}`, `p${SEP}${repo}${END}`, {});
}

/** The last field of a key (a repository name of `r`, a tag of `t`). */
export function lastField(key: string): string {
  return key.slice(key.lastIndexOf(SEP) + 1);
}

/** Repository names in `range`. */
export function repoRange(range: ListRange): RangeOptions {
  return within(`r${SEP}`, 'r' + END, range);
}

/** Tags of `repo` in `range`. */
export function tagRange(repo: string, range: ListRange): RangeOptions {
  return within(`t${SEP}${repo}${SEP}`, `t${SEP}${repo}${END}`, range);
}

/** Every referrer of `subject` in `repo`. */
export function referrerRange(repo: string, subject: Digest): RangeOptions {
  return within(`f${SEP}${repo}${SEP}${subject}${SEP}`, `f${SEP}${repo}${SEP}${subject}${END}`, {});
}

/** Keys `prefix + x` with x after `range.after` (no field is empty, so `gt: prefix` starts at the first). */
function within(prefix: string, end: string, range: ListRange): RangeOptions {
  const gt = prefix + (range.after ?? '');
  return range.limit === undefined ? { gt, lt: end } : { gt, lt: end, limit: Math.max(0, range.limit) };
}

/** How a repository links a blob: a `_layers` link or a manifest revision. */
export type LinkHow = 'layer' | 'revision';
export const linkKey = (repo: string, d: Digest, how: LinkHow): string => `l${SEP}${repo}${SEP}${d}${SEP}${how}`;
export const userKey = (d: Digest, repo: string, how: LinkHow): string => `u${SEP}${d}${SEP}${repo}${SEP}${how}`;
export const costKey = (d: string): string => `c${SEP}${d}`;

/** The fields of an `l` or `u` key: repository and digest for `l`, digest and repository for `u`. */
export function linkKeyFields(key: string): { first: string; second: string; how: string } {
  const [, first = '', second = '', how = ''] = key.split(SEP);
  return { first, second, how };
}

/** Every link key of `repo` (in digest order). */
export function linkRange(repo: string): RangeOptions {
  return within(`l${SEP}${repo}${SEP}`, `l${SEP}${repo}${END}`, {});
}

/** The user keys of blob `d` (in repository order), at most `limit`; every user key when `d` is undefined. */
export function userRange(d?: Digest, limit?: number): RangeOptions {
  if (d === undefined) return { gt: `u${SEP}`, lt: 'u' + END };
  return within(`u${SEP}${d}${SEP}`, `u${SEP}${d}${END}`, { limit });
}

/** A range that may start at a key itself (`gte`) rather than after it. */
export interface PrefixRange {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt: string;
  readonly limit?: number;
}

/** The link keys of every repository whose name starts with `prefix` (printable ASCII ends below DEL). */
export function linkPrefixRange(prefix: string): PrefixRange {
  return { gte: `l${SEP}${prefix}`, lt: `l${SEP}${prefix}\x7f` };
}

/** Repository names that start with `prefix`, strictly after `after` when given, at most `limit`. */
export function repoPrefixRange(prefix: string, after: string | undefined, limit?: number): PrefixRange {
  const lt = `r${SEP}${prefix}\x7f`;
  const start = after !== undefined && after >= prefix ? { gt: `r${SEP}${after}` } : { gte: `r${SEP}${prefix}` };
  return limit === undefined ? { ...start, lt } : { ...start, lt, limit: Math.max(0, limit) };
}

/**
 * Every key of `table` (`l`, `t`, `p`: keyed by repository first) from repository `first` through
 * repository `last` (in key order, with those between): one range read for a page of repositories.
 */
export function repoSpan(table: 'l' | 't' | 'p', first: string, last: string): PrefixRange {
  return { gte: `${table}${SEP}${first}${SEP}`, lt: `${table}${SEP}${last}${END}` };
}

/** The repository of a `t` or `p` key (its middle field: neither a tag nor a digest holds NUL). */
export function repoOfKey(key: string): string {
  return key.slice(2, key.lastIndexOf(SEP));
}
