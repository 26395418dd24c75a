/**
 * What every command builds the same way from a loaded Config: its logger and its storage driver.
 */
import { resolve } from 'node:path';
import type { Config, S3StorageConfig } from '../config/schema.js';
import { type Logger, createLogger } from '../log.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import { openDriver } from '../storage/driver/factory.js';
import type { S3DriverOptions } from '../storage/driver/s3.js';
import type { DriverCallObserver } from '../storage/driver/instrument.js';

/**
 * The logger `log.level` and `log.formatter` ask for (`logstash` is written as JSON lines), with
 * `log.fields` on every line. `async`: stderr written in the background (the server), not line by line.
 */
export function loggerFor(config: Config, write?: (line: string) => void, async = false): Logger {
  const format = config.log.formatter === 'text' ? 'text' : 'json';
  return createLogger({ level: config.log.level, format, async, ...(write && { write }) }, { ...config.log.fields });
}

/**
 * The driver of `storage`; a relative rootdirectory is taken from the working directory. `observe`
 * hears every driver call (the storage metrics). `blocking`: a filesystem driver reads with blocking
 * calls, for an offline command that owns its process (never for `serve`). `blockingStatsWhileWriting`:
 * for one of several `http.workers` (see FilesystemDriverOptions).
 */
export function driverFor(
  storage: Config['storage'], observe?: DriverCallObserver, o: { readonly blocking?: boolean; readonly blockingStatsWhileWriting?: boolean } = {},
): Promise<StorageDriver> {
  switch (storage.driver) {
    case 'filesystem':
      return openDriver({ kind: 'filesystem', root: resolve(storage.rootdirectory), blocking: o.blocking === true, blockingStatsWhileWriting: o.blockingStatsWhileWriting === true }, observe);
    case 'inmemory':
      return openDriver({ kind: 'inmemory' }, observe);
    case 's3':
      return openDriver({ kind: 's3', ...s3Options(storage.s3, !storage.redirect.disable) }, observe);
  }
}

/** registry:2's `storage.s3` keys as the s3 driver's options. */
function s3Options(s3: S3StorageConfig, redirect: boolean): S3DriverOptions {
  return {
    bucket: s3.bucket,
    region: s3.region,
    regionEndpoint: s3.regionendpoint,
    forcePathStyle: s3.forcepathstyle,
    secure: s3.secure,
    skipVerify: s3.skipverify,
    accessKey: s3.accesskey,
    secretKey: s3.secretkey,
    rootDirectory: s3.rootdirectory,
    chunkSize: s3.chunksize,
    storageClass: s3.storageclass,
    objectAcl: s3.objectacl,
    multipartCopyThresholdSize: s3.multipartcopythresholdsize,
    multipartCopyChunkSize: s3.multipartcopychunksize,
    multipartCopyMaxConcurrency: s3.multipartcopymaxconcurrency,
    redirect,
    useDualstack: s3.usedualstack,
    useAccelerate: s3.accelerate,
    useFips: s3.usefipsendpoint,
  };
}
