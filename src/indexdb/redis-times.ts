/**
 * Push and pull times in Redis, for replicas (`redis` configured): the times every replica records
 * and reads, so retention's `pulledwithin`/`mostrecentlypushed`, usage's last push and pull and the
 * web UI agree whichever replica served the push or the pull (storage/indexing/manifest-times.ts says
 * what the times mean).
 *
 * One hash per repository, `<prefix>times:<repo>`, with a field `push:<digest>` and `pull:<digest>` per
 * revision (milliseconds since the epoch). A time only ever moves forward: every write is a script that
 * keeps the later of the stored and the new time, so replicas writing one revision in any order end
 * with the latest. `setTimes` (tools and tests) sets outright. Pulls are noted in memory and written
 * every few seconds and at close, all of one batch in one round trip per repository, so a GET never
 * waits for Redis.
 *
 * Times are kept, not derived: the index's rebuild does not touch them. The fields of a deleted
 * revision stay (retention and the UI go by the revisions that exist; a repository's last push and
 * pull may then be those of a revision deleted since, which did happen). Redis failing loses times (a noted pull, a push's time), never a request:
 * reads then answer undefined and the revision link's modification time stands in for the push.
 */
import type { RedisClient } from '../coordination/redis-client.js';
import { luaScript } from '../coordination/redis-client.js';
import type { Logger } from '../log.js';
import { type Digest, parseDigest } from '../storage/digest.js';
import type { RepoName } from '../storage/indexing/index-port.js';
import type { RevisionTimes, TimesStore } from '../storage/indexing/manifest-times.js';
import { PULL_FLUSH_MS, later } from './times.js';

/** Sets each field ARGV[2i-1] of hash KEYS[1] to ARGV[2i] unless it already holds a later time. */
const KEEP_LATER = luaScript(`
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  local t = tonumber(ARGV[i + 1])
  if cur == nil or cur < t then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`);

export interface RedisTimes extends TimesStore {
  /** Writes the pulls still noted and stops the timer; reads and writes answer nothing afterwards. */
  close(): Promise<void>;
}

export interface RedisTimesOptions {
  readonly client: RedisClient;
  /** Key prefix (`berth:idx:`, the index's). */
  readonly prefix: string;
  readonly log: Logger;
}

/** A time as Redis holds it (a decimal string), or undefined. */
function timeOf(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export function createRedisTimes(o: RedisTimesOptions): RedisTimes {
  const hashOf = (repo: RepoName): string => `${o.prefix}times:${repo}`;
  /** Pulls not yet written: repository → digest → time. */
  let pulls = new Map<RepoName, Map<Digest, number>>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let closed = false;
  let warned = false;

  const failed = (what: string, err: unknown): undefined => {
    if (!warned) {
      warned = true; // once per process: Redis away means every call fails alike
      o.log.warn(`push and pull times: ${what} failed (Redis: ${o.client.where}); those times are lost`, { err: String(err) });
    }
    return undefined;
  };

  const pendingPull = (repo: RepoName, d: Digest): number | undefined => pulls.get(repo)?.get(d);

  const writeBatch = async (batch: Map<RepoName, Map<Digest, number>>): Promise<void> => {
    await Promise.all(
      [...batch].map(async ([repo, byDigest]) => {
        const args = [...byDigest].flatMap(([d, at]) => [`pull:${d}`, at]);
        await o.client.run(KEEP_LATER, [hashOf(repo)], args).catch((err: unknown) => failed('writing pulls', err));
      }),
    );
  };

  const store: RedisTimes = {
    async recordPush(repo, d, at) {
      if (closed) return;
      await o.client.run(KEEP_LATER, [hashOf(repo)], [`push:${d}`, at]).catch((err: unknown) => failed('recording a push', err));
    },
    notePull(repo, d, at) {
      if (closed) return;
      let byDigest = pulls.get(repo);
      if (byDigest === undefined) pulls.set(repo, (byDigest = new Map()));
      byDigest.set(d, later(byDigest.get(d), at) as number);
      if (timer === undefined) {
        timer = setTimeout(() => void store.flushPulls(), PULL_FLUSH_MS);
        timer.unref();
      }
    },
    async setTimes(repo, d, times) {
      if (closed) return;
      const fields = [
        ...(times.pushedAt !== undefined ? [`push:${d}`, times.pushedAt] : []),
        ...(times.pulledAt !== undefined ? [`pull:${d}`, times.pulledAt] : []),
      ];
      if (fields.length === 0) return;
      await o.client.call('HSET', hashOf(repo), ...fields).catch((err: unknown) => failed('setting times', err));
    },
    async revisionTimes(repo, d) {
      if (closed) return undefined;
      try {
        const reply = await o.client.call('HMGET', hashOf(repo), `push:${d}`, `pull:${d}`);
        const [push, pull] = Array.isArray(reply) ? reply : [];
        const pushedAt = timeOf(push);
        const pulledAt = later(timeOf(pull), pendingPull(repo, d));
        return { ...(pushedAt !== undefined && { pushedAt }), ...(pulledAt !== undefined && { pulledAt }) };
      } catch (err) {
        return failed('reading times', err);
      }
    },
    async repositoryRevisionTimes(repo) {
      if (closed) return undefined;
      let reply: unknown;
      try {
        reply = await o.client.call('HGETALL', hashOf(repo));
      } catch (err) {
        return failed('reading times', err);
      }
      const out = new Map<Digest, RevisionTimes>();
      const set = (d: Digest, t: RevisionTimes): void => void out.set(d, { ...out.get(d), ...t });
      const flat = Array.isArray(reply) ? reply : [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const field = String(flat[i]);
        const at = timeOf(flat[i + 1]);
        const d = parseDigest(field.slice(field.indexOf(':') + 1));
        if (at === undefined || d === undefined) continue;
        if (field.startsWith('push:')) set(d, { pushedAt: at });
        else if (field.startsWith('pull:')) set(d, { pulledAt: at });
      }
      for (const [d, at] of pulls.get(repo) ?? []) set(d, { pulledAt: later(out.get(d)?.pulledAt, at) as number });
      return out;
    },
    async flushPulls() {
      clearTimeout(timer);
      timer = undefined;
      const batch = pulls;
      pulls = new Map();
      const run = flushing.then(() => (batch.size > 0 ? writeBatch(batch) : undefined));
      flushing = run;
      await run;
    },
    async close() {
      await store.flushPulls();
      closed = true;
    },
  };
  return store;
}

