/**
 * The quotas' metrics (`storage.quotas`, issue #16), on the registry every other metric is on:
 *   berth_quota_usage_ratio{quota,kind="storage|repositories"}  usage over limit, as the last check found it
 *   berth_quota_usage{quota,kind}                                 the usage itself (bytes, or repositories)
 *   berth_quota_limit{quota,kind}                                 the limit
 *   berth_quota_warnings_total{quota,kind}                        pushes that took usage across 85% of the limit
 * `quota` is the quota's globs as messages name it (`team/**`). The gauges are set whenever a check
 * computes them (an upload start, a commit, a mount or a manifest PUT in the quota's repositories), so
 * a quota nobody pushed to since the start has none yet. The counter counts what storage reports as a
 * crossing (quotas.ts), one per `quota` notification event.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** One figure of a quota (structurally storage's QuotaReading). */
export interface QuotaUsageReading {
  readonly quota: string;
  readonly kind: 'storage' | 'repositories';
  readonly used: number;
  readonly limit: number;
}

export interface QuotaMetrics {
  /** Sets the gauges of `reading`'s quota and kind. */
  record(reading: QuotaUsageReading): void;
  /** Counts a push that took `reading`'s quota across the warning ratio. */
  crossed(reading: QuotaUsageReading): void;
}

/** Registers the quotas' metrics on `registry`. Call at most once per registry. */
export function createQuotaMetrics(registry: Registry): QuotaMetrics {
  const registers = [registry];
  const labelNames = ['quota', 'kind'] as const;
  const ratio = new Gauge({ name: 'berth_quota_usage_ratio', help: 'Usage of a quota over its limit, as the last check in its repositories found it.', labelNames, registers });
  const usage = new Gauge({ name: 'berth_quota_usage', help: 'Usage of a quota (bytes for kind storage, repositories for kind repositories).', labelNames, registers });
  const limit = new Gauge({ name: 'berth_quota_limit', help: 'Limit of a quota (bytes for kind storage, repositories for kind repositories).', labelNames, registers });
  const warnings = new Counter({ name: 'berth_quota_warnings_total', help: 'Pushes that took a quota\'s usage across 85% of its limit (one quota notification event each).', labelNames, registers });
  return {
    record(r) {
      const labels = { quota: r.quota, kind: r.kind };
      ratio.set(labels, r.limit > 0 ? r.used / r.limit : r.used > 0 ? Number.POSITIVE_INFINITY : 0);
      usage.set(labels, r.used);
      limit.set(labels, r.limit);
    },
    crossed(r) {
      warnings.inc({ quota: r.quota, kind: r.kind });
    },
  };
}
