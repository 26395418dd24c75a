/**
 * What the primary of `http.workers` and its workers say to each other over node:cluster's IPC channel.
 * Every message carries `berth` (its kind), so prom-client's or Node's own messages on the same channel
 * are told apart.
 *
 * Primary → worker:
 *   drain        graceful stop (a SIGTERM on the primary): the worker drains as a lone server does, exits 0
 *   stop         stop at once (a second signal)
 *   gc           run one collection (`POST /debug/gc` on the primary's debug listener)
 *   metrics      answer every metric as prom-client JSON, to be added together
 * Worker → primary:
 *   ready        listening (its URL)
 *   health       its failing health checks, sent at start and whenever they change
 *   gc-done      the answer to `gc`
 *   metrics-done the answer to `metrics`
 */
import type { WorkerMetrics } from '../metrics/cluster.js';

/** The environment variable that makes a forked process a worker, holding its slot (1 to `http.workers`). */
export const WORKER_SLOT_ENV = 'BERTH_WORKER_SLOT';

export type ToWorker =
  | { readonly berth: 'drain' }
  | { readonly berth: 'stop' }
  | { readonly berth: 'gc'; readonly id: number; readonly dryRun: boolean }
  | { readonly berth: 'metrics'; readonly id: number };

/** The outcome of a collection as the debug listener answers it (see http/debug.ts GcTrigger). */
export type GcOutcome = { readonly status: 'done'; readonly report: object } | { readonly status: 'busy' };

export type MetricsJson = WorkerMetrics;

export type ToPrimary =
  | { readonly berth: 'ready'; readonly url: string }
  | { readonly berth: 'health'; readonly failures: Readonly<Record<string, string>> }
  | { readonly berth: 'gc-done'; readonly id: number; readonly outcome?: GcOutcome; readonly error?: string }
  | { readonly berth: 'metrics-done'; readonly id: number; readonly metrics: MetricsJson };

const TO_WORKER = new Set(['drain', 'stop', 'gc', 'metrics']);
const TO_PRIMARY = new Set(['ready', 'health', 'gc-done', 'metrics-done']);

function kind(message: unknown): unknown {
  return typeof message === 'object' && message !== null ? (message as Record<string, unknown>)['berth'] : undefined;
}

/** True for a message the primary sends (the channel is the primary's and Node's; the shape is trusted past the kind). */
export function isToWorker(message: unknown): message is ToWorker {
  return TO_WORKER.has(kind(message) as string);
}

/** True for a message a worker sends. */
export function isToPrimary(message: unknown): message is ToPrimary {
  return TO_PRIMARY.has(kind(message) as string);
}
