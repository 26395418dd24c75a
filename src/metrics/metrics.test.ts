import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { GcReport } from '../gc/report.js';
import { createMetrics } from './metrics.js';

const report = (over: Partial<GcReport> = {}): GcReport => ({
  marked: 7, swept: 3, bytesFreed: 1500, keptYoung: 0, layerLinksRemoved: 0, leftoversRemoved: 0, untaggedRemoved: 2, uploadsPurged: 1,
  durationMs: 250, dryRun: false, warnings: [], ...over,
});

/** The value of one sample in the text exposition, e.g. `berth_gc_runs_total{result="ok"}`. */
async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('createMetrics', () => {
  it('recordGcRun counts a completed run and what it removed', async () => {
    const m = createMetrics();
    expect(await sample(m.registry, 'berth_gc_runs_total{result="ok"}')).toBe(0);
    m.recordGcRun(report());
    m.recordGcRun(report({ swept: 1, bytesFreed: 500, marked: 9 }));
    expect(await sample(m.registry, 'berth_gc_runs_total{result="ok"}')).toBe(2);
    expect(await sample(m.registry, 'berth_gc_runs_total{result="error"}')).toBe(0);
    expect(await sample(m.registry, 'berth_gc_blobs_swept_total')).toBe(4);
    expect(await sample(m.registry, 'berth_gc_bytes_freed_total')).toBe(2000);
    expect(await sample(m.registry, 'berth_gc_untagged_removed_total')).toBe(4);
    expect(await sample(m.registry, 'berth_gc_uploads_purged_total')).toBe(2);
    expect(await sample(m.registry, 'berth_gc_blobs_marked')).toBe(9);
    expect(await sample(m.registry, 'berth_gc_duration_seconds_count')).toBe(2);
    expect(await sample(m.registry, 'berth_gc_duration_seconds_sum')).toBe(0.5);
    expect(await sample(m.registry, 'berth_gc_last_run_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it('counts a dry run as such and adds nothing it only would have removed', async () => {
    const m = createMetrics();
    m.recordGcRun(report({ dryRun: true }));
    expect(await sample(m.registry, 'berth_gc_runs_total{result="dry_run"}')).toBe(1);
    expect(await sample(m.registry, 'berth_gc_runs_total{result="ok"}')).toBe(0);
    expect(await sample(m.registry, 'berth_gc_blobs_swept_total')).toBe(0);
    expect(await sample(m.registry, 'berth_gc_bytes_freed_total')).toBe(0);
    expect(await sample(m.registry, 'berth_gc_blobs_marked')).toBe(7);
  });

  it('counts a failed run as error, keeps what it deleted, and leaves the marked gauge alone', async () => {
    const m = createMetrics();
    m.recordGcRun(report({ marked: 5 }));
    m.recordGcRun(report({ marked: 1, swept: 2, bytesFreed: 10 }), new Error('disk gone'));
    expect(await sample(m.registry, 'berth_gc_runs_total{result="error"}')).toBe(1);
    expect(await sample(m.registry, 'berth_gc_runs_total{result="ok"}')).toBe(1);
    expect(await sample(m.registry, 'berth_gc_blobs_swept_total')).toBe(5);
    expect(await sample(m.registry, 'berth_gc_bytes_freed_total')).toBe(1510);
    expect(await sample(m.registry, 'berth_gc_blobs_marked')).toBe(5);
  });

  it('reads berth_index_ready from the index state at scrape time, and only when an index is observed', async () => {
    const m = createMetrics();
    expect(await sample(m.registry, 'berth_index_ready')).toBeUndefined();
    const index = { state: 'rebuilding' };
    m.observeIndex(index);
    expect(await sample(m.registry, 'berth_index_ready')).toBe(0);
    index.state = 'ready';
    expect(await sample(m.registry, 'berth_index_ready')).toBe(1);
    index.state = 'failed';
    expect(await sample(m.registry, 'berth_index_ready')).toBe(0);
  });

  it('puts everything, Node process metrics included, on the registry it is given', async () => {
    const registry = new Registry();
    const m = createMetrics(registry);
    expect(m.registry).toBe(registry);
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_heap_size_total_bytes');
    expect(text).toContain('# TYPE berth_gc_duration_seconds histogram');
  });
});
