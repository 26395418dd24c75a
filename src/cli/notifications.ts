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
import { type Notifier, createNotifier } from '../notifications/notifier.js';

/** The notifier of `config`, or undefined when no endpoint is configured. */
export async function startNotifications(config: Config, log: Logger, metricsRegistry: Registry): Promise<Notifier | undefined> {
  const notifications = config.notifications;
  if (notifications === undefined) return undefined;
  const storage = config.storage;
  // Replicas on one root each keep their own queues: a journal has one writer. Give replicas stable
  // host names (a StatefulSet) so that a restarted replica finds what it had not delivered.
  const dir = storage.driver === 'filesystem'
    ? join(resolve(storage.rootdirectory), 'berth', 'notifications', ...(config.redis ? [hostname()] : []))
    : undefined;
  if (dir === undefined) {
    log.warn('notifications: queued in memory with this storage driver: events not delivered when the process stops are lost');
  }
  return createNotifier({
    endpoints: notifications.endpoints,
    includeReferences: notifications.includeReferences,
    dir,
    log: log.child({ component: 'notifications' }),
    instanceId: randomUUID(),
    sourceAddr: `${hostname()}:${config.http.addr.slice(config.http.addr.lastIndexOf(':') + 1)}`,
    metricsRegistry,
  });
}
