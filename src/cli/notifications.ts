/**
 * Starts registry:2's webhook notifications for `berth serve` from `config.notifications`: the queues
 * live in Redis when replicas share storage (`redis` configured), else beside the registry:2 tree
 * (outside docker/registry/v2, so its layout is untouched): under `<rootdirectory>/berth/notifications/`
 * with filesystem storage, as objects under `/berth/notifications/` in the bucket with S3, and in
 * memory with inmemory storage (which loses everything at exit anyway).
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
import { type QueueObjects, openObjectQueue } from '../notifications/object-queue.js';
import { type StorageDriver, isDriverError } from '../storage/driver/driver.js';
import { paths } from '../storage/paths.js';
import type { Replicas } from './replicas.js';

/** The notifier of `config`, or undefined when no endpoint is configured. */
export async function startNotifications(
  config: Config, log: Logger, metricsRegistry: Registry, driver: StorageDriver, replicas?: Replicas,
): Promise<Notifier | undefined> {
  const notifications = config.notifications;
  if (notifications === undefined) return undefined;
  const storage = config.storage;
  // Replicas share one queue per endpoint in Redis (a stream with a consumer group), delivered by
  // whichever replica holds the endpoint's lease.
  const openQueue = replicas ? await redisQueues(replicas, log) : storage.driver === 's3' ? driverQueues(driver) : undefined;
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

/** Opens endpoint queues as objects in storage itself (the S3 bucket), outside the registry:2 tree. */
function driverQueues(driver: StorageDriver): NonNullable<NotifierOptions['openQueue']> {
  return (endpoint, maxBytes, qlog, onLost) => openObjectQueue({ objects: driverObjects(driver, paths.notificationQueue(queueDirName(endpoint))), maxBytes, log: qlog, onLost });
}

/** The objects directly under `dir` in `driver`, as a queue's object store. */
function driverObjects(driver: StorageDriver, dir: string): QueueObjects {
  const missing = (err: unknown): boolean => isDriverError(err, 'PATH_NOT_FOUND');
  return {
    where: `${driver.name} ${dir}/`,
    async list() {
      try {
        return (await driver.list(dir)).map((path) => path.slice(path.lastIndexOf('/') + 1));
      } catch (err) {
        if (missing(err)) return [];
        throw err;
      }
    },
    async read(name) {
      try {
        return await driver.getContent(`${dir}/${name}`);
      } catch (err) {
        if (missing(err)) return undefined;
        throw err;
      }
    },
    write: (name, data) => driver.putContent(`${dir}/${name}`, data),
    async remove(name) {
      try {
        await driver.delete(`${dir}/${name}`);
      } catch (err) {
        if (!missing(err)) throw err;
      }
    },
  };
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
