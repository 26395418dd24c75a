import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createQuotaMetrics } from './quotas.js';

describe('quota metrics', () => {
  it('set the gauges of each reading and count crossings by quota and kind', async () => {
    const registry = new Registry();
    const metrics = createQuotaMetrics(registry);
    metrics.record({ quota: 'team/**', kind: 'storage', used: 86, limit: 100 });
    metrics.record({ quota: 'team/**', kind: 'repositories', used: 9, limit: 10 });
    metrics.crossed({ quota: 'team/**', kind: 'storage', used: 86, limit: 100 });
    metrics.crossed({ quota: 'team/**', kind: 'storage', used: 90, limit: 100 });
    const text = await registry.metrics();
    expect(text).toContain('berth_quota_usage_ratio{quota="team/**",kind="storage"} 0.86');
    expect(text).toContain('berth_quota_usage_ratio{quota="team/**",kind="repositories"} 0.9');
    expect(text).toContain('berth_quota_limit{quota="team/**",kind="storage"} 100');
    expect(text).toContain('berth_quota_warnings_total{quota="team/**",kind="storage"} 2');
    expect(text).not.toContain('berth_quota_warnings_total{quota="team/**",kind="repositories"}');
  });
});
