/**
 * The Redis index's key layout and its Lua scripts (each atomic in Redis). See redis-index.ts for the
 * protocol they implement. Every key starts with the index's prefix (`berth:idx:` by default):
 *
 *   meta                 hash: gen, state (building | complete | stale), startedAt, completedAt, by,
 *                        repositories, tags, referrers, and `catalog` = 'distrust' when the catalog
 *                        must come from storage
 *   dirty                set: changes (JSON) applied while the index was not complete; the rebuild
 *                        re-reads each before it may say `complete`
 *   ticket               counter: one ticket per refresh, taken before storage is read
 *   applied              hash: item → the ticket of the last refresh applied to it (an older ticket's
 *                        refresh, which read storage earlier, is dropped)
 *   distrust             set: repositories whose tags and referrers come from storage
 *   d:repos              sorted set, all scores 0: the catalog (ZRANGEBYLEX gives byte order, which is
 *                        the spec's lexical order for the ASCII names Berth accepts)
 *   d:tags:<repo>        sorted set, scores 0: the repository's tags
 *   d:tagver             hash: repository → how many refreshes changed its tags (with the generation,
 *                        the version replicas compare to reuse the tag list they hold in memory)
 *   d:refs:<repo>:<subject>  hash: referrer digest → descriptor JSON
 *   d:subj:<repo>        hash: revision digest → the subject it refers to (which `refs` entry it owns)
 *   rebuild:lock         the cluster lock of the replica that rebuilds
 *
 * Everything the index derives lives under `d:`, so a rebuild empties it with one SCAN; a table added
 * later (push and pull times, usage) is another `d:<table>:…` family filled by the walk and refreshed
 * by the same item changes. One Redis server (no Cluster): scripts build `d:` key names themselves.
 */
import { luaScript } from '../coordination/redis-client.js';

/** The keys of one index (prefix included). */
export interface IndexKeys {
  readonly meta: string;
  readonly dirty: string;
  readonly ticket: string;
  readonly applied: string;
  readonly distrust: string;
  readonly repos: string;
  readonly tagVersions: string;
  readonly data: string;
  readonly lock: string;
  tags(repo: string): string;
  refs(repo: string, subject: string): string;
  refsPrefix(repo: string): string;
  subjects(repo: string): string;
}

/** The key names under `prefix`. */
export function indexKeys(prefix: string): IndexKeys {
  return {
    meta: `${prefix}meta`,
    dirty: `${prefix}dirty`,
    ticket: `${prefix}ticket`,
    applied: `${prefix}applied`,
    distrust: `${prefix}distrust`,
    repos: `${prefix}d:repos`,
    tagVersions: `${prefix}d:tagver`,
    data: `${prefix}d:`,
    lock: `${prefix}rebuild:lock`,
    tags: (repo) => `${prefix}d:tags:${repo}`,
    refs: (repo, subject) => `${prefix}d:refs:${repo}:${subject}`,
    refsPrefix: (repo) => `${prefix}d:refs:${repo}:`,
    subjects: (repo) => `${prefix}d:subj:${repo}`,
  };
}

/** ZRANGEBYLEX bounds and LIMIT arguments for names strictly after `after`, at most `limit`. */
export function lexRange(after: string | undefined, limit: number | undefined): string[] {
  const min = after === undefined || after === '' ? '-' : `(${after}`;
  return limit === undefined ? [min, '+'] : [min, '+', 'LIMIT', '0', String(Math.max(0, limit))];
}

/**
 * Repositories in a range, or nil unless the index is complete and trusts its catalog.
 * KEYS: meta, repos. ARGV: ZRANGEBYLEX arguments after the key.
 */
export const QUERY_REPOS = luaScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'complete' then return false end
if redis.call('HGET', KEYS[1], 'catalog') == 'distrust' then return false end
return redis.call('ZRANGEBYLEX', KEYS[2], unpack(ARGV))
`);

/**
 * Every tag of a repository with its version (`<gen>:<changes>`), or only the version when it equals
 * ARGV[2] (the caller's copy is current); nil as QUERY_TAGS. The reply is `{version, tag…}`.
 * KEYS: meta, repos, distrust, tags, tagver. ARGV: repo, the version the caller holds ('' for none).
 */
export const QUERY_TAG_LIST = luaScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'complete' then return false end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return false end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return false end
local version = redis.call('HGET', KEYS[1], 'gen') .. ':' .. (redis.call('HGET', KEYS[5], ARGV[1]) or '0')
if version == ARGV[2] then return {version} end
local all = redis.call('ZRANGEBYLEX', KEYS[4], '-', '+')
table.insert(all, 1, version)
return all
`);

/** Referrer descriptors (JSON) of a subject, or nil as QUERY_TAGS. KEYS: meta, repos, distrust, refs. ARGV: repo. */
export const QUERY_REFERRERS = luaScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'complete' then return false end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return false end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return false end
return redis.call('HVALS', KEYS[4])
`);

/**
 * Applies one refresh unless a later ticket was applied to the item already; records the change in
 * `dirty` when the index is not complete (unless the change JSON is '': the rebuilder's own catch-up).
 * Answers 1 when applied, 0 when dropped.
 * KEYS: meta, dirty, applied, target. ARGV: item, ticket, change JSON, op, op's arguments:
 *   zadd | zrem <member>                    on the target sorted set
 *   tagadd | tagrem <tag> <tagver key> <repo>   on the repository's tags, counting the change
 *   ref <digest> <subject|''> <json> <refs prefix>   target = the repository's subj hash
 *   distrust <repo>                         target = the distrust set
 *   none                                    (nothing to write: a blob)
 */
export const APPLY = luaScript(`
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local ticket = tonumber(ARGV[2])
if ticket < last then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ticket)
local op = ARGV[4]
if op == 'zadd' then redis.call('ZADD', KEYS[4], 0, ARGV[5])
elseif op == 'zrem' then redis.call('ZREM', KEYS[4], ARGV[5])
elseif op == 'tagadd' or op == 'tagrem' then
  if op == 'tagadd' then redis.call('ZADD', KEYS[4], 0, ARGV[5]) else redis.call('ZREM', KEYS[4], ARGV[5]) end
  redis.call('HINCRBY', ARGV[6], ARGV[7], 1)
elseif op == 'distrust' then redis.call('SADD', KEYS[4], ARGV[5])
elseif op == 'ref' then
  local old = redis.call('HGET', KEYS[4], ARGV[5])
  if old and old ~= ARGV[6] then redis.call('HDEL', ARGV[8] .. old, ARGV[5]) end
  if ARGV[6] ~= '' then
    redis.call('HSET', ARGV[8] .. ARGV[6], ARGV[5], ARGV[7])
    redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
  else
    redis.call('HDEL', KEYS[4], ARGV[5])
  end
end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'state') ~= 'complete' then redis.call('SADD', KEYS[2], ARGV[3]) end
return 1
`);

/** Marks the index untrusted (a change only a rebuild can take in). KEYS: meta. */
export const MARK_STALE = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'state', 'stale') end
return 1
`);

/**
 * Starts a generation: empties meta, dirty and distrust, and records `building`. Answers the generation.
 * KEYS: meta, dirty, distrust. ARGV: by, startedAt.
 */
export const START_GENERATION = luaScript(`
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') + 1
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'gen', gen, 'state', 'building', 'startedAt', ARGV[2], 'by', ARGV[1])
return gen
`);

/**
 * Completes generation ARGV[1] when nothing is left in `dirty`: 1 done, 0 more to catch up, -1 the
 * generation is no longer the one building (Redis lost it, or another rebuild began).
 * KEYS: meta, dirty. ARGV: gen, completedAt, repositories, tags, referrers.
 */
export const COMPLETE_GENERATION = luaScript(`
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'building' then return -1 end
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'complete', 'completedAt', ARGV[2], 'repositories', ARGV[3], 'tags', ARGV[4], 'referrers', ARGV[5])
return 1
`);
