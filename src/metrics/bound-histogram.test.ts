/**
 * BoundHistogram against prom-client's own Histogram: the same observations must give the same
 * text exposition (what /metrics serves), byte for byte.
 */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundHistogram } from './bound-histogram.js';

const BUCKETS = [0.001, 0.01, 0.1, 0.5, 1, 10];
const OBSERVED: readonly [string, string, number][] = [
  ['manifest', 'GET', 0],
  ['manifest', 'GET', 0.001], // on a bound: counted in that bucket (le is "less than or equal")
  ['manifest', 'GET', 0.0011],
  ['manifest', 'HEAD', 0.3],
  ['blob', 'GET', 12], // above every bound: only +Inf, sum and count
  ['manifest', 'GET', 1],
  ['blob', 'GET', 0.05],
  ['tags', 'GET', -1],
];

/** Both histograms in their own registries, given the same observations. */
function pair(): { theirs: Registry; ours: Registry; bound: BoundHistogram<'handler' | 'method'> } {
  const config = { name: 'test_seconds', help: 'A test histogram.', labelNames: ['handler', 'method'] as const, buckets: BUCKETS };
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Histogram({ ...config, registers: [theirs] });
  const bound = new BoundHistogram({ ...config, registers: [ours] });
  for (const [handler, method, v] of OBSERVED) {
    reference.observe({ handler, method }, v);
    bound.series(handler, method).observe(v);
  }
  return { theirs, ours, bound };
}

describe('BoundHistogram', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const { theirs, ours } = pair();
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('test_seconds_bucket{le="0.001",handler="manifest",method="GET"} 2');
  });

  it('keeps one series per label set, and reset empties them', async () => {
    const { ours, bound } = pair();
    expect(bound.series('manifest', 'GET')).toBe(bound.series('manifest', 'GET'));
    bound.reset();
    expect(await ours.metrics()).not.toContain('test_seconds_count');
  });

  it('refuses buckets out of order, a wrong number of label values and a value that is not a finite number', () => {
    const { bound } = pair();
    expect(() => new BoundHistogram({ name: 'x', help: 'x', labelNames: [], buckets: [1, 0.5], registers: [] })).toThrow(/ascending/);
    expect(() => bound.series('manifest')).toThrow(/1 label values for labels handler, method/);
    expect(() => bound.series('manifest', 'GET').observe(Number.NaN)).toThrow(TypeError);
  });
});
