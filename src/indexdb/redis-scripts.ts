/**
 * The Redis index's key layout and its Lua scripts (each atomic in Redis). See redis-index.ts for the
 * protocol they implement. Every key starts with the index's prefix (`berth:idx:` by default):
 *
 *   meta                 hash: gen, state (building | complete | stale), startedAt, completedAt, by,
 *                        repositories, tags, referrers, `catalog` = 'distrust' when the catalog must
 *                        come from storage, `usage` = 'distrust' when usage figures cannot be answered
 *   dirty                set: changes (JSON) applied while the index was not complete; the rebuild
 *                        re-reads each before it may say `complete`
 *   ticket               counter: one ticket per refresh, taken before storage is read
 *   inflight             sorted set: the refreshes under way, `<ticket>:<ms>` scored by ticket (taken
 *                        with the ticket, removed when the refresh applies); what `applied` may forget
 *   applied              hash: item → the ticket of the last refresh applied to it (an older ticket's
 *                        refresh, which read storage earlier, is dropped); trimmed below the oldest
 *                        ticket in flight (TRIM_FLOOR, DROP_APPLIED)
 *   distrust             set: repositories whose tags and referrers come from storage
 *   d:repos              sorted set, all scores 0: the catalog (ZRANGEBYLEX gives byte order, which is
 *                        the spec's lexical order for the ASCII names Berth accepts)
 *   d:tags:<repo>        sorted set, scores 0: the repository's tags
 *   d:tagver             hash: repository → how many refreshes changed its tags (with the generation,
 *                        the version replicas compare to reuse the tag list they hold in memory)
 *   d:refs:<repo>:<subject>  hash: referrer digest → descriptor JSON
 *   d:subj:<repo>        hash: revision digest → the subject it refers to (which `refs` entry it owns)
 *   d:lay:<repo>         set: the blobs the repository links in `_layers` (usage)
 *   d:rev:<repo>         set: the repository's manifest revisions (usage)
 *   d:users:<digest>     hash: repository → how many ways it links the blob (1 or 2: a `_layers` link,
 *                        a revision); two or more fields make the blob shared (usage)
 *   d:size               hash: digest → the global blob's size, for blobs that have data (usage)
 *   rebuild:lock         the cluster lock of the replica that rebuilds
 *
 * Everything the index derives lives under `d:`, so a rebuild empties it with one SCAN; push and pull
 * times (redis-times.ts) are kept beside it under `times:`, which a rebuild leaves alone. One Redis
 * server (no Cluster): scripts build `d:` key names themselves from the prefix they are given.
 */
import { luaScript } from '../coordination/redis-client.js';

/** The keys of one index (prefix included). */
export interface IndexKeys {
  readonly prefix: string;
  readonly meta: string;
  readonly dirty: string;
  readonly ticket: string;
  readonly inflight: string;
  readonly applied: string;
  readonly distrust: string;
  readonly repos: string;
  readonly tagVersions: string;
  readonly sizes: string;
  readonly data: string;
  readonly lock: string;
  readonly trimDue: string;
  tags(repo: string): string;
  refs(repo: string, subject: string): string;
  refsPrefix(repo: string): string;
  subjects(repo: string): string;
  layers(repo: string): string;
  revisions(repo: string): string;
}

/** The key names under `prefix`. */
export function indexKeys(prefix: string): IndexKeys {
  return {
    prefix,
    meta: `${prefix}meta`,
    dirty: `${prefix}dirty`,
    ticket: `${prefix}ticket`,
    inflight: `${prefix}inflight`,
    applied: `${prefix}applied`,
    distrust: `${prefix}distrust`,
    repos: `${prefix}d:repos`,
    tagVersions: `${prefix}d:tagver`,
    sizes: `${prefix}d:size`,
    data: `${prefix}d:`,
    lock: `${prefix}rebuild:lock`,
    trimDue: `${prefix}trim:due`,
    tags: (repo) => `${prefix}d:tags:${repo}`,
    refs: (repo, subject) => `${prefix}d:refs:${repo}:${subject}`,
    refsPrefix: (repo) => `${prefix}d:refs:${repo}:`,
    subjects: (repo) => `${prefix}d:subj:${repo}`,
    layers: (repo) => `${prefix}d:lay:${repo}`,
    revisions: (repo) => `${prefix}d:rev:${repo}`,
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
 * Lua shared by the scripts that write usage: `link(P, set, repo, d, linked)` adds or removes `d` in
 * the repository's `lay` or `rev` set and sets the repository's field in the blob's `users` hash from
 * what the two sets hold (so the hash follows the sets whatever happened before); `blobsize(P, d, s)`
 * records the blob's size ('' for no data).
 */
const USAGE_LUA = `
local function link(P, set, repo, d, linked)
  if linked == '1' then redis.call('SADD', P .. 'd:' .. set .. ':' .. repo, d) else redis.call('SREM', P .. 'd:' .. set .. ':' .. repo, d) end
  local n = redis.call('SISMEMBER', P .. 'd:lay:' .. repo, d) + redis.call('SISMEMBER', P .. 'd:rev:' .. repo, d)
  if n > 0 then redis.call('HSET', P .. 'd:users:' .. d, repo, n) else redis.call('HDEL', P .. 'd:users:' .. d, repo) end
end
local function blobsize(P, d, s)
  if s == '' then redis.call('HDEL', P .. 'd:size', d) else redis.call('HSET', P .. 'd:size', d, s) end
end
`;

/**
 * Takes a refresh's ticket and records it in flight (with Redis's clock, for TRIM_FLOOR). Answers the ticket.
 * KEYS: ticket, inflight.
 */
export const TAKE_TICKET = luaScript(`
local t = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], t, t .. ':' .. (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)))
return t
`);

/**
 * Applies one refresh unless a later ticket was applied to its item already; records the change in
 * `dirty` when the index is not complete (unless the change JSON is '': the rebuilder's own catch-up).
 * Answers 1 when applied, 0 when dropped, -1 when the refresh is no longer in flight (it took longer
 * than TRIM_FLOOR allows, and `applied` may have forgotten a later ticket): the caller reads again
 * with a new ticket.
 * KEYS: meta, dirty, applied, inflight. ARGV: prefix, ticket, change JSON, item, op, op's arguments:
 *   repo <repo> <1|0>                              in the catalog or not
 *   tag <repo> <tag> <1|0>                         in the repository's tags or not, counting the change
 *   distrust <repo|''> <usage 1|0> <catalog 1|0>   its listings from storage (and with usage every usage
 *                                                  figure, with catalog the catalog: both until a rebuild)
 *   revision <repo> <digest> <1|0> <subject|''> <json> <blob item> <size|''>
 *                                                  the revision's referrer entry, its usage link, and the blob's size
 *   layer <repo> <digest> <1|0> <blob item> <size|''>   the `_layers` link and the blob's size
 *   blob <digest> <size|''>                        the blob's size (the item is the blob's)
 *   none                                           nothing to write
 */
export const APPLY = luaScript(`${USAGE_LUA}
local P = ARGV[1]
local ticket = tonumber(ARGV[2])
if redis.call('ZREMRANGEBYSCORE', KEYS[4], ticket, ticket) == 0 then return -1 end
local function take(item)
  local last = tonumber(redis.call('HGET', KEYS[3], item) or '0')
  if ticket < last then return false end
  redis.call('HSET', KEYS[3], item, ticket)
  return true
end
local op = ARGV[5]
local applied = take(ARGV[4])
if applied then
  if op == 'repo' then
    if ARGV[7] == '1' then redis.call('ZADD', P .. 'd:repos', 0, ARGV[6]) else redis.call('ZREM', P .. 'd:repos', ARGV[6]) end
  elseif op == 'tag' then
    if ARGV[8] == '1' then redis.call('ZADD', P .. 'd:tags:' .. ARGV[6], 0, ARGV[7]) else redis.call('ZREM', P .. 'd:tags:' .. ARGV[6], ARGV[7]) end
    redis.call('HINCRBY', P .. 'd:tagver', ARGV[6], 1)
  elseif op == 'distrust' then
    if ARGV[6] ~= '' then redis.call('SADD', P .. 'distrust', ARGV[6]) end
    if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'usage', 'distrust') end
    if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'catalog', 'distrust') end
  elseif op == 'revision' then
    local repo, d, subject = ARGV[6], ARGV[7], ARGV[9]
    local subj = P .. 'd:subj:' .. repo
    local old = redis.call('HGET', subj, d)
    if old and old ~= subject then redis.call('HDEL', P .. 'd:refs:' .. repo .. ':' .. old, d) end
    if subject ~= '' then
      redis.call('HSET', P .. 'd:refs:' .. repo .. ':' .. subject, d, ARGV[10])
      redis.call('HSET', subj, d, subject)
    else
      redis.call('HDEL', subj, d)
    end
    link(P, 'rev', repo, d, ARGV[8])
  elseif op == 'layer' then
    link(P, 'lay', ARGV[6], ARGV[7], ARGV[8])
  elseif op == 'blob' then
    blobsize(P, ARGV[6], ARGV[7])
  end
end
if op == 'revision' and take(ARGV[11]) then blobsize(P, ARGV[7], ARGV[12]) end
if op == 'layer' and take(ARGV[9]) then blobsize(P, ARGV[7], ARGV[10]) end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'state') ~= 'complete' then redis.call('SADD', KEYS[2], ARGV[3]) end
if applied then return 1 end
return 0
`);

/**
 * The rebuild walk's usage links of one repository: each digest added to its `set` (`lay` or `rev`).
 * KEYS: none. ARGV: prefix, set, repo, digest…
 */
export const WALK_LINKS = luaScript(`${USAGE_LUA}
for i = 4, #ARGV do link(ARGV[1], ARGV[2], ARGV[3], ARGV[i], '1') end
return #ARGV - 3
`);

/**
 * The lowest ticket still in flight (or one past the last ticket taken when none is), after giving up
 * on the refreshes in flight for longer than ARGV[1] ms (APPLY then refuses them: they read again).
 * Every `applied` entry below it can be forgotten: any refresh that may still apply has a ticket at
 * least this high. KEYS: ticket, inflight. ARGV: the longest a refresh may take (ms).
 */
export const TRIM_FLOOR = luaScript(`
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
for _ = 1, 1000 do
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first == 0 then return tonumber(redis.call('GET', KEYS[1]) or '0') + 1 end
  if tonumber(string.match(first[1], ':(%d+)$')) >= oldest then return tonumber(first[2]) end
  redis.call('ZREM', KEYS[2], first[1])
end
return 0
`);

/** Forgets each `applied` field of ARGV[2…] whose ticket is below ARGV[1] (TRIM_FLOOR's floor). KEYS: applied. Answers how many. */
export const DROP_APPLIED = luaScript(`
local floor = tonumber(ARGV[1])
local dropped = 0
for i = 2, #ARGV do
  local t = redis.call('HGET', KEYS[1], ARGV[i])
  if t and tonumber(t) < floor then
    redis.call('HDEL', KEYS[1], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
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
