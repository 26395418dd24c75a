/**
 * What `berth serve` does when a push takes a quota across 85% of a limit (storage's QuotaWarning,
 * quotas.ts): counts it (`berth_quota_warnings_total`), logs `quota near its limit`, and sends a `quota`
 * event to every notification endpoint that does not ignore the action, with the same durability as a
 * push event (the push is answered once the event is queued durably; see README "Notifications").
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import type { QuotaMetrics } from '../metrics/quotas.js';
import type { EventSink } from '../notifications/event.js';
import { QUOTA_WARNING_RATIO, type QuotaWarning } from '../storage/registry.js';

/** The `warnQuota` of the storage registry. Never rejects. */
export function quotaWarnings(log: Logger, metrics: QuotaMetrics, events: EventSink | undefined): (w: QuotaWarning) => Promise<void> {
  return async (w) => {
    metrics.crossed(w);
    log.warn('quota near its limit', {
      quota: w.quota, key: w.key, kind: w.kind, used: w.used, before: w.before, limit: w.limit,
      ratio: w.used / w.limit, threshold: QUOTA_WARNING_RATIO, repository: w.repository, digest: w.digest,
    });
    if (events === undefined) return;
    const quota = {
      name: w.quota, key: w.key, repositories: w.repositories, namespace: w.namespace, kind: w.kind,
      usage: w.used, previous: w.before, limit: w.limit, threshold: QUOTA_WARNING_RATIO,
    };
    // Storage does not know the request whose link crossed the mark: the request names Berth, as
    // retention's deletions do; the target names the repository and the digest that was linked.
    const request = { id: randomUUID(), addr: '', host: '', method: '', useragent: 'berth-quota' };
    await events.write({ kind: 'quota', repository: w.repository, digest: w.digest, quota }, { request, actor: undefined, url: (path) => path });
  };
}
