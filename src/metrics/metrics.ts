/**
 * Berth's Prometheus metrics (prom-client), all on one injected Registry that the debug listener serves
 * at `GET /metrics` (registry:2's place, `http.debug.addr`). This module defines the metrics and how a
 * garbage collection report moves them; it records nothing by itself. The collector hands every finished
 * run to `recordGcRun` through gc/run.ts's `report` seam, and the index's state is read at scrape time.
 *
 * Garbage collection:
 *   berth_gc_runs_total{result="ok|error|dry_run"}  runs finished, by outcome
 *   berth_gc_blobs_marked                            digests marked in use by the last completed run
 *   berth_gc_blobs_swept_total                       blobs deleted (not counted in dry runs)
 *   berth_gc_bytes_freed_total                       bytes of the blobs deleted (not counted in dry runs)
 *   berth_gc_untagged_removed_total                  untagged manifest revisions removed (not in dry runs)
 *   berth_gc_uploads_purged_total                    stale upload sessions removed (not in dry runs)
 *   berth_gc_duration_seconds                        histogram of run durations (every run)
 *   berth_gc_last_run_timestamp_seconds              when the last run (of any outcome) finished
 *   berth_retention_tags_deleted_total               tags deleted by retention policies (not in dry runs)
 *   berth_retention_manifests_deleted_total          manifest revisions deleted by retention (not in dry runs)
 * Index:
 *   berth_index_ready                                1 while the listing index answers, else 0; only
 *                                                    present when an index is observed (filesystem storage)
 * Plus Node's process metrics (`process_*`, `nodejs_*`) from prom-client's collectDefaultMetrics.
 *
 * A failed run still counts what it deleted before failing: those blobs are gone.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GcReport } from '../gc/report.js';

/** The outcome label of `berth_gc_runs_total`. */
export type GcRunResult = 'ok' | 'error' | 'dry_run';

/** Anything with an index state; `ready` counts as ready (IndexDb fits). */
export interface IndexStateSource {
  readonly state: string;
}

export interface Metrics {
  /** The registry every metric is on: what `GET /metrics` serves. */
  readonly registry: Registry;
  readonly gcRuns: Counter<'result'>;
  readonly gcBlobsMarked: Gauge;
  readonly gcBlobsSwept: Counter;
  readonly gcBytesFreed: Counter;
  readonly gcUntaggedRemoved: Counter;
  readonly gcUploadsPurged: Counter;
  readonly retentionTagsDeleted: Counter;
  readonly retentionManifestsDeleted: Counter;
  readonly gcDuration: Histogram;
  readonly gcLastRun: Gauge;
  /** Records one finished collection; the shape of gc/run.ts's `report` seam. Never throws. */
  readonly recordGcRun: (report: GcReport, error?: unknown) => void;
  /** Registers `berth_index_ready`, read from `index.state` at every scrape. Call at most once. */
  observeIndex(index: IndexStateSource): void;
}

/** GC runs take from milliseconds (a small registry) to hours (a very large one). */
const GC_DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 10_800];

/** Creates Berth's metrics, and Node's default process metrics, on `registry`. */
export function createMetrics(registry: Registry = new Registry()): Metrics {
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });
  const gcRuns = new Counter({
    name: 'berth_gc_runs_total', help: 'Garbage collection runs finished, by result.', labelNames: ['result'] as const, registers,
  });
  for (const result of ['ok', 'error', 'dry_run'] satisfies GcRunResult[]) gcRuns.inc({ result }, 0);
  const m = {
    registry,
    gcRuns,
    gcBlobsMarked: new Gauge({ name: 'berth_gc_blobs_marked', help: 'Digests marked in use by the last completed garbage collection.', registers }),
    gcBlobsSwept: counter('berth_gc_blobs_swept_total', 'Blobs deleted by garbage collection.'),
    gcBytesFreed: counter('berth_gc_bytes_freed_total', 'Bytes of the blobs deleted by garbage collection.'),
    gcUntaggedRemoved: counter('berth_gc_untagged_removed_total', 'Untagged manifest revisions removed by garbage collection.'),
    gcUploadsPurged: counter('berth_gc_uploads_purged_total', 'Stale upload sessions removed by garbage collection.'),
    retentionTagsDeleted: counter('berth_retention_tags_deleted_total', 'Tags deleted by retention policies.'),
    retentionManifestsDeleted: counter('berth_retention_manifests_deleted_total', 'Manifest revisions deleted by retention policies.'),
    gcDuration: new Histogram({
      name: 'berth_gc_duration_seconds', help: 'Duration of garbage collection runs.', buckets: GC_DURATION_BUCKETS, registers,
    }),
    gcLastRun: new Gauge({ name: 'berth_gc_last_run_timestamp_seconds', help: 'When the last garbage collection finished (any result).', registers }),
  };
  return {
    ...m,
    recordGcRun: (report, error) => recordGcRun(m, report, error),
    observeIndex(index) {
      new Gauge({
        name: 'berth_index_ready',
        help: 'Whether the listing index answers queries (1) or listings come from storage (0).',
        registers,
        collect() {
          this.set(index.state === 'ready' ? 1 : 0);
        },
      });
    },
  };
}

type GcMetrics = Pick<
  Metrics,
  'gcRuns' | 'gcBlobsMarked' | 'gcBlobsSwept' | 'gcBytesFreed' | 'gcUntaggedRemoved' | 'gcUploadsPurged' | 'gcDuration' | 'gcLastRun'
  | 'retentionTagsDeleted' | 'retentionManifestsDeleted'
>;

function recordGcRun(m: GcMetrics, report: GcReport, error: unknown): void {
  const result: GcRunResult = error !== undefined ? 'error' : report.dryRun ? 'dry_run' : 'ok';
  m.gcRuns.inc({ result });
  m.gcDuration.observe(report.durationMs / 1000);
  m.gcLastRun.set(Date.now() / 1000);
  // A failed run's mark may be partial: the gauge keeps the last completed run's count.
  if (result !== 'error') m.gcBlobsMarked.set(report.marked);
  // A dry run's counts are what would go; nothing went.
  if (report.dryRun) return;
  m.gcBlobsSwept.inc(report.swept);
  m.gcBytesFreed.inc(report.bytesFreed);
  m.gcUntaggedRemoved.inc(report.untaggedRemoved);
  m.gcUploadsPurged.inc(report.uploadsPurged);
  // Retention's deletions stand even when the run failed after them.
  m.retentionTagsDeleted.inc(report.retention?.tagsDeleted ?? 0);
  m.retentionManifestsDeleted.inc(report.retention?.manifestsDeleted ?? 0);
}
