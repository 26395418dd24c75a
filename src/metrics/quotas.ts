/**
 * The quotas' metrics (`storage.quotas`, issue #16), on the registry every other metric is on:
 *   berth_quota_usage_ratio{quota,kind="storage|repositories"}  usage over limit, as the last check found it
 *   berth_quota_usage{quota,kind}                                 the usage itself (bytes, or repositories)
 *   berth_quota_limit{quota,kind}                                 the limit
 * `quota` is the quota's globs as messages name it (`team/**`). The figures are set whenever a check
 * computes them (an upload start, a commit, a mount or a manifest PUT in the quota's repositories), so
 * a quota nobody pushed to since the start has none yet.
 */
import { Gauge, type Registry } from 'prom-client';

/** At or above this share of a limit, a quota is near full: the warning is logged once per crossing. */
export const QUOTA_WARNING_RATIO = 0.85;

/** One figure of a quota (structurally storage's QuotaReading). */
export interface QuotaUsageReading {
  readonly quota: string;
  readonly kind: 'storage' | 'repositories';
  readonly used: number;
  readonly limit: number;
}

export interface QuotaMetrics {
  /** Records `reading`; answers true when it takes the quota to or over the warning ratio from below (or from unknown). */
  record(reading: QuotaUsageReading): boolean;
}

/** Registers the quotas' gauges on `registry`. Call at most once per registry. */
export function createQuotaMetrics(registry: Registry): QuotaMetrics {
  const registers = [registry];
  const labelNames = ['quota', 'kind'] as const;
  const ratio = new Gauge({ name: 'berth_quota_usage_ratio', help: 'Usage of a quota over its limit, as the last check in its repositories found it.', labelNames, registers });
  const usage = new Gauge({ name: 'berth_quota_usage', help: 'Usage of a quota (bytes for kind storage, repositories for kind repositories).', labelNames, registers });
  const limit = new Gauge({ name: 'berth_quota_limit', help: 'Limit of a quota (bytes for kind storage, repositories for kind repositories).', labelNames, registers });
  const near = new Map<string, boolean>();
  return {
    record(r) {
      const labels = { quota: r.quota, kind: r.kind };
      const share = r.limit > 0 ? r.used / r.limit : r.used > 0 ? Number.POSITIVE_INFINITY : 0;
      ratio.set(labels, share);
      usage.set(labels, r.used);
      limit.set(labels, r.limit);
      const key = `${r.kind}\u0000${r.quota}`;
      const was = near.get(key) ?? false;
      const is = share >= QUOTA_WARNING_RATIO;
      near.set(key, is);
      return is && !was;
    },
  };
}
