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
