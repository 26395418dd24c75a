/**
 * The link gate (src/storage/maintenance/link-gate.ts) shared by every replica through Redis, so that a push or a
 * mount on one replica is ordered against the collector sweeping on another.
 *
 * State in Redis (keys under `prefix`, `berth:` by default):
 *   - `gate:lock:<digest>`: a hash of the digest's lock holders. `r:<token>` is a shared holder (a
 *     link operation), `x:<token>` the exclusive holder (the sweep), `w:<token>` a sweep waiting for
 *     the shared holders to leave (new shared holders wait behind it, so a sweep is not starved).
 *     Each field's value is its lease's expiry; expired fields are dropped by the next script that
 *     reads the hash, so a crashed replica's locks go away after at most one lease. Holders renew
 *     their lease while their operation runs; the key itself expires once every lease has.
 *   - `gate:linked`: a sorted set of digests scored by when they were last linked or touched, plus a
 *     member `since`: from that time on every link is recorded. A sweep is told the digest's time, or
 *     `since` when the digest has none, so state Redis lost (a restart without persistence, a flush,
 *     an eviction of the set) makes the gate keep blobs rather than delete them. Bounded: at most
 *     `maxLinkTimes` entries (the oldest go first and `since` moves up past them), and
 *     `forgetBefore` drops what no run can need.
 *   - `gate:clock`: the gate's clock. Every time comes from Redis's `TIME` inside the script that uses
 *     it, never from a replica, and never goes back (the largest time handed out is kept), so replica
 *     clock skew cannot reorder a link and a collection. The collector reads its run's start time
 *     from here too (`now()`).
 *
 * Every step is one Lua script, atomic in Redis: acquiring all of a link operation's digests at once
 * (all or none, so two operations never wait on each other in a cycle), releasing them and recording
 * the link time, and acquiring a digest exclusively while reading its last link time. Waiting is by
 * polling with backoff.
 *
 * Leases are the limit of any lock service: a holder that stops for longer than its lease (15 s by
 * default, renewed every third of it) while its operation is still running loses the lock without
 * knowing. The release notices: a link operation whose lease lapsed fails (503, nothing acknowledged),
 * and a sweep whose lease lapsed throws, which stops the collection and names the blob.
 *
 * When Redis cannot be reached, link operations fail with 503 UNAVAILABLE, sweeps fail (the collection
 * stops), and `touch` and `forgetBefore` are logged and skipped (a touch only spares a blob a
 * needless refusal; see link-gate.ts).
 */
import { randomBytes } from 'node:crypto';
import { RegistryError } from '../errors.js';
import type { Digest } from '../storage/digest.js';
import type { LinkGate } from '../storage/maintenance/link-gate.js';
import { type RedisClient, type ScriptArg, luaScript } from './redis-client.js';

/** How to build the gate. */
export interface RedisLinkGateOptions {
  readonly client: RedisClient;
  /** Prefix of every key (default `berth:`): replicas of one registry share it, other registries on the same Redis must not. */
  readonly prefix?: string;
  /** How long a lock outlives a holder that stops renewing it (default 15 s). */
  readonly leaseMs?: number;
  /** How many link times are kept (default 200 000, as the in-process gate). */
  readonly maxLinkTimes?: number;
  /** Told why a touch or a clean-up failed, or that a lease was lost. */
  readonly onError?: (msg: string, err?: unknown) => void;
  /**
   * Told, once per operation, that a link or sweep found its digests held by another and now waits
   * (a waiting sweep's claim is in place by then, keeping new links out). For tests that order steps.
   */
  readonly onWait?: (wait: GateWait) => void;
}

/** A link operation or sweep that has to wait for its digests. */
export interface GateWait {
  readonly op: 'link' | 'sweep';
  readonly digests: readonly Digest[];
}

/** The gate, and its clock. */
export interface RedisLinkGate extends LinkGate {
  /** The gate's clock (ms): Redis's TIME, never behind a time the gate already used. */
  now(): Promise<number>;
}

const DEFAULT_LEASE_MS = 15_000;
const DEFAULT_MAX_LINK_TIMES = 200_000;
/** How long a waiting sweep's claim keeps new links out unless it polls again. */
const WAIT_CLAIM_MS = 2_000;
const MAX_POLL_MS = 50;

/** Lua helpers every script starts with. `release` drops `field` from the first n keys and answers 1 when it was held on each until now. */
const PRELUDE = `
local function clock(key)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('GET', key))
  if last and last >= ms then return last end
  redis.call('SET', key, ms)
  return ms
end
local function holders(key, now)
  local flat = redis.call('HGETALL', key)
  local live = {}
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) < now then redis.call('HDEL', key, flat[i]) else live[flat[i]] = true end
  end
  return live
end
local function release(n, field, now)
  local held = 1
  for i = 1, n do
    local exp = tonumber(redis.call('HGET', KEYS[i], field))
    if not exp or exp < now then held = 0 end
    redis.call('HDEL', KEYS[i], field)
  end
  return held
end
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local function since(z, now)
  local s = redis.call('ZSCORE', z, 'since')
  if s then return tonumber(s) end
  redis.call('ZADD', z, now, 'since')
  return now
end
local function trim(z, max)
  if redis.call('ZCARD', z) <= max + 1 then return end
  redis.call('ZREM', z, 'since')
  local n = redis.call('ZCARD', z)
  if n > max then redis.call('ZREMRANGEBYRANK', z, 0, n - max - 1) end
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  redis.call('ZADD', z, first[2], 'since')
end
`;

/** KEYS: lock keys…, clock. ARGV: token, lease. 1 when every digest is now held shared, 0 when one is swept or claimed. */
const LINK_ACQUIRE = luaScript(`${PRELUDE}
local n = #KEYS - 1
local now = clock(KEYS[n + 1])
for i = 1, n do
  for f in pairs(holders(KEYS[i], now)) do
    local kind = string.sub(f, 1, 2)
    if kind == 'x:' or kind == 'w:' then return 0 end
  end
end
local lease = tonumber(ARGV[2])
for i = 1, n do
  redis.call('HSET', KEYS[i], 'r:' .. ARGV[1], now + lease)
  extend(KEYS[i], lease)
end
return 1
`);

/** KEYS: lock keys…, linked, clock. ARGV: field, record (1/0), max, digests…. Records the link time; 1 when the lease held throughout. */
const LINK_RELEASE = luaScript(`${PRELUDE}
local n = #KEYS - 2
local now = clock(KEYS[n + 2])
local held = release(n, ARGV[1], now)
if ARGV[2] == '1' then
  local z = KEYS[n + 1]
  since(z, now)
  for i = 1, n do redis.call('ZADD', z, now, ARGV[3 + i]) end
  trim(z, tonumber(ARGV[3]))
end
return held
`);

/**
 * KEYS: lock, linked, clock. ARGV: token, lease, claim, digest. {1, last linked} once held
 * exclusively; {0} (and a claim that keeps new links out) while others hold it.
 */
const SWEEP_ACQUIRE = luaScript(`${PRELUDE}
local now = clock(KEYS[3])
local mine = 'x:' .. ARGV[1]
for f in pairs(holders(KEYS[1], now)) do
  local kind = string.sub(f, 1, 2)
  if kind == 'r:' or (kind == 'x:' and f ~= mine) then
    redis.call('HSET', KEYS[1], 'w:' .. ARGV[1], now + tonumber(ARGV[3]))
    extend(KEYS[1], tonumber(ARGV[3]))
    return {0}
  end
end
redis.call('HDEL', KEYS[1], 'w:' .. ARGV[1])
redis.call('HSET', KEYS[1], mine, now + tonumber(ARGV[2]))
extend(KEYS[1], tonumber(ARGV[2]))
local s = since(KEYS[2], now)
local at = redis.call('ZSCORE', KEYS[2], ARGV[4])
return {1, at or tostring(s)}
`);

/** KEYS: lock keys…, clock. ARGV: field. Releases; 1 when the lease held throughout. */
const RELEASE = luaScript(`${PRELUDE}
local n = #KEYS - 1
local now = clock(KEYS[n + 1])
return release(n, ARGV[1], now)
`);

/** KEYS: lock keys…, clock. ARGV: field, lease. Extends a held lease; 1 when every one was still held. */
const RENEW = luaScript(`${PRELUDE}
local n = #KEYS - 1
local now = clock(KEYS[n + 1])
local lease = tonumber(ARGV[2])
local held = 1
for i = 1, n do
  local exp = tonumber(redis.call('HGET', KEYS[i], ARGV[1]))
  if not exp or exp < now then
    held = 0
  else
    redis.call('HSET', KEYS[i], ARGV[1], now + lease)
    extend(KEYS[i], lease)
  end
end
return held
`);

/** KEYS: linked, clock. ARGV: digest, max. */
const TOUCH = luaScript(`${PRELUDE}
local now = clock(KEYS[2])
since(KEYS[1], now)
redis.call('ZADD', KEYS[1], now, ARGV[1])
trim(KEYS[1], tonumber(ARGV[2]))
return now
`);

/** KEYS: linked, clock. ARGV: before. Drops older times; `since` moves up to `before`. */
const FORGET = luaScript(`${PRELUDE}
local now = clock(KEYS[2])
local s = since(KEYS[1], now)
local before = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if s < before then redis.call('ZADD', KEYS[1], before, 'since') end
return 1
`);

/** KEYS: clock. */
const NOW = luaScript(`${PRELUDE}
return clock(KEYS[1])
`);

/** A gate whose locks and link times live in Redis. */
export function createRedisLinkGate(o: RedisLinkGateOptions): RedisLinkGate {
  const prefix = o.prefix ?? 'berth:';
  const leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
  const maxLinkTimes = o.maxLinkTimes ?? DEFAULT_MAX_LINK_TIMES;
  const clockKey = `${prefix}gate:clock`;
  const linkedKey = `${prefix}gate:linked`;
  const lockKey = (d: Digest): string => `${prefix}gate:lock:${d}`;
  const report = o.onError ?? (() => undefined);

  /** Runs a script; a Redis failure becomes 503 UNAVAILABLE. */
  const run = async (script: typeof NOW, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown> => {
    try {
      return await o.client.run(script, keys, args);
    } catch (err) {
      throw unavailable(err);
    }
  };

  /** Renews `field` on `keys` every third of the lease until stopped. */
  const keepAlive = (keys: readonly string[], field: string): { stop(): void } => {
    const timer = setInterval(() => {
      run(RENEW, [...keys, clockKey], [field, leaseMs]).then(
        (held) => held === 1 || report(`link gate: lease ${field} on ${keys.length} digest(s) lapsed while its operation ran`),
        (err: unknown) => report('link gate: renewing a lease failed', err),
      );
    }, Math.max(1, Math.floor(leaseMs / 3)));
    timer.unref();
    return { stop: () => clearInterval(timer) };
  };

  return {
    async link(digests, op) {
      const unique = [...new Set(digests)].sort();
      if (unique.length === 0) return op();
      const token = newToken();
      const field = `r:${token}`;
      const keys = unique.map(lockKey);
      await poll(async () => (await run(LINK_ACQUIRE, [...keys, clockKey], [token, leaseMs])) === 1, () => o.onWait?.({ op: 'link', digests: unique }));
      const renewal = keepAlive(keys, field);
      let outcome: { ok: true; value: Awaited<ReturnType<typeof op>> } | { ok: false; err: unknown };
      try {
        outcome = { ok: true, value: await op() };
      } catch (err) {
        outcome = { ok: false, err };
      } finally {
        renewal.stop();
      }
      if (!outcome.ok) {
        await run(RELEASE, [...keys, clockKey], [field]).catch((e: unknown) => report('link gate: releasing a lock failed', e));
        throw outcome.err;
      }
      const held = await run(LINK_RELEASE, [...keys, linkedKey, clockKey], [field, 1, maxLinkTimes, ...unique]);
      if (held !== 1) {
        report(`link gate: a link operation's lease on ${unique.join(', ')} lapsed before it finished; answered 503`);
        throw new RegistryError('UNAVAILABLE', 'the lock on the linked blobs lapsed before the operation finished; retry');
      }
      return outcome.value;
    },

    touch(d) {
      run(TOUCH, [linkedKey, clockKey], [d, maxLinkTimes]).catch((err: unknown) => report(`link gate: recording a read of ${d} failed`, err));
    },

    async sweep(d, op) {
      const token = newToken();
      const field = `x:${token}`;
      const key = lockKey(d);
      let last: number | undefined;
      await poll(async () => {
        const reply = (await run(SWEEP_ACQUIRE, [key, linkedKey, clockKey], [token, leaseMs, WAIT_CLAIM_MS, d])) as unknown[];
        if (reply[0] !== 1) return false;
        last = Number(reply[1]);
        return true;
      }, () => o.onWait?.({ op: 'sweep', digests: [d] }));
      const renewal = keepAlive([key], field);
      let outcome: { ok: true; value: Awaited<ReturnType<typeof op>> } | { ok: false; err: unknown };
      try {
        outcome = { ok: true, value: await op(Number.isFinite(last) ? last : undefined) };
      } catch (err) {
        outcome = { ok: false, err };
      } finally {
        renewal.stop();
      }
      const held = await run(RELEASE, [key, clockKey], [field]).catch((err: unknown) => (outcome.ok ? Promise.reject(err) : 1));
      if (!outcome.ok) throw outcome.err;
      if (held !== 1) {
        throw new Error(`link gate: the sweep's lock on ${d} lapsed while it ran; a link made meanwhile may name a deleted blob (run berth check)`);
      }
      return outcome.value;
    },

    forgetBefore(before) {
      if (!Number.isFinite(before)) return;
      run(FORGET, [linkedKey, clockKey], [Math.floor(before)]).catch((err: unknown) => report('link gate: forgetting old link times failed', err));
    },

    async now() {
      return Number(await run(NOW, [clockKey], []));
    },
  };
}

/** Retries `attempt` with backoff (1 ms doubling to 50 ms, with jitter) until it answers true; `waiting` is called once, on the first refusal. */
async function poll(attempt: () => Promise<boolean>, waiting: () => void): Promise<void> {
  let delay = 1;
  while (!(await attempt())) {
    if (delay === 1) waiting();
    await new Promise((resolve) => setTimeout(resolve, delay + Math.random() * delay));
    delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

function newToken(): string {
  return randomBytes(9).toString('base64url');
}

function unavailable(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const why = err instanceof Error ? err.message : String(err);
  return new RegistryError('UNAVAILABLE', `the lock service (Redis) is unavailable: ${why}`, undefined, { cause: err });
}
