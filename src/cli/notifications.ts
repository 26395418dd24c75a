/**
 * Starts registry:2's webhook notifications for `berth serve` from `config.notifications`: the queues
 * live under `<rootdirectory>/berth/notifications/` with filesystem storage (outside
 * docker/registry/v2, so the registry:2 layout is untouched), in a directory of this host's own there
 * when replicas share the root (`redis` configured), and in memory with other storage.
 * Each event's `source` is `hostname:port` (the port of `http.addr`) and a fresh instance id, as
 * registry:2 fills it.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { type Notifier, type NotifierOptions, createNotifier, queueDirName } from '../notifications/notifier.js';
import type { Replicas } from './replicas.js';

/** The notifier of `config`, or undefined when no endpoint is configured. */
export async function startNotifications(config: Config, log: Logger, metricsRegistry: Registry, replicas?: Replicas): Promise<Notifier | undefined> {
  const notifications = config.notifications;
  if (notifications === undefined) return undefined;
  const storage = config.storage;
  // Replicas share one queue per endpoint in Redis (a stream with a consumer group), delivered by
  // whichever replica holds the endpoint's lease.
  const openQueue = replicas && (await redisQueues(replicas, log));
  const dir = storage.driver === 'filesystem' && !openQueue ? join(resolve(storage.rootdirectory), 'berth', 'notifications') : undefined;
  if (dir === undefined && !openQueue) {
    log.warn('notifications: queued in memory with this storage driver: events not delivered when the process stops are lost');
  }
  return createNotifier({
    endpoints: notifications.endpoints,
    includeReferences: notifications.includeReferences,
    dir,
    ...(openQueue && { openQueue }),
    log: log.child({ component: 'notifications' }),
    instanceId: randomUUID(),
    sourceAddr: `${hostname()}:${config.http.addr.slice(config.http.addr.lastIndexOf(':') + 1)}`,
    metricsRegistry,
  });
}

/** How long an endpoint's delivery waits for a killed replica's lease to lapse. */
const NOTIFY_LEASE_MS = 10_000;

/** Opens endpoint queues as Redis Streams; warns when Redis would not keep them across its own restart. */
async function redisQueues(replicas: Replicas, log: Logger): Promise<NonNullable<NotifierOptions['openQueue']>> {
  const { openRedisQueue } = await import('../notifications/redis-queue.js');
  const aof = await replicas.client.setting('appendonly');
  if (aof === 'no') {
    log.warn('notifications: queued in redis, which has appendonly off: events not yet delivered are lost if Redis restarts; set appendonly yes');
  }
  return (endpoint, maxBytes, qlog) => {
    const name = queueDirName(endpoint);
    return openRedisQueue({
      client: replicas.client, key: `${replicas.prefix}notify:${name}`, lock: replicas.lock(`notify:${name}:lease`, NOTIFY_LEASE_MS), maxBytes, log: qlog,
    });
  };
}
