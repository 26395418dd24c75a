/**
 * The notification metrics, per endpoint, on the prom-client Registry the caller gives (the one the
 * debug listener serves at `/metrics`):
 *
 *   berth_notifications_events_enqueued_total{endpoint}          events queued for delivery
 *   berth_notifications_events_delivered_total{endpoint}         events the endpoint accepted (2xx/3xx)
 *   berth_notifications_delivery_failures_total{endpoint}        failed attempts (each retry counts)
 *   berth_notifications_events_dropped_total{endpoint,reason}    events lost: `queue_full` (not queued
 *                                                                because the queue was at its bound) or
 *                                                                `write_error` (the queue's disk write failed)
 *   berth_notifications_events_pending{endpoint}                 queued and not yet delivered, read at scrape
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export type DropReason = 'queue_full' | 'write_error';

export interface NotificationMetrics {
  enqueued(endpoint: string): void;
  delivered(endpoint: string): void;
  failed(endpoint: string): void;
  dropped(endpoint: string, reason: DropReason, count?: number): void;
}

const NONE: NotificationMetrics = {
  enqueued: () => undefined,
  delivered: () => undefined,
  failed: () => undefined,
  dropped: () => undefined,
};

/**
 * Registers the metrics for `endpoints` on `registry` (none without one); `pending` is read at every
 * scrape. Call at most once per registry.
 */
export function notificationMetrics(
  registry: Registry | undefined,
  endpoints: readonly string[],
  pending: (endpoint: string) => number,
): NotificationMetrics {
  if (registry === undefined) return NONE;
  const registers = [registry];
  const labelNames = ['endpoint'] as const;
  const enqueued = new Counter({ name: 'berth_notifications_events_enqueued_total', help: 'Events queued for delivery to a notification endpoint.', labelNames, registers });
  const delivered = new Counter({ name: 'berth_notifications_events_delivered_total', help: 'Events a notification endpoint accepted (2xx or 3xx).', labelNames, registers });
  const failures = new Counter({ name: 'berth_notifications_delivery_failures_total', help: 'Failed delivery attempts to a notification endpoint (each retry counts).', labelNames, registers });
  const dropped = new Counter({
    name: 'berth_notifications_events_dropped_total',
    help: 'Events lost for a notification endpoint: queue_full (its queue was at its bound) or write_error (writing the queue failed).',
    labelNames: ['endpoint', 'reason'] as const,
    registers,
  });
  new Gauge({
    name: 'berth_notifications_events_pending',
    help: 'Events queued for a notification endpoint and not yet delivered.',
    labelNames,
    registers,
    collect() {
      for (const endpoint of endpoints) this.set({ endpoint }, pending(endpoint));
    },
  });
  for (const endpoint of endpoints) {
    enqueued.inc({ endpoint }, 0);
    delivered.inc({ endpoint }, 0);
    failures.inc({ endpoint }, 0);
    for (const reason of ['queue_full', 'write_error'] satisfies DropReason[]) dropped.inc({ endpoint, reason }, 0);
  }
  return {
    enqueued: (endpoint) => enqueued.inc({ endpoint }),
    delivered: (endpoint) => delivered.inc({ endpoint }),
    failed: (endpoint) => failures.inc({ endpoint }),
    dropped: (endpoint, reason, count = 1) => dropped.inc({ endpoint, reason }, count),
  };
}
