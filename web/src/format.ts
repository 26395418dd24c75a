/** Formatting of what the pages show (the server sorts tags: src/storage/management/tag-order.ts). */

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

/** `linux/arm64/v8` for an OCI platform object. */
export function platformName(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  if (p === undefined) return 'unknown platform';
  return [p.os ?? '?', p.architecture ?? '?', p.variant].filter((x) => x !== undefined && x !== '').join('/');
}
