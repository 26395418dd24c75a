/**
 * Usage figures from the Redis index (redis-index.ts), for replicas: the same figures the LevelDB
 * index answers (usage.ts), from the same facts kept in Redis (redis-scripts.ts): each repository's
 * `_layers` links (`d:lay:<repo>`) and manifest revisions (`d:rev:<repo>`), the repositories linking
 * each blob (`d:users:<digest>`), and each blob's size (`d:size`).
 *
 * A repository's figures: the distinct blobs of its two sets; `logicalBytes` sums their sizes,
 * `sharedBytes` the sizes of those another repository links too (two or more `users` fields),
 * `exclusiveBytes` the rest; `manifests` counts its revisions, `tags` its tags. A linked blob without
 * data (no `d:size` field) costs nothing, as in the LevelDB index.
 *
 * Each answer is one script that reads only while the index is complete and its usage trusted (no
 * repository's links went unread: `meta.usage` and `meta.catalog` not 'distrust'); otherwise nil, and
 * the caller answers undefined (the management API then answers 503, quotas walk storage). Pages and
 * scopes read their repository names first (one script) and then their figures (another): a write
 * between the two shows in the figures as it would a moment later.
 */
import type { RedisClient } from '../coordination/redis-client.js';
import { luaScript } from '../coordination/redis-client.js';
import type { Digest } from '../storage/digest.js';
import type { RepoName, RepoScope, ScopeUsage, UsageFigures, UsageQuery } from '../storage/indexing/index-port.js';
import type { IndexKeys } from './redis-scripts.js';
import { storedName } from './usage.js';

/** Lua: nil unless the index is complete and may answer usage (KEYS[1] is meta). */
const TRUSTED = `
if redis.call('HGET', KEYS[1], 'state') ~= 'complete' then return false end
if redis.call('HGET', KEYS[1], 'catalog') == 'distrust' or redis.call('HGET', KEYS[1], 'usage') == 'distrust' then return false end
`;

/**
 * Repository names of the catalog in a ZRANGEBYLEX range, or nil as TRUSTED.
 * KEYS: meta, repos. ARGV: ZRANGEBYLEX arguments after the key.
 */
const USAGE_NAMES = luaScript(`${TRUSTED}
return redis.call('ZRANGEBYLEX', KEYS[2], unpack(ARGV))
`);

/**
 * The figures of repositories ARGV[2…], five numbers each: whether the catalog holds it (1 or 0),
 * logical bytes, shared bytes, manifests, tags. Nil as TRUSTED, or when one of them is distrusted.
 * KEYS: meta, repos, distrust. ARGV: prefix, repo…
 */
const USAGE_FIGURES = luaScript(`${TRUSTED}
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local repo = ARGV[i]
  if redis.call('SISMEMBER', KEYS[3], repo) == 1 then return false end
  local logical, shared = 0, 0
  for _, d in ipairs(redis.call('SUNION', P .. 'd:lay:' .. repo, P .. 'd:rev:' .. repo)) do
    local size = tonumber(redis.call('HGET', P .. 'd:size', d) or '0')
    logical = logical + size
    if redis.call('HLEN', P .. 'd:users:' .. d) > 1 then shared = shared + size end
  end
  local known = redis.call('ZSCORE', KEYS[2], repo) and 1 or 0
  for _, n in ipairs({known, logical, shared, redis.call('SCARD', P .. 'd:rev:' .. repo), redis.call('ZCARD', P .. 'd:tags:' .. repo)}) do
    table.insert(out, n)
  end
end
return out
`);

/**
 * The sizes of the distinct blobs repositories ARGV[2…] link, summed (each blob once), or nil as TRUSTED.
 * KEYS: meta. ARGV: prefix, repo…
 */
const SCOPE_BYTES = luaScript(`${TRUSTED}
local P = ARGV[1]
local seen = {}
local bytes = 0
for i = 2, #ARGV do
  for _, d in ipairs(redis.call('SUNION', P .. 'd:lay:' .. ARGV[i], P .. 'd:rev:' .. ARGV[i])) do
    if not seen[d] then
      seen[d] = true
      bytes = bytes + tonumber(redis.call('HGET', P .. 'd:size', d) or '0')
    end
  end
end
return {bytes}
`);

/** The repositories linking blob ARGV[2], or nil as TRUSTED. KEYS: meta. ARGV: prefix, digest. */
const BLOB_USERS = luaScript(`${TRUSTED}
return redis.call('HKEYS', ARGV[1] .. 'd:users:' .. ARGV[2])
`);

/** How many repository names a page reads at a time, and how many repositories' figures one script computes. */
const NAMES_AT_ONCE = 500;
const FIGURES_AT_ONCE = 100;

/** The usage queries over one index's keys. Each answers undefined when the index may not answer; rejects when Redis fails. */
export interface RedisUsage {
  usage(repo: RepoName): Promise<UsageFigures | undefined>;
  usages(query: UsageQuery): Promise<UsageFigures[] | undefined>;
  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined>;
  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined>;
}

export function redisUsage(client: RedisClient, k: IndexKeys): RedisUsage {
  /** Names with `prefix` after `after` (at most `limit`), or undefined as TRUSTED. */
  const names = async (prefix: string, after: string | undefined, limit?: number): Promise<string[] | undefined> => {
    const min = after !== undefined && after >= prefix ? `(${after}` : `[${prefix}`;
    const args = [min, `(${prefix}\x7f`, ...(limit === undefined ? [] : ['LIMIT', '0', String(limit)])];
    const reply = await client.run(USAGE_NAMES, [k.meta, k.repos], args);
    return Array.isArray(reply) ? reply.map(String) : undefined;
  };

  /** The figures of `repos` (undefined as USAGE_FIGURES), without those the catalog does not hold. */
  const figures = async (repos: readonly string[]): Promise<UsageFigures[] | undefined> => {
    const out: UsageFigures[] = [];
    for (let i = 0; i < repos.length; i += FIGURES_AT_ONCE) {
      const chunk = repos.slice(i, i + FIGURES_AT_ONCE);
      const reply = await client.run(USAGE_FIGURES, [k.meta, k.repos, k.distrust], [k.prefix, ...chunk]);
      if (!Array.isArray(reply)) return undefined;
      const n = reply.map(Number);
      chunk.forEach((name, j) => {
        const [known, logicalBytes = 0, sharedBytes = 0, manifests = 0, tags = 0] = n.slice(j * 5, j * 5 + 5);
        if (known === 1) out.push({ name: storedName(name), logicalBytes, sharedBytes, exclusiveBytes: logicalBytes - sharedBytes, tags, manifests });
      });
    }
    return out;
  };

  return {
    async usage(repo) {
      const [one] = (await figures([repo])) ?? [];
      return one;
    },

    async usages(query) {
      const { prefix = '', limit = Number.POSITIVE_INFINITY, include } = query;
      const page: UsageFigures[] = [];
      let after = query.after;
      while (page.length < limit) {
        const batch = await names(prefix, after, NAMES_AT_ONCE);
        if (batch === undefined) return undefined;
        const wanted = batch.filter((name) => include?.(name) ?? true).slice(0, limit - page.length);
        const found = await figures(wanted);
        if (found === undefined) return undefined;
        page.push(...found);
        if (batch.length < NAMES_AT_ONCE) break;
        after = batch.at(-1);
      }
      return page;
    },

    async scopeUsage(scope) {
      const all = await names(scope.prefix, undefined);
      if (all === undefined) return undefined;
      const accepted = all.filter((name) => scope.accepts(storedName(name)));
      const reply = await client.run(SCOPE_BYTES, [k.meta], [k.prefix, ...accepted]);
      if (!Array.isArray(reply)) return undefined;
      return { bytes: Number(reply[0] ?? 0), repositories: accepted.length };
    },

    async scopeLinks(scope, d) {
      const reply = await client.run(BLOB_USERS, [k.meta], [k.prefix, d]);
      if (!Array.isArray(reply)) return undefined;
      return reply.map(String).some((repo) => repo.startsWith(scope.prefix) && scope.accepts(storedName(repo)));
    },
  };
}
