/**
 * The metrics of `http.workers` (served by the primary): every worker's metrics, as prom-client JSON,
 * added together by prom-client's AggregatorRegistry rules (counters, gauges and histograms summed, so
 * `process_resident_memory_bytes` is the workers' total; the event-loop lag gauges averaged; the
 * version kept once), plus the primary's own:
 *
 *   berth_cluster_workers_ready                    workers serving now (of `http.workers`)
 *   berth_cluster_worker_restarts_total            workers that died and were replaced
 *   berth_cluster_primary_resident_memory_bytes    the primary's resident memory (add it to the
 *                                                  workers' process_resident_memory_bytes for the whole)
 */
import { AggregatorRegistry, Counter, Gauge, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';

/** One worker's metrics, as its registry's `getMetricsAsJSON()` gives them. */
export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

export interface ClusterMetricsSource {
  /** The Prometheus text format's content type. */
  readonly contentType: string;
  /** The exposition of `workers` added together, with the primary's gauges set from `state`. */
  expose(workers: readonly WorkerMetrics[], state: { readonly ready: number; readonly restarts: number }): Promise<string>;
}

export function createClusterMetrics(): ClusterMetricsSource {
  const own = new Registry();
  const registers = [own];
  const ready = new Gauge({ name: 'berth_cluster_workers_ready', help: 'Worker processes of http.workers serving now.', registers });
  const restarts = new Counter({ name: 'berth_cluster_worker_restarts_total', help: 'Workers that died and were replaced.', registers });
  const rss = new Gauge({
    name: 'berth_cluster_primary_resident_memory_bytes',
    help: "The primary process's resident memory (the workers' total is process_resident_memory_bytes).",
    registers,
  });
  let counted = 0;
  return {
    contentType: own.contentType,
    async expose(workers, state) {
      ready.set(state.ready);
      restarts.inc(state.restarts - counted);
      counted = state.restarts;
      rss.set(process.memoryUsage.rss());
      return AggregatorRegistry.aggregate([...workers, await own.getMetricsAsJSON()]).metrics();
    },
  };
}
