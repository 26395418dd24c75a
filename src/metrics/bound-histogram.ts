/**
 * A prom-client Histogram for the request path. prom-client's own `observe` validates and hashes the
 * label object and finds the bucket through a property keyed by the bound's decimal string, on every
 * call: with four histograms observed per request that was about a tenth of a manifest GET's CPU time.
 * Here a label set is looked up once per call by its joined values (`series`), and an observation is
 * an array increment. The text exposition is prom-client's: the registry asks `getForPromString()`,
 * which answers what a Histogram with the same observations would (bound-histogram.test.ts compares;
 * `get()`, for the registry's JSON, leaves out prom-client's always-null exemplars).
 *
 * Only `series(...).observe` counts: the inherited `observe`, `labels`, `startTimer` and `zero` would
 * write where nothing is exported, and are not to be used.
 */
import {
  type Aggregator,
  Histogram,
  type HistogramConfiguration,
  type LabelValues,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
} from 'prom-client';

/** One label set's counts. */
export interface HistogramSeries {
  observe(value: number): void;
}

/** What prom-client's Metric sets on itself and its typings leave out (its `type` is the string `histogram`). */
interface MetricFields {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator: Aggregator;
}

interface Series<T extends string> extends HistogramSeries {
  readonly labels: LabelValues<T>;
  /** Observations per bucket (not cumulative); index i counts values in (bounds[i-1], bounds[i]]. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export class BoundHistogram<T extends string> extends Histogram<T> {
  private readonly bounds: readonly number[];
  /** The label names, in the order `series` takes their values (not `labelNames`, which the base sets). */
  private readonly names: readonly T[];
  private readonly bySeries = new Map<string, Series<T>>();

  constructor(config: HistogramConfiguration<T> & { readonly buckets: number[]; readonly labelNames: readonly T[] }) {
    super(config);
    if (config.buckets.some((b, i) => i > 0 && b <= (config.buckets[i - 1] as number))) throw new Error('buckets must be in ascending order');
    this.bounds = [...config.buckets];
    this.names = config.labelNames;
  }

  /** The series of `values`, given in the order of `labelNames`. */
  series(...values: string[]): HistogramSeries {
    const key = values.join('\0');
    let s = this.bySeries.get(key);
    if (s === undefined) {
      s = this.newSeries(values);
      this.bySeries.set(key, s);
    }
    return s;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    return this.getForPromString();
  }

  /** What the registry's text exposition reads (prom-client asks for it before `get`). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    const values: MetricValueWithName<T>[] = [];
    const { name, help, type, aggregator } = this as unknown as MetricFields;
    const bucket = `${name}_bucket`;
    for (const s of this.bySeries.values()) {
      let below = 0;
      this.bounds.forEach((le, i) => {
        below += s.counts[i] ?? 0;
        values.push({ metricName: bucket, labels: withLe(s.labels, le), value: below });
      });
      values.push({ metricName: bucket, labels: withLe(s.labels, '+Inf'), value: s.count });
      values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: s.count });
    }
    return { name, help, type, aggregator, values, collect: () => undefined };
  }

  override reset(): void {
    super.reset();
    // The base constructor calls reset too, before this class's fields are set.
    if (this.bySeries !== undefined) this.bySeries.clear();
  }

  private newSeries(values: readonly string[]): Series<T> {
    const names = this.names;
    if (values.length !== names.length) throw new Error(`${values.length} label values for labels ${names.join(', ')}`);
    const labels: LabelValues<T> = {};
    names.forEach((name, i) => (labels[name] = values[i]));
    const bounds = this.bounds;
    const s: Series<T> = {
      labels,
      counts: bounds.map(() => 0),
      sum: 0,
      count: 0,
      observe(value) {
        if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
        let i = 0;
        while (i < bounds.length && value > (bounds[i] as number)) i += 1;
        if (i < bounds.length) s.counts[i] = (s.counts[i] ?? 0) + 1;
        s.sum += value;
        s.count += 1;
      },
    };
    return s;
  }
}

/** A bucket's labels: `le`, then the series' labels (the order prom-client prints them in). */
function withLe<T extends string>(labels: LabelValues<T>, le: number | string): LabelValues<T> {
  return { le, ...labels } as LabelValues<T>;
}
