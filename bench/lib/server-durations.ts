/**
 * The server's own view of how long requests took: Berth's `registry_http_request_duration_seconds`
 * histogram (from a request's arrival in the handler chain to the end of its response), read from two
 * scrapes of its /metrics around a sample. Set beside a load tool's latency, it tells whether a tail
 * lies inside Berth's handling of a request or before it (waiting in the socket for the event loop to
 * read it) and after it (in the kernel and the client).
 */

/** Cumulative counts by bucket bound (`le`) of one handler and method, summed over the status codes. */
export type DurationBuckets = ReadonlyMap<string, number>;

/** The duration buckets of `handler`'s `method` requests in a Prometheus text exposition. */
export function durationBuckets(text: string, handler: string, method: string): DurationBuckets {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^registry_http_request_duration_seconds_bucket\{([^}]*)\} (\S+)$/gm)) {
    const labels = m[1] ?? '';
    if (!labels.includes(`handler="${handler}"`) || !labels.includes(`method="${method}"`)) continue;
    const le = /le="([^"]+)"/.exec(labels)?.[1] ?? '';
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Between two scrapes: the requests counted, and the percentage of them slower than each of `bounds` (seconds, bucket bounds). */
export function slowerThan(before: DurationBuckets, after: DurationBuckets, bounds: readonly number[]): { count: number; percent: number[] } {
  const delta = (le: string): number => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const count = delta('+Inf');
  return { count, percent: bounds.map((b) => (count === 0 ? Number.NaN : ((count - delta(String(b))) / count) * 100)) };
}
