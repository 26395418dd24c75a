/**
 * The health checks `serve` runs, from the config: registry:2's storage driver check, made a little
 * stricter. registry:2 stats the root; Berth lists it, so a root that exists but cannot be read (lost
 * permissions, a stale mount) fails too. A root that was never written is healthy (a fresh registry).
 */
import type { Config } from '../config/schema.js';
import type { HealthCheck } from '../health/health.js';
import { type StorageDriver, isDriverError } from '../storage/driver/driver.js';

export function healthChecksFor(config: Config, driver: StorageDriver): HealthCheck[] {
  const storage = config.health.storagedriver;
  if (!storage.enabled) return [];
  return [
    {
      name: `storagedriver_${driver.name}`,
      intervalMs: storage.intervalMs,
      threshold: storage.threshold,
      async run(signal) {
        try {
          await driver.list('/', { signal });
        } catch (err) {
          if (isDriverError(err, 'PATH_NOT_FOUND')) return;
          throw err;
        }
      },
    },
  ];
}
