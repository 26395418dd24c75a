/**
 * What `serve` shares with other replicas, from the `redis` section.
 *
 * With `redis`: the link gate (src/coordination/redis-link-gate.ts) orders every replica's links
 * against whichever replica's collector sweeps, a cluster-wide lock lets one collector run at a time,
 * and the collector takes its start time from the gate's clock in Redis. Redis must be reachable at
 * start (else start-up fails naming `redis.addr`); later outages fail pushes with 503 and stop a
 * collection, and never let a deletion through. A Redis whose `maxmemory-policy` may evict keys is
 * warned about: an evicted lock is a lock that was never taken.
 *
 * Without `redis`: the gate is in-process, which is right for one server. Start-up says so when the
 * collector can run (scheduled, or `POST /debug/gc`), because replicas sharing the storage would then
 * each have their own gate: the collector must not run on more than one of them, nor while the others
 * take pushes.
 *
 * The Redis modules (and ioredis, some 19 MiB of resident memory) are loaded only when `redis` is set.
 */
import type { Config } from '../config/schema.js';
import type { ClusterLock } from '../coordination/cluster-lock.js';
import type { RedisClient } from '../coordination/redis-client.js';
import type { RedisLinkGate } from '../coordination/redis-link-gate.js';
import type { TagLanes } from '../storage/manifests/tag-lanes.js';
import type { SharedQuotaLocks } from '../storage/registry.js';
import { ConfigError } from '../config/raw.js';
import type { Logger } from '../log.js';

/** The shared parts, when `redis` is configured. */
export interface Replicas {
  /** The connection every shared part uses (the listing index and notification queues too). */
  readonly client: RedisClient;
  /** Keys of Berth's shared state start with this. */
  readonly prefix: string;
  /** A cluster lock on `key` (under `prefix`), e.g. for the index rebuilder; its lease is `leaseMs` (default 30 s). */
  lock(key: string, leaseMs?: number): ClusterLock;
  readonly linkGate: RedisLinkGate;
  /** Each tag's writes take turns across the replicas (redis-tag-lanes.ts). */
  readonly tagLanes: TagLanes;
  /** Each quota's check and link take turns across the replicas (redis-quota-locks.ts). */
  readonly quotaLocks: SharedQuotaLocks;
  readonly cluster: { readonly lock: ClusterLock; readonly now: () => Promise<number> };
  /** Closes the connection (after the server and the collector have stopped). */
  close(): Promise<void>;
}

/** Keys of Berth's shared state in Redis start with this. */
const PREFIX = 'berth:';

/**
 * Connects to Redis and builds the shared gate and lock; undefined (after saying what that means) without `redis`.
 * `serving` is false for the offline commands, which share no uploads or tokens and so have nothing to
 * say about the per-process settings of a server.
 */
export async function startReplicas(config: Config, log: Logger, serving = true): Promise<Replicas | undefined> {
  const redis = config.redis;
  if (redis === undefined) {
    sayInProcess(config, log);
    return undefined;
  }
  const [{ connectRedis }, { createRedisLinkGate }, { createRedisClusterLock }, { createRedisTagLanes }, { createRedisQuotaLocks }] = await Promise.all([
    import('../coordination/redis-client.js'),
    import('../coordination/redis-link-gate.js'),
    import('../coordination/cluster-lock.js'),
    import('../coordination/redis-tag-lanes.js'),
    import('../coordination/redis-quota-locks.js'),
  ]);
  const rlog = log.child({ component: 'redis' });
  const complain = throttled(rlog);
  let client: RedisClient;
  try {
    client = await connectRedis({
      host: redis.host, port: redis.port, username: redis.username, password: redis.password, db: redis.db,
      connectTimeoutMs: redis.dialtimeoutMs, commandTimeoutMs: redis.commandtimeoutMs, tls: redis.tls,
      onError: (err) => complain('redis connection error', err),
    });
  } catch (err) {
    throw new ConfigError('redis.addr', err instanceof Error ? err.message : String(err), { cause: err });
  }
  const policy = await client.setting('maxmemory-policy');
  if (policy !== undefined && policy !== 'noeviction') {
    rlog.warn(`redis maxmemory-policy is ${policy}: Redis may evict Berth's locks and link times under memory pressure; use noeviction`);
  }
  const linkGate = createRedisLinkGate({ client, prefix: PREFIX, onError: (msg, err) => complain(msg, err) });
  const lock = createRedisClusterLock({ client, key: `${PREFIX}gc:lock`, onError: (msg, err) => complain(msg, err) });
  const tagLanes = createRedisTagLanes({
    lockFor: (repo, tag) => createRedisClusterLock({ client, key: `${PREFIX}tag:${repo}:${tag}`, onError: (msg, err) => complain(msg, err) }),
  });
  const quotaLocks = createRedisQuotaLocks({
    lockFor: (quota) => createRedisClusterLock({ client, key: `${PREFIX}quota:${quota}`, onError: (msg, err) => complain(msg, err) }),
  });
  if (serving) {
    rlog.info('replicas: link gate, tag lanes, quota locks, collector lock and listing index in redis', { redis: client.where });
    warnAboutPerProcessKeys(config, rlog);
  }
  return {
    client, prefix: PREFIX, linkGate, tagLanes, quotaLocks, cluster: { lock, now: () => linkGate.now() }, close: () => client.close(),
    lock: (key, leaseMs) => createRedisClusterLock({
      client, key: `${PREFIX}${key}`, onError: (msg, err) => complain(msg, err), ...(leaseMs !== undefined && { leaseMs }),
    }),
  };
}

function sayInProcess(config: Config, log: Logger): void {
  const collectorCanRun = config.storage.maintenance.gc.enabled || config.http.debug.addr !== undefined;
  if (config.storage.driver === 'inmemory' || !collectorCanRun) return;
  log.info(
    'no redis configured: the link gate is in this process. If several replicas serve this storage, the online collector ' +
      'must not run on more than one replica, nor while the other replicas take pushes; configure redis for replicas',
  );
}

/** Settings that stay per process and so differ between replicas unless set explicitly. */
function warnAboutPerProcessKeys(config: Config, log: Logger): void {
  if (config.http.secret === undefined) {
    log.warn('redis is configured (replicas) but http.secret is not: each replica makes its own, and an upload cannot move between them');
  }
  const auth = config.auth;
  if (auth?.kind === 'builtin' && auth.signingkey === undefined && config.storage.driver === 'inmemory') {
    log.warn('redis is configured (replicas) but auth.builtin.signingkey is not: each replica signs tokens with its own key');
  }
}

/** Logs a message at most once per 10 s (per message), counting the ones it held back. */
function throttled(log: Logger): (msg: string, err?: unknown) => void {
  const last = new Map<string, { at: number; held: number }>();
  return (msg, err) => {
    const now = Date.now();
    const seen = last.get(msg);
    if (seen && now - seen.at < 10_000) {
      seen.held += 1;
      return;
    }
    last.set(msg, { at: now, held: 0 });
    log.warn(msg, { ...(err !== undefined && { err }), ...(seen && seen.held > 0 && { suppressed: seen.held }) });
  };
}
