/**
 * The orders the tag details endpoint can sort a repository's tags in besides code-unit order, and how
 * a page of one is found from the last entry of the page before (a cursor that stays valid when that
 * entry has since been deleted: it is a position in the order, not an index into a list).
 *
 * - Version, newest first: a tag is split into numeric and text parts compared part by part (`v1.10.0`
 *   above `v1.9.2`, `1.2.1` above `1.2`, a leading `v` before a digit ignored); a pre-release suffix
 *   (`1.2.0-rc1`) sorts below its release; numbers above words (`1.0` above `latest`). Tags equal as
 *   versions (`1.0` and `1_0`) follow in code-unit order, so the order is total.
 * - Push time, newest first: tags without a known push time last; equal times in version order.
 *
 * Pure functions: no storage, no I/O.
 */

/** A tag's parts: its core version, and its pre-release suffix (undefined for a release). */
export interface VersionKey {
  readonly core: readonly (number | string)[];
  readonly pre: readonly (number | string)[] | undefined;
}

/** A tag with what its place in an order depends on. */
export interface OrderedTag {
  readonly tag: string;
  readonly key: VersionKey;
  /** Milliseconds since the epoch (the push-time order only); undefined when unknown. */
  readonly pushed?: number | undefined;
}

/** The parts of `tag` that the version order compares. */
export function versionKey(tag: string): VersionKey {
  const m = /^(v?\d+(?:\.\d+)*)-(.+)$/.exec(tag);
  const core = m?.[1] ?? tag;
  const pre = m?.[2];
  return { core: parts(core), pre: pre === undefined ? undefined : parts(pre) };
}

/** Version order, newest first; equal versions in code-unit order of the tags. */
export function byVersion(a: OrderedTag, b: OrderedTag): number {
  return -compareKeys(a.key, b.key) || codeUnits(a.tag, b.tag);
}

/** Push-time order, newest first; unknown times last; equal times in version order. */
export function byPushed(a: OrderedTag, b: OrderedTag): number {
  if (a.pushed !== b.pushed) {
    if (a.pushed === undefined) return 1;
    if (b.pushed === undefined) return -1;
    return b.pushed - a.pushed;
  }
  return byVersion(a, b);
}

/** `tags` (with their push times when given) sorted by `compare`, each tag parsed once. */
export function sortTags(tags: readonly string[], compare: (a: OrderedTag, b: OrderedTag) => number, pushed?: ReadonlyMap<string, number>): OrderedTag[] {
  return tags.map((tag) => ({ tag, key: versionKey(tag), pushed: pushed?.get(tag) })).sort(compare);
}

/** The position in `sorted` of the first entry that comes after `cursor` in the order `compare` sorted it by. */
export function firstAfter(sorted: readonly OrderedTag[], cursor: OrderedTag, compare: (a: OrderedTag, b: OrderedTag) => number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(sorted[mid] as OrderedTag, cursor) > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function codeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareKeys(a: VersionKey, b: VersionKey): number {
  const byCore = compareParts(a.core, b.core);
  if (byCore !== 0) return byCore;
  if (a.pre === undefined && b.pre !== undefined) return 1;
  if (b.pre === undefined && a.pre !== undefined) return -1;
  return compareParts(a.pre ?? [], b.pre ?? []);
}

function parts(s: string): (number | string)[] {
  // `v1.2` is version 1.2: the `v` is no word to sort by. A part is all digits or has none.
  return (s.replace(/^v(?=\d)/, '').match(/\d+|[^\d.\-_]+/g) ?? []).map((p) => (isDigit(p.charCodeAt(0)) ? Number(p) : p));
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function compareParts(x: readonly (number | string)[], y: readonly (number | string)[]): number {
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i];
    const q = y[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (p === q) continue;
    if (typeof p === 'number' && typeof q === 'number') return p - q;
    if (typeof p === 'number') return 1; // numbers sort above words (1.0 > latest)
    if (typeof q === 'number') return -1;
    return p < q ? -1 : 1;
  }
  return 0;
}
