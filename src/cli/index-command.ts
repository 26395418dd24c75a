/**
 * The listing index (src/indexdb/) as the command line and the server set it up, and
 * `berth index rebuild [config.yml]`.
 *
 * The index lives at `<rootdirectory>/berth/index`, beside the registry:2 tree and outside
 * `docker/registry/v2`, so a copy of the root is still a registry:2 root. The in-memory driver keeps no
 * index (its walk is already fast, and nothing survives a restart to rebuild from anyway).
 *
 * `serve` rebuilds the index in the background at every start and answers from storage until the
 * rebuild is done, so the command is not needed for correctness. It is for operators: it rebuilds the
 * database while the server is stopped (replacing a damaged one), reports what it found, and exits.
 * While a server holds the database it refuses (LevelDB's lock) and exits 1.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../config/parse.js';
import type { Config } from '../config/schema.js';
import { type IndexDb, isIndexLocked, openIndexDb, startIndexDb } from '../indexdb/index-db.js';
import { type Logger, createLogger } from '../log.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import { createDriver } from '../storage/driver/factory.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import type { RedisIndex } from '../indexdb/redis-index.js';
import type { RedisTimes } from '../indexdb/redis-times.js';
import { type Replicas, startReplicas } from './replicas.js';
import { driverFor } from './setup.js';
import { describeHolder, indexLocation, otherHolder, readHolder, recordHolder, serveRefusal } from './root-holder.js';

const USAGE = 'usage: berth index rebuild [config.yml]\n';

export { indexLocation };

/**
 * For `serve`: opens the index of the configured root and starts its rebuild in the background.
 * Undefined for the in-memory driver, with `redis` (replicas), and (after a warning) when the
 * database cannot be opened. `driver` is the driver the registry is given; the index reads storage
 * through it directly. The index's lock doubles as the root's: when another process holds it (a
 * second `serve` on one root without `redis`, or an offline command that writes), start-up is refused
 * with a CommandError naming the root and that process (root-holder.ts).
 */
export async function startIndex(config: Config, driver: StorageDriver, log: Logger): Promise<IndexDb | undefined> {
  if (config.storage.driver !== 'filesystem') return undefined;
  // Replicas (`redis` configured) on one root: each one's index would miss the others' writes, so
  // none keeps one and listings walk storage.
  if (config.redis !== undefined) return undefined;
  const root = config.storage.rootdirectory;
  const other = await otherHolder(config);
  if (other) throw serveRefusal(root, other.holder);
  const location = indexLocation(root);
  const index = await startIndexDb({ location, source: createIndexSource(driver), log });
  // Lost a race with another process that took the lock between the look and the open.
  if (!index && (await otherHolder(config))) throw serveRefusal(root, await readHolder(location));
  if (index) await recordHolder(location, 'serve');
  return index;
}

/**
 * For `serve` with `redis` (replicas): the listing index in Redis (src/indexdb/redis-index.ts), shared
 * by every replica, rebuilt by whichever replica finds it incomplete. The module is loaded only then.
 * The offline commands pass `autoRebuild: false`: they report their writes to it or read it, and
 * leave rebuilding to the replicas and `berth index rebuild`.
 */
export async function startRedisIndex(replicas: Replicas, driver: StorageDriver, log: Logger, autoRebuild = true): Promise<RedisIndex> {
  const { createRedisIndex } = await import('../indexdb/redis-index.js');
  return createRedisIndex({
    client: replicas.client, source: createIndexSource(driver), lock: replicas.lock('idx:rebuild:lock'), log, prefix: `${replicas.prefix}idx:`, autoRebuild,
  });
}

/** The replicas' push and pull times, in Redis beside their shared index (its key prefix). */
export async function startRedisTimes(replicas: Replicas, log: Logger): Promise<RedisTimes> {
  const { createRedisTimes } = await import('../indexdb/redis-times.js');
  return createRedisTimes({ client: replicas.client, prefix: `${replicas.prefix}idx:`, log });
}

/**
 * True when a server is serving the configured root with its index (it holds the database's lock).
 * An offline command that deletes manifests or tags (garbage-collect --delete-untagged, check --repair)
 * while such a server runs leaves that server's listings stale until it restarts: say so, or refuse.
 */
export async function serverHoldsIndex(config: Config): Promise<boolean> {
  return config.storage.driver === 'filesystem' && isIndexLocked(indexLocation(config.storage.rootdirectory));
}

/**
 * `berth index rebuild [config.yml]`: answers the exit code (0 rebuilt, 1 failed, 2 bad command line).
 * @throws ConfigError from the configuration, for main to print
 */
export async function indexCommand(args: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const [action, file, ...rest] = args;
  if (action !== 'rebuild' || rest.length > 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  const log = createLogger({ level: config.log.level, format: config.log.formatter === 'text' ? 'text' : 'json' });
  for (const w of warnings) log.warn(w);
  const storage = config.storage;
  if (config.redis !== undefined) return rebuildInRedis(config, log);
  if (storage.driver !== 'filesystem') {
    process.stdout.write('berth index: in-memory storage keeps no index; nothing to rebuild\n');
    return 0;
  }
  const location = indexLocation(storage.rootdirectory);
  const driver = createDriver({ kind: 'filesystem', root: resolve(storage.rootdirectory) });
  const index = await openIndexDb({ location, source: createIndexSource(driver), log });
  if (!index) {
    const other = await otherHolder(config);
    const why = other ? `it is in use by ${describeHolder(other.holder)}; a server rebuilds the index at every start` : 'see the log above';
    process.stderr.write(`berth index: cannot open ${location} (${why})\n`);
    return 1;
  }
  const forget = await recordHolder(location, 'index rebuild');
  try {
    const report = await index.rebuild();
    if (!report) {
      process.stderr.write(`berth index: the rebuild of ${location} failed (see the log above)\n`);
      return 1;
    }
    process.stdout.write(
      `index rebuilt: generation ${report.generation}, ${report.repositories} repositories, ${report.tags} tags, ` +
        `${report.referrers} referrers, ${report.blobs} blob descriptors in ${report.ms} ms (${location})\n`,
    );
    return 0;
  } finally {
    await forget();
    await index.close();
  }
}

/** `berth index rebuild` with `redis`: rebuilds the replicas' shared index (waiting for a rebuild under way elsewhere). */
async function rebuildInRedis(config: Config, log: Logger): Promise<number> {
  const replicas = await startReplicas(config, log, false);
  if (!replicas) return 1;
  try {
    const driver = await driverFor(config.storage);
    const { createRedisIndex } = await import('../indexdb/redis-index.js');
    const index = createRedisIndex({
      client: replicas.client, source: createIndexSource(driver), lock: replicas.lock('idx:rebuild:lock'), log,
      prefix: `${replicas.prefix}idx:`, autoRebuild: false,
    });
    try {
      const report = await index.rebuild();
      if (!report) {
        process.stderr.write(`berth index: the rebuild in redis (${replicas.client.where}) failed (see the log above)\n`);
        return 1;
      }
      process.stdout.write(
        `index rebuilt in redis: generation ${report.generation}, ${report.repositories} repositories, ${report.tags} tags, ` +
          `${report.referrers} referrers, ${report.caughtUp} caught up, in ${report.ms} ms (${replicas.client.where})\n`,
      );
      return 0;
    } finally {
      await index.close();
    }
  } finally {
    await replicas.close();
  }
}
