/**
 * Rebuilding the Redis index from storage (redis-index.ts), by one replica at a time:
 *
 * 1. Take the rebuild lock (cluster-lock.ts; a lease, so a killed rebuilder's goes away). Another
 *    replica holding it is rebuilding already: give up (or, asked on demand, wait for it).
 * 2. START_GENERATION: the next generation, `building`, with `dirty` and `distrust` empty. From here
 *    no replica answers from the index, and every refresh any replica applies is recorded in `dirty`.
 * 3. Remove every derived key (`d:…`), then walk storage (the same IndexSource the LevelDB rebuild
 *    walks) and write what it finds in batches: catalog, tags, referrers, and for usage every
 *    repository's layer links and revisions, then the size of each blob they link (one stat each).
 * 4. Catch up: re-read every item in `dirty` (through the replicas' own ticketed refresh), until
 *    COMPLETE_GENERATION finds `dirty` empty and makes the generation `complete` in the same step.
 *    If the generation is no longer ours (Redis lost it, or was flushed), the rebuild fails and the
 *    next look at the index starts another.
 */
import type { ClusterLock } from '../coordination/cluster-lock.js';
import type { RedisClient } from '../coordination/redis-client.js';
import type { Digest } from '../storage/digest.js';
import type { IndexChange, IndexSource, RepoName } from '../storage/indexing/index-port.js';
import { isIndexable } from './keys.js';
import { eachLimited } from './rebuild.js';
import { COMPLETE_GENERATION, type IndexKeys, START_GENERATION, WALK_LINKS } from './redis-scripts.js';

export interface RedisRebuildReport {
  readonly generation: number;
  readonly repositories: number;
  readonly tags: number;
  readonly referrers: number;
  /** Items changed by writes during the walk and re-read after it. */
  readonly caughtUp: number;
  readonly ms: number;
}

export interface RedisRebuildOptions {
  readonly client: RedisClient;
  readonly source: IndexSource;
  readonly keys: IndexKeys;
  readonly lock: ClusterLock;
  /** Who rebuilds (host/pid), recorded in the generation. */
  readonly by: string;
  /** Wait for another replica's rebuild to finish and then rebuild (the command), rather than give up. */
  readonly wait: boolean;
  readonly signal: AbortSignal;
  /** The ticketed refresh of one item (redis-index.ts). */
  refresh(change: IndexChange): Promise<void>;
  warn(msg: string, fields: Record<string, unknown>): void;
}

const REPOS_AT_ONCE = 4;
const ITEMS_AT_ONCE = 16;
const BATCH = 500;

/** Rebuilds; undefined when another replica holds the rebuild lock (and `wait` is false). @throws on Redis or storage failure */
export async function rebuildRedisIndex(o: RedisRebuildOptions): Promise<RedisRebuildReport | undefined> {
  let lease = await o.lock.tryAcquire();
  while (lease === undefined && o.wait && !o.signal.aborted) {
    await new Promise((r) => setTimeout(r, 200));
    lease = await o.lock.tryAcquire();
  }
  if (lease === undefined) return undefined;
  const signal = AbortSignal.any([o.signal, lease.signal]);
  try {
    const started = Date.now();
    const k = o.keys;
    const generation = Number(await o.client.run(START_GENERATION, [k.meta, k.dirty, k.distrust], [o.by, new Date(started).toISOString()]));
    await removeDerived(o.client, k.data, signal);
    const counts = await walk(o, signal);
    let caughtUp = 0;
    for (;;) {
      signal.throwIfAborted();
      const pending = (await o.client.call('SPOP', k.dirty, 256)) as string[] | null;
      if (pending !== null && pending.length > 0) {
        caughtUp += pending.length;
        await eachLimited(pending, ITEMS_AT_ONCE, (json) => o.refresh(JSON.parse(json) as IndexChange));
        continue;
      }
      const args = [generation, new Date().toISOString(), counts.repositories, counts.tags, counts.referrers];
      const done = Number(await o.client.run(COMPLETE_GENERATION, [k.meta, k.dirty], args));
      if (done === 1) return { generation, ...counts, caughtUp, ms: Date.now() - started };
      if (done === -1) throw new Error(`generation ${generation} was lost in redis during the rebuild (flushed or restarted)`);
    }
  } finally {
    await lease.release();
  }
}

/** Removes every derived key (SCAN, then UNLINK in batches). */
async function removeDerived(client: RedisClient, prefix: string, signal: AbortSignal): Promise<void> {
  let cursor = '0';
  do {
    signal.throwIfAborted();
    const [next, found] = (await client.call('SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)) as [string, string[]];
    if (found.length > 0) await client.call('UNLINK', ...found);
    cursor = next;
  } while (cursor !== '0');
}

/** Walks storage and writes the catalog, tags and referrers. */
async function walk(o: RedisRebuildOptions, signal: AbortSignal): Promise<{ repositories: number; tags: number; referrers: number }> {
  const k = o.keys;
  const counts = { repositories: 0, tags: 0, referrers: 0 };
  const call = { signal };
  const zadd = async (key: string, members: readonly string[]): Promise<void> => {
    for (let i = 0; i < members.length; i += BATCH) {
      await o.client.call('ZADD', key, ...members.slice(i, i + BATCH).flatMap((m) => [0, m]));
    }
  };
  const distrust = async (repo: RepoName, why: string, err?: unknown, usage = false): Promise<void> => {
    o.warn(`index: ${why}; its listings come from storage`, { repository: repo, ...(err !== undefined && { err: String(err) }) });
    await o.client.call('SADD', k.distrust, repo);
    // Usage figures depend on every repository's links: missing ones turn them all off.
    if (usage) await o.client.call('HSET', k.meta, 'usage', 'distrust');
  };
  const tagsOf = async (repo: RepoName): Promise<void> => {
    const names = await o.source.tagNames(repo, call);
    if (!names.every(isIndexable)) return distrust(repo, 'a tag name cannot be indexed');
    await zadd(k.tags(repo), names);
    counts.tags += names.length;
  };
  /** Every blob some repository links (usage): their sizes are written once the repositories are walked. */
  const linked = new Set<Digest>();
  const links = async (repo: RepoName, set: 'lay' | 'rev', digests: readonly Digest[]): Promise<void> => {
    for (let i = 0; i < digests.length; i += BATCH) await o.client.run(WALK_LINKS, [], [k.prefix, set, repo, ...digests.slice(i, i + BATCH)]);
    for (const d of digests) linked.add(d);
  };
  const layersOf = async (repo: RepoName): Promise<void> => {
    const layers: Digest[] = [];
    for await (const d of o.source.layers(repo, call)) layers.push(d);
    await links(repo, 'lay', layers);
  };
  const referrersOf = async (repo: RepoName): Promise<void> => {
    const revisions: Digest[] = [];
    for await (const d of o.source.revisions(repo, call)) revisions.push(d);
    await links(repo, 'rev', revisions);
    await eachLimited(revisions, ITEMS_AT_ONCE, async (d) => {
      const ref = (await o.source.revisionFacts(d, call)).referrer;
      if (!ref) return;
      await o.client.call('HSET', k.refs(repo, ref.subject), d, JSON.stringify(ref.descriptor));
      await o.client.call('HSET', k.subjects(repo), d, ref.subject);
      counts.referrers += 1;
    });
  };
  const names = await o.source.repositories(call);
  if (!names.every(isIndexable)) {
    o.warn('index: a repository name cannot be indexed; the catalog is listed from storage', {});
    await o.client.call('HSET', k.meta, 'catalog', 'distrust', 'usage', 'distrust');
  }
  const indexable = names.filter(isIndexable);
  await zadd(k.repos, indexable);
  counts.repositories = indexable.length;
  await eachLimited(indexable, REPOS_AT_ONCE, async (repo) => {
    for (const part of [tagsOf, referrersOf, layersOf]) {
      try {
        await part(repo);
      } catch (err) {
        if (signal.aborted) throw err;
        await distrust(repo, 'part of a repository could not be read', err, part !== tagsOf);
      }
    }
  });
  await sizesOf(o, [...linked], signal);
  return counts;
}

/** Writes the size of every blob in `digests` that has data (one stat each); a blob that cannot be read turns usage off. */
async function sizesOf(o: RedisRebuildOptions, digests: readonly Digest[], signal: AbortSignal): Promise<void> {
  let fields: (string | number)[] = [];
  const flush = async (): Promise<void> => {
    const now = fields;
    fields = [];
    if (now.length > 0) await o.client.call('HSET', o.keys.sizes, ...now);
  };
  await eachLimited(digests, ITEMS_AT_ONCE, async (d) => {
    signal.throwIfAborted();
    let size: number | undefined;
    try {
      size = (await o.source.blob(d, { signal }))?.size;
    } catch (err) {
      if (signal.aborted) throw err;
      o.warn('index: a linked blob could not be read; usage figures are not answered until the next rebuild', { digest: d, err: String(err) });
      await o.client.call('HSET', o.keys.meta, 'usage', 'distrust');
      return;
    }
    if (size === undefined) return;
    fields.push(d, size);
    if (fields.length >= BATCH * 2) await flush();
  });
  await flush();
}
