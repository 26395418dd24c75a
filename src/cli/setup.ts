/**
 * What every command builds the same way from a loaded Config: its logger and its storage driver.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { type Logger, createLogger } from '../log.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import { createDriver } from '../storage/driver/factory.js';

/** The logger `log.level` and `log.formatter` ask for (`logstash` is written as JSON lines). */
export function loggerFor(config: Config, write?: (line: string) => void): Logger {
  const format = config.log.formatter === 'text' ? 'text' : 'json';
  return createLogger({ level: config.log.level, format, ...(write && { write }) });
}

/** The driver of `storage`; a relative rootdirectory is taken from the working directory. */
export function driverFor(storage: Config['storage']): StorageDriver {
  return storage.driver === 'filesystem'
    ? createDriver({ kind: 'filesystem', root: resolve(storage.rootdirectory) })
    : createDriver({ kind: 'inmemory' });
}
