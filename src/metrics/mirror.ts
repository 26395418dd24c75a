/**
 * The pull-through cache's metrics (issue #13), on the registry every other metric is on:
 *   berth_mirror_requests_total{upstream,result="hit|miss"}  mirrored reads answered from the cache or not
 *   berth_mirror_upstream_bytes_total{upstream}              bytes fetched from the upstream (blobs and manifests)
 *   berth_mirror_upstream_errors_total{upstream}             upstream requests that failed
 *   berth_mirror_upstream_fetch_seconds{upstream,kind}       histogram of whole fetches (manifest, blob)
 *   berth_mirror_revalidations_total{upstream}               tags re-checked upstream with a HEAD
 *   berth_mirror_stale_total{upstream}                       cached manifests served because the upstream failed
 *   berth_mirror_evictions_total{upstream}                   cached images evicted by ttl or budget
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** The events of src/mirror/mirror-context.ts MirrorEvents, as counters (structurally the same interface). */
export interface MirrorMetrics {
  hit(upstream: string): void;
  miss(upstream: string): void;
  revalidated(upstream: string): void;
  stale(upstream: string): void;
  failed(upstream: string): void;
  evicted(upstream: string): void;
  fetched(record: { readonly upstream: string; readonly kind: 'manifest' | 'blob'; readonly bytes: number; readonly seconds: number; readonly error?: Error }): void;
}

const FETCH_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300];

/** Registers the mirror's metrics on `registry`. Call at most once per registry. */
export function createMirrorMetrics(registry: Registry): MirrorMetrics {
  const registers = [registry];
  const requests = new Counter({ name: 'berth_mirror_requests_total', help: 'Reads of mirrored repositories, answered from the cache (hit) or the upstream (miss).', labelNames: ['upstream', 'result'] as const, registers });
  const bytes = new Counter({ name: 'berth_mirror_upstream_bytes_total', help: 'Bytes fetched from upstream registries.', labelNames: ['upstream'] as const, registers });
  const errors = new Counter({ name: 'berth_mirror_upstream_errors_total', help: 'Upstream requests that failed.', labelNames: ['upstream'] as const, registers });
  const latency = new Histogram({ name: 'berth_mirror_upstream_fetch_seconds', help: 'Whole upstream fetches of manifests and blobs.', labelNames: ['upstream', 'kind'] as const, buckets: FETCH_BUCKETS, registers });
  const revalidations = new Counter({ name: 'berth_mirror_revalidations_total', help: 'Cached tags re-checked with a HEAD upstream.', labelNames: ['upstream'] as const, registers });
  const stale = new Counter({ name: 'berth_mirror_stale_total', help: 'Cached manifests served stale because the upstream failed.', labelNames: ['upstream'] as const, registers });
  const evictions = new Counter({ name: 'berth_mirror_evictions_total', help: 'Cached images evicted by ttl or budget.', labelNames: ['upstream'] as const, registers });
  return {
    hit: (upstream) => requests.inc({ upstream, result: 'hit' }),
    miss: (upstream) => requests.inc({ upstream, result: 'miss' }),
    revalidated: (upstream) => revalidations.inc({ upstream }),
    stale: (upstream) => {
      stale.inc({ upstream });
      errors.inc({ upstream });
    },
    failed: (upstream) => errors.inc({ upstream }),
    evicted: (upstream) => evictions.inc({ upstream }),
    fetched: (r) => {
      bytes.inc({ upstream: r.upstream }, r.bytes);
      latency.observe({ upstream: r.upstream, kind: r.kind }, r.seconds);
      if (r.error !== undefined) errors.inc({ upstream: r.upstream });
    },
  };
}
