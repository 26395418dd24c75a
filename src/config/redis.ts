/**
 * The `redis` section: registry:2's Redis connection, which Berth uses where replicas must share state
 * (the link gate that orders linking against the garbage collector, and the lock that lets one
 * collector run at a time; see src/coordination/).
 *
 * Keys are registry:2's (v2.8, and v3.0-alpha's `username` and `tls.enabled`): `addr`, `username`,
 * `password`, `db`, `dialtimeout`, `readtimeout`, `writetimeout`, `tls.enabled`, `pool.maxidle`,
 * `pool.maxactive`, `pool.idletimeout`. registry:2 v3's `addrs` is accepted when it names exactly one
 * server (Berth speaks to one Redis, not a cluster or sentinels). As in registry:2, a duration written
 * as a bare integer counts nanoseconds, and zero or unset means the default. Without an address the
 * section means nothing (`Config.redis` undefined), as registry:2 treats an empty `addr`; its other keys
 * are still checked.
 *
 * Berth's client multiplexes every command over one connection, so the `pool` keys are checked but
 * change nothing.
 */
import { ConfigError, Lit, type RawMap, describe, lookup, NULL, readBool, readGoDuration, readString, stringList } from './raw.js';

/** How Berth connects to Redis. */
export interface RedisConfig {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  /** How long connecting may take. */
  readonly dialtimeoutMs: number;
  /** How long one command may wait for its answer (`readtimeout`, or `writetimeout` when only that is set). */
  readonly commandtimeoutMs: number;
  /** Connect with TLS (system CAs). */
  readonly tls: boolean;
  readonly pool: { readonly maxidle: number; readonly maxactive: number; readonly idletimeoutMs: number };
}

/** Connect in 10 s, a command answered within 5 s: when Redis does not answer, pushes fail rather than hang. */
export const DEFAULT_REDIS_DIAL_TIMEOUT_MS = 10_000;
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 5_000;

/** `redis`, or undefined when no address is configured. */
export function readRedis(root: RawMap): { redis?: RedisConfig } {
  const addr = readAddress(root);
  const read = readTimeout(root, 'redis.readtimeout');
  const write = readTimeout(root, 'redis.writetimeout');
  const settings = {
    username: readString(root, 'redis.username') || undefined,
    password: readString(root, 'redis.password') || undefined,
    db: readCount(root, 'redis.db', 0),
    dialtimeoutMs: readTimeout(root, 'redis.dialtimeout') ?? DEFAULT_REDIS_DIAL_TIMEOUT_MS,
    commandtimeoutMs: read ?? write ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
    tls: readBool(root, 'redis.tls.enabled', false),
    pool: {
      maxidle: readCount(root, 'redis.pool.maxidle', 0),
      maxactive: readCount(root, 'redis.pool.maxactive', 0),
      idletimeoutMs: readTimeout(root, 'redis.pool.idletimeout') ?? 0,
    },
  };
  return addr === undefined ? {} : { redis: { ...addr, ...settings } };
}

/** `addr` (v2.8), or `addrs` with one entry (v3): host and port. */
function readAddress(root: RawMap): { host: string; port: number } | undefined {
  const addr = readString(root, 'redis.addr') || undefined;
  const addrsRaw = lookup(root, 'redis.addrs');
  const addrs = addrsRaw === undefined ? [] : stringList(addrsRaw, 'redis.addrs');
  if (addr !== undefined && addrs.length > 0) throw new ConfigError('redis.addrs', 'give redis.addr or redis.addrs, not both');
  if (addrs.length > 1) {
    throw new ConfigError('redis.addrs', `Berth connects to one Redis server; got ${addrs.length} addresses (Redis Cluster and Sentinel are not supported)`);
  }
  const text = addr ?? addrs[0];
  if (text === undefined) return undefined;
  const key = addr !== undefined ? 'redis.addr' : 'redis.addrs[0]';
  const m = /^(\[[0-9A-Fa-f:.%]+\]|[^:[\]\s]+):(\d+)$/.exec(text);
  const port = Number(m?.[2]);
  if (m === null || !(port > 0 && port <= 65535)) throw new ConfigError(key, `expected host:port, got ${JSON.stringify(text)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** A Go duration (a bare integer counts nanoseconds); zero or unset answers undefined (the default). */
function readTimeout(root: RawMap, key: string): number | undefined {
  const ms = readGoDuration(root, key, '"10ms" or "5s"');
  if (ms === undefined) return undefined;
  if (ms < 0) throw new ConfigError(key, `must be zero or more, got ${describe(lookup(root, key) ?? NULL)}`);
  return ms > 0 ? Math.max(1, Math.round(ms)) : undefined;
}

/** A whole number, zero or more. */
function readCount(root: RawMap, key: string, fallback: number): number {
  const raw = lookup(root, key);
  if (raw === undefined) return fallback;
  const n = raw instanceof Lit ? (typeof raw.value === 'number' ? raw.value : Number(raw.text)) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(key, `expected a whole number, zero or more, got ${describe(raw)}`);
  return n;
}
