/**
 * Webhook notifications (registry:2's `notifications`): `createNotifier` opens one queue per enabled
 * endpoint and starts delivering it; the HTTP handlers report what they did to `notifier.sink`.
 *
 * The request path stays cheap: `sink.write` builds the event (one UUID, one JSON.stringify) and hands
 * the line to each endpoint's queue that does not ignore it, which only puts it in memory; writing and
 * fsync happen a moment later, group-committed with other requests' events, and delivery happens in
 * the background. What `write` answers: for a pull, at once; for a push, mount or delete, once the event
 * is durable in every queue (a few milliseconds, shared by concurrent requests), so a client that got
 * its answer to a change knows the event will reach the endpoint even if Berth then crashes. It never
 * waits for an endpoint and never fails.
 *
 * Queues: with a directory (filesystem storage: `<rootdirectory>/berth/notifications/`), one journal per
 * endpoint in `<name>-<hash>/` (file-queue.ts) that survives restarts; without one (inmemory storage),
 * in memory. Each queue holds at most `maxQueueBytes`; when full, new events for that endpoint are
 * dropped (counted, and logged once per episode) and queued ones are kept. `stop()` lets each endpoint
 * finish the attempt in flight, then writes every accepted event and the delivery cursor to disk.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { type Delivery, type EndpointOptions, ignores, startDelivery } from './endpoint.js';
import { type EventSink, type SourceRecord, buildEvent } from './event.js';
import { openFileQueue } from './file-queue.js';
import { type NotificationMetrics, notificationMetrics } from './metrics.js';
import { type EventQueue, createMemoryQueue } from './queue.js';

export interface NotifierEndpoint extends EndpointOptions {
  /** A disabled endpoint gets no events; its queue (if any) is left as it is. */
  readonly disabled?: boolean;
}

export interface NotifierOptions {
  readonly endpoints: readonly NotifierEndpoint[];
  /** `notifications.events.includereferences` */
  readonly includeReferences: boolean;
  /** The directory of the queues; undefined keeps them in memory (lost at exit), unless `openQueue` is given. */
  readonly dir: string | undefined;
  /**
   * Opens an endpoint's queue elsewhere (replicas: a Redis Stream shared by all of them, redis-queue.ts;
   * S3 without redis: objects in the bucket, object-queue.ts). `onLost` counts lines a failed write lost.
   */
  readonly openQueue?: (endpoint: string, maxBytes: number, log: Logger, onLost: (count: number) => void) => Promise<EventQueue>;
  readonly log: Logger;
  /** `source.instanceID` of this run's events: new at every start. */
  readonly instanceId: string;
  /** `source.addr`: `hostname:port` of this instance. */
  readonly sourceAddr: string;
  /** Where to register the notification metrics; none without one. */
  readonly metricsRegistry?: Registry;
  /** Bound of each endpoint's queue, in bytes of event JSON. Default 64 MiB (roughly 60,000 events). */
  readonly maxQueueBytes?: number;
  /** Size at which a queue's segment file is closed and a new one begun. Default 4 MiB. */
  readonly segmentBytes?: number;
}

export interface Notifier {
  readonly sink: EventSink;
  /** Events queued and not yet delivered, by endpoint name. */
  pending(): Record<string, number>;
  /** Stops delivery (after attempts in flight), writes what is queued to disk and closes the queues. */
  stop(): Promise<void>;
}

export const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;

interface Running {
  readonly options: EndpointOptions;
  readonly queue: EventQueue;
  readonly log: Logger;
  delivery?: Delivery;
  /** Events refused since the queue last had room (0: not full). */
  droppedWhileFull: number;
}

/**
 * Opens the queues of the enabled endpoints (recovering what an earlier run left on disk) and starts
 * delivering them.
 * @throws when a queue directory cannot be created or read.
 */
export async function createNotifier(o: NotifierOptions): Promise<Notifier> {
  const maxBytes = o.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
  const segmentBytes = o.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const running: Running[] = [];
  let metrics: NotificationMetrics | undefined;
  try {
    for (const endpoint of o.endpoints) {
      const log = o.log.child({ endpoint: endpoint.name });
      if (endpoint.disabled === true) {
        log.info('notification endpoint disabled, skipping');
        continue;
      }
      const onLost = (count: number): void => metrics?.dropped(endpoint.name, 'write_error', count);
      const queue = o.openQueue
        ? await o.openQueue(endpoint.name, maxBytes, log, onLost)
        : o.dir === undefined
        ? createMemoryQueue({ maxBytes })
        : await openFileQueue({ dir: join(o.dir, queueDirName(endpoint.name)), maxBytes, segmentBytes, log, onLost });
      running.push({ options: endpoint, queue, log, droppedWhileFull: 0 });
      log.info('notification endpoint configured', {
        url: endpoint.url, timeoutMs: endpoint.timeoutMs, threshold: endpoint.threshold, backoffMs: endpoint.backoffMs,
        headers: Object.keys(endpoint.headers), pending: queue.pending,
      });
    }
  } catch (err) {
    await Promise.all(running.map((r) => r.queue.close()));
    throw err;
  }
  if (o.dir !== undefined) await warnAboutOrphans(o.dir, running.map((r) => queueDirName(r.options.name)), o.log);
  const m = notificationMetrics(o.metricsRegistry, running.map((r) => r.options.name), (name) => running.find((r) => r.options.name === name)?.queue.pending ?? 0);
  metrics = m;
  for (const r of running) {
    const name = r.options.name;
    r.delivery = startDelivery({ endpoint: r.options, queue: r.queue, log: r.log, observer: { delivered: () => m.delivered(name), failed: () => m.failed(name) } });
  }
  const source: SourceRecord = { addr: o.sourceAddr, instanceID: o.instanceId };
  let stopped = false;
  return {
    sink: {
      write(subject, origin) {
        if (stopped || running.length === 0) return Promise.resolve();
        let event: ReturnType<typeof buildEvent>;
        let line: string;
        try {
          event = buildEvent(subject, origin, { source, includeReferences: o.includeReferences });
          line = JSON.stringify(event);
        } catch (err) {
          o.log.error('cannot build a notification event', { err, requestId: origin.request.id });
          return Promise.resolve();
        }
        const durable: Promise<void>[] = [];
        for (const r of running) {
          if (ignores(r.options, event)) continue;
          const appended = r.queue.append(line);
          if (appended.accepted) durable.push(appended.durable);
          noteAppend(r, appended.accepted, m, maxBytes);
        }
        return event.action === 'pull' ? Promise.resolve() : Promise.all(durable).then(() => undefined);
      },
    },
    pending: () => Object.fromEntries(running.map((r) => [r.options.name, r.queue.pending])),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(running.map(async (r) => {
        await r.delivery?.stop();
        await r.queue.close();
        if (r.queue.pending > 0) r.log.info('notification events kept for the next start', { pending: r.queue.pending });
      }));
    },
  };
}

function noteAppend(r: Running, accepted: boolean, m: NotificationMetrics, maxBytes: number): void {
  if (accepted) {
    m.enqueued(r.options.name);
    if (r.droppedWhileFull > 0) {
      r.log.warn('notification queue has room again', { dropped: r.droppedWhileFull });
      r.droppedWhileFull = 0;
    }
    return;
  }
  m.dropped(r.options.name, 'queue_full');
  if (r.droppedWhileFull === 0) {
    r.log.error('notification queue is full: new events for this endpoint are dropped until it delivers some', { maxBytes, pending: r.queue.pending });
  }
  r.droppedWhileFull += 1;
}

/** The directory of an endpoint's queue: its name made safe for a path, and a hash that keeps names apart. */
export function queueDirName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 64);
  return `${safe}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

/** Queues left by endpoints no longer configured (or disabled) keep their events; say so. */
async function warnAboutOrphans(dir: string, inUse: readonly string[], log: Logger): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names.filter((n) => !inUse.includes(n))) {
    const files = await readdir(join(dir, name)).catch(() => [] as string[]);
    const sizes = await Promise.all(files.filter((f) => f.endsWith('.log')).map((f) => stat(join(dir, name, f)).then((s) => s.size, () => 0)));
    if (sizes.some((s) => s > 0)) {
      log.warn('a notification queue of an endpoint that is not configured (or disabled) still holds events; they are kept, not sent', { queue: join(dir, name) });
    }
  }
}
