import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createQuotaMetrics } from './quotas.js';

describe('quota metrics', () => {
  it('set the ratio gauge and answer true once per crossing of 85%', async () => {
    const registry = new Registry();
    const metrics = createQuotaMetrics(registry);
    const at = (used: number): boolean => metrics.record({ quota: 'team/**', kind: 'storage', used, limit: 100 });
    expect([at(50), at(85), at(90), at(84), at(86)]).toEqual([false, true, false, false, true]);
    expect(metrics.record({ quota: 'team/**', kind: 'repositories', used: 9, limit: 10 })).toBe(true);
    const text = await registry.metrics();
    expect(text).toContain('berth_quota_usage_ratio{quota="team/**",kind="storage"} 0.86');
    expect(text).toContain('berth_quota_usage_ratio{quota="team/**",kind="repositories"} 0.9');
    expect(text).toContain('berth_quota_limit{quota="team/**",kind="storage"} 100');
  });
});
