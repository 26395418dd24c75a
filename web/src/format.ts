/** Formatting and ordering of what the pages show. */

/** `1.4 MB` (powers of 1000, as registries and docker show sizes). */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i] ?? ''}`;
}

/** `2026-12-06 06:04 UTC` for an RFC 3339 time; '—' when none. */
export function when(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** `sha256:0123456789ab` (the algorithm and 12 hex digits). */
export function shortDigest(d: string): string {
  const colon = d.indexOf(':');
  return colon < 0 ? d.slice(0, 12) : d.slice(0, colon + 13);
}

/**
 * Version order, newest first: tags split into numeric and text parts compared part by part
 * (`v1.10.0` after `v1.9.2`; `1.2` before `1.2.1`); pre-release suffixes (`1.2.0-rc1`) before the release.
 */
export function compareVersionsDesc(a: string, b: string): number {
  return -compareKeys(versionKey(a), versionKey(b));
}

/**
 * `items` in version order of `tagOf(item)`, newest first (as {@link compareVersionsDesc}), each tag
 * parsed once: a page of 10,000 tags sorts without running the parser in every comparison.
 */
export function sortByVersionDesc<T>(items: readonly T[], tagOf: (item: T) => string): T[] {
  const keyed = items.map((item) => ({ item, key: versionKey(tagOf(item)) }));
  keyed.sort((a, b) => -compareKeys(a.key, b.key));
  return keyed.map((k) => k.item);
}

/** A tag's parts: its core version, and its pre-release suffix (empty for a release). */
interface VersionKey {
  readonly core: readonly (number | string)[];
  readonly pre: readonly (number | string)[] | undefined;
}

function versionKey(tag: string): VersionKey {
  const [core, pre] = splitPre(tag);
  return { core: parts(core), pre: pre === '' ? undefined : parts(pre) };
}

function compareKeys(a: VersionKey, b: VersionKey): number {
  const byCore = compareParts(a.core, b.core);
  if (byCore !== 0) return byCore;
  if (a.pre === undefined && b.pre !== undefined) return 1;
  if (b.pre === undefined && a.pre !== undefined) return -1;
  return compareParts(a.pre ?? [], b.pre ?? []);
}

function splitPre(tag: string): [string, string] {
  const m = /^(v?\d+(?:\.\d+)*)-(.+)$/.exec(tag);
  return m === null ? [tag, ''] : [m[1] ?? tag, m[2] ?? ''];
}

function parts(s: string): (number | string)[] {
  // `v1.2` is version 1.2: the `v` is no word to sort by.
  // A part is all digits or has none: its first character says which.
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

/** `linux/arm64/v8` for an OCI platform object. */
export function platformName(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  if (p === undefined) return 'unknown platform';
  return [p.os ?? '?', p.architecture ?? '?', p.variant].filter((x) => x !== undefined && x !== '').join('/');
}
