/**
 * The listing index in Redis, for replicas (`redis` configured): the catalog, tag lists and referrers
 * kept where every replica reads and writes them, answering what the LevelDB index (index-db.ts)
 * answers for one process. Keys and scripts: redis-scripts.ts; the rebuild: redis-index-rebuild.ts.
 *
 * Trust. A query is one script that answers only when the generation record says `complete` (and the
 * repository or catalog is not distrusted); otherwise storage walks the tree, as without an index. A
 * Redis that restarted empty, was flushed, or holds a generation a replica killed mid-rebuild left
 * `building`, is not complete: the replica that notices starts a rebuild (one replica at a time, under
 * a cluster lock with a lease, so a killed rebuilder's lock goes away), and `berth index rebuild` runs
 * one on demand. A complete index is trusted across replica restarts: it is the replicas' shared
 * record of their own writes. Anything else writing the bucket (registry:2, a restore) needs
 * `berth index rebuild`.
 *
 * Changes. Every replica's storage writes are reported through the same port as the LevelDB index's
 * (index-observer.ts): a change names an item, and the replica re-reads that item from storage and
 * writes the result. Replicas refreshing one item race, so each refresh takes a ticket (INCR) BEFORE
 * it reads storage, and the write is applied only if no later ticket was applied to the item already:
 * the refresh with the highest ticket read storage after every write whose refresh came earlier, so
 * the entry ends as storage ends (the per-item queue of one process, made cluster-wide).
 *
 * During a rebuild (state `building`), each applied refresh is also recorded in `dirty`; after its
 * walk the rebuilder re-reads every recorded item, and the generation becomes `complete` only in the
 * same atomic step that finds `dirty` empty. So a write on any replica during the walk is never lost
 * to a value the walk read before it.
 *
 * Usage (redis-usage.ts). Each repository's `_layers` links and revisions, the repositories linking
 * each blob and each blob's size are refreshed by the same ticketed item changes (a layer or revision
 * refresh also re-reads its blob's size, under the blob's own item), so usage figures and quotas'
 * figures come from the index as with LevelDB. If a repository's links cannot be read, no usage
 * figure is answered until the next rebuild (its missing links would make others' shared bytes wrong).
 *
 * A repository delete (a `contents` change: its `_manifests` or `_layers` folder removed) is taken in
 * item by item, as the LevelDB index does: every tag, revision and layer link the index holds for
 * the repository and every one storage holds now is refreshed as if reported alone; the index stays
 * complete. Only a change no item names (`everything`) marks it stale for a rebuild.
 *
 * Forgetting tickets. `applied` would grow by every item ever refreshed; redis-trim.ts keeps it to
 * the items refreshed in the last minutes (each refresh is recorded in flight until it applies).
 *
 * Tag lists. Each replica holds whole tag lists in memory with the version Redis gave them (the
 * generation and a per-repository count of tag changes, bumped in the same script that changes the
 * tags); a query sends the version it holds and gets only "unchanged" back when it is current, so a
 * 10,000-tag list is not sent over again while nobody tags. Pages are sliced from the held list.
 * Catalog pages are held the same way, by range, with the catalog's version (the generation and a
 * count of refreshes that added or removed a repository): a held page is answered as the same array
 * while the version is unchanged, so the HTTP handler reuses the body it serialized from it. Either
 * way a query is one script, so a push or delete on another replica is seen by the next listing here.
 *
 * Failures. A query or change that fails because Redis is unreachable is answered from storage (the
 * port's `undefined`) and never rejects, so the index is not switched off for good; a change whose
 * refresh failed is kept in memory and re-applied once Redis answers again (a replica's own writes
 * while Redis is away are few: pushes need Redis's link gate). Redis back but empty: not complete,
 * rebuilt.
 */
import { hostname } from 'node:os';
import type { ClusterLock } from '../coordination/cluster-lock.js';
import type { RedisClient } from '../coordination/redis-client.js';
import type { Logger } from '../log.js';
import type { Digest } from '../storage/digest.js';
import { type IndexChange, type IndexSource, type IndexedReferrer, type ListRange, type RegistryIndex, type RepoName, sliceSorted } from '../storage/indexing/index-port.js';
import type { RepoScope, ScopeUsage, UsageFigures, UsageQuery } from '../storage/indexing/index-port.js';
import { messageOf } from './open.js';
import { itemKey } from './refresh.js';
import { eachLimited } from './rebuild.js';
import { type RedisRebuildReport, rebuildRedisIndex } from './redis-index-rebuild.js';
import { type ItemChange, itemsOf, readItem } from './redis-refresh.js';
import { APPLY, type IndexKeys, MARK_STALE, QUERY_REFERRERS, QUERY_REPOS, QUERY_TAG_LIST, TAKE_TICKET, indexKeys, lexRange } from './redis-scripts.js';
import { REFRESH_MAX_MS, trimApplied } from './redis-trim.js';
import { type RedisUsage, redisUsage } from './redis-usage.js';

export type { RedisRebuildReport } from './redis-index-rebuild.js';

/** What a replica last saw of the shared index. */
export type RedisIndexState = 'ready' | 'rebuilding' | 'failed' | 'closed';

export interface RedisIndex extends RegistryIndex {
  usage(repo: RepoName): Promise<UsageFigures | undefined>;
  usages(query: UsageQuery): Promise<UsageFigures[] | undefined>;
  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined>;
  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined>;
  /** `ready` when the last look at Redis found the index complete. */
  readonly state: RedisIndexState;
  /** Rebuilds from storage now (waits for the cluster lock); undefined when it failed or lost the lock. */
  rebuild(): Promise<RedisRebuildReport | undefined>;
  /**
   * Forgets the `applied` tickets below the lowest ticket in flight (about once a minute on one
   * replica, or now with `force`); answers how many were dropped. @throws when Redis fails
   */
  trim(force?: boolean): Promise<number>;
  /** Resolves once the index is complete in Redis (polling), false after `timeoutMs`. */
  ready(timeoutMs?: number): Promise<boolean>;
  /**
   * Re-applies the changes that failed (Redis away); if some still fail, tries to mark the index stale
   * so a rebuild takes them in. Answers false when neither worked (the index may now be wrong).
   */
  settle(): Promise<boolean>;
  close(): Promise<void>;
}

export interface RedisIndexOptions {
  readonly client: RedisClient;
  readonly source: IndexSource;
  /** The rebuilders' lock (cluster-lock.ts) on `keysOf(prefix).lock`. */
  readonly lock: ClusterLock;
  readonly log: Logger;
  /** Key prefix (default `berth:idx:`). */
  readonly prefix?: string;
  /** Start a rebuild on this replica when the index is found incomplete (default true; false for tests and tools). */
  readonly autoRebuild?: boolean;
}

/** How many tags a replica holds in memory over all repositories (some 50 bytes each, about 10 MiB). */
const TAGS_HELD = 200_000;

/** How many catalog pages (ranges) a replica holds in memory, the least recently asked dropped first. */
const PAGES_HELD = 64;

/** How often a replica retries refreshes that failed, and may start another rebuild. */
const RETRY_MS = 1_000;


/** How many items of a `contents` change (a repository delete) are refreshed at once. */
const CONTENTS_AT_ONCE = 16;

/** How many times a refresh reads again after APPLY refused it for taking longer than REFRESH_MAX_MS. */
const REFRESH_TRIES = 3;

/** The index; it starts a rebuild in the background at once when Redis holds no complete one. */
export function createRedisIndex(o: RedisIndexOptions): RedisIndex {
  return new SharedIndex(o);
}

class SharedIndex implements RedisIndex {
  private readonly keys: IndexKeys;
  private readonly by = `${hostname()}/${process.pid}`;
  private seen: RedisIndexState = 'rebuilding';
  private running: Promise<RedisRebuildReport | undefined> | undefined;
  private lastAttempt = 0;
  private readonly failed = new Map<string, IndexChange>();
  private readonly timer: NodeJS.Timeout;
  private readonly stop = new AbortController();
  /** Whole tag lists held in memory, by repository, with the version Redis gave them (QUERY_TAG_LIST). */
  private readonly tagLists = new Map<string, { version: string; tags: readonly string[] }>();
  private tagsHeld = 0;
  /** Catalog pages held in memory, by range, with the catalog version Redis gave them (QUERY_REPOS). */
  private readonly pages = new Map<string, { version: string; names: readonly string[] }>();
  private readonly usageOf: RedisUsage;

  constructor(private readonly o: RedisIndexOptions) {
    this.keys = indexKeys(o.prefix ?? 'berth:idx:');
    this.usageOf = redisUsage(o.client, this.keys);
    this.timer = setInterval(() => void this.tick(), RETRY_MS);
    this.timer.unref();
    void this.tick();
  }

  get state(): RedisIndexState {
    return this.seen;
  }

  async repositories(range: ListRange): Promise<readonly string[] | undefined> {
    const key = `${range.after ?? ''}\n${range.limit ?? ''}`;
    const held = this.pages.get(key);
    const reply = await this.query(QUERY_REPOS, [this.keys.meta, this.keys.repos, this.keys.catalogVersion], [held?.version ?? '', ...lexRange(range.after, range.limit)]);
    if (reply === undefined) return undefined;
    const [version = '', ...names] = reply;
    this.pages.delete(key); // re-set below: the Map's order is the order of use
    if (held && version === held.version && reply.length === 1) {
      this.pages.set(key, held);
      return held.names;
    }
    if (this.pages.size >= PAGES_HELD) {
      const oldest = this.pages.keys().next();
      if (oldest.done !== true) this.pages.delete(oldest.value);
    }
    this.pages.set(key, { version, names });
    return names;
  }

  async tags(repo: RepoName, range: ListRange): Promise<readonly string[] | undefined> {
    const k = this.keys;
    const held = this.tagLists.get(repo);
    const reply = await this.query(QUERY_TAG_LIST, [k.meta, k.repos, k.distrust, k.tags(repo), k.tagVersions], [repo, held?.version ?? '']);
    if (reply === undefined) return undefined;
    const [version = '', ...tags] = reply;
    if (held && version === held.version && reply.length === 1) {
      this.tagLists.delete(repo); // re-set: the Map's order is the order of use, the least recent dropped first
      this.tagLists.set(repo, held);
      return sliceSorted(held.tags, range);
    }
    this.holdTags(repo, version, tags);
    return sliceSorted(tags, range);
  }

  async referrers(repo: RepoName, subject: Digest): Promise<IndexedReferrer[] | undefined> {
    const k = this.keys;
    const values = await this.query(QUERY_REFERRERS, [k.meta, k.repos, k.distrust, k.refs(repo, subject)], [repo]);
    if (values === undefined) return undefined;
    const referrers = values.map((v) => JSON.parse(v) as IndexedReferrer);
    return referrers.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  usage(repo: RepoName): Promise<UsageFigures | undefined> {
    return this.ask(() => this.usageOf.usage(repo));
  }

  usages(query: UsageQuery): Promise<UsageFigures[] | undefined> {
    return this.ask(() => this.usageOf.usages(query));
  }

  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined> {
    return this.ask(() => this.usageOf.scopeUsage(scope));
  }

  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined> {
    return this.ask(() => this.usageOf.scopeLinks(scope, d));
  }

  async onChange(change: IndexChange): Promise<void> {
    if (this.seen === 'closed') return;
    try {
      await this.apply(change);
    } catch (err) {
      this.remember(change, err);
    }
  }

  rebuild(): Promise<RedisRebuildReport | undefined> {
    this.running ??= this.rebuildOnce(true).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async ready(timeoutMs = 60_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.seen !== 'closed') {
      if ((await this.o.client.call('HGET', this.keys.meta, 'state').catch(() => undefined)) === 'complete') return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  async settle(): Promise<boolean> {
    for (const [key, change] of [...this.failed]) {
      try {
        await this.apply(change);
        this.failed.delete(key);
      } catch {
        break;
      }
    }
    if (this.failed.size === 0) return true;
    try {
      await this.o.client.run(MARK_STALE, [this.keys.meta], []);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.seen = 'closed';
    clearInterval(this.timer);
    this.stop.abort();
    await this.running;
  }

  /**
   * Re-reads `change`'s item from storage and applies it, unless a later refresh of it was applied
   * already. `record: false` is the rebuilder's catch-up, which must not record its own refreshes.
   */
  async apply(change: IndexChange, record = true): Promise<void> {
    if (change.kind === 'everything') return this.markStale();
    if (change.kind === 'contents') return this.applyContents(change.repo, record);
    const k = this.keys;
    for (let tries = 1; ; tries++) {
      const ticket = Number(await this.o.client.run(TAKE_TICKET, [k.ticket, k.inflight], []));
      const op = await this.readOp(change);
      const head = [k.prefix, ticket, record ? JSON.stringify(change) : '', itemKey(change)];
      const applied = Number(await this.o.client.run(APPLY, [k.meta, k.dirty, k.applied, k.inflight], [...head, ...op]));
      if (applied !== -1) return;
      if (tries >= REFRESH_TRIES) throw new Error(`a refresh of ${itemKey(change)} took longer than ${REFRESH_MAX_MS} ms ${tries} times`);
    }
  }

  /** A change only a rebuild can take in: the index is stale until one completes. */
  private async markStale(): Promise<void> {
    await this.o.client.run(MARK_STALE, [this.keys.meta], []);
    this.seen = 'rebuilding';
    this.kick();
  }

  /**
   * A whole folder of one repository (a repository delete): each item the index or storage holds of
   * it, refreshed as if reported alone. If they cannot be listed, only a rebuild can tell.
   */
  private async applyContents(repo: RepoName, record: boolean): Promise<void> {
    let items: ItemChange[];
    try {
      items = await itemsOf(this.o.client, this.keys, this.o.source, repo);
    } catch (err) {
      this.o.log.warn('index: could not list what a repository folder held; the index in redis is rebuilt', { repository: repo, err: messageOf(err) });
      return this.markStale();
    }
    await eachLimited(items, CONTENTS_AT_ONCE, (c) => this.apply(c, record));
  }

  /** The APPLY op for what storage holds of the item; a storage failure distrusts what the item touches. */
  private async readOp(change: ItemChange): Promise<(string | number)[]> {
    try {
      return await readItem(this.o.source, change);
    } catch (err) {
      this.o.log.warn('index: could not re-read a changed item; its listings come from storage', { change, err: messageOf(err) });
      if (change.kind === 'blob') return ['distrust', '', 1, 0];
      const usage = change.kind === 'tag' ? 0 : 1;
      return ['distrust', change.repo, usage, change.kind === 'repository' ? 1 : 0];
    }
  }

  /** Keeps a whole tag list (at most TAGS_HELD tags over all repositories, the least recently asked dropped first). */
  private holdTags(repo: string, version: string, tags: readonly string[]): void {
    const before = this.tagLists.get(repo);
    if (before) {
      this.tagLists.delete(repo);
      this.tagsHeld -= before.tags.length;
    }
    if (tags.length > TAGS_HELD) return;
    for (const [name, held] of this.tagLists) {
      if (this.tagsHeld + tags.length <= TAGS_HELD) break;
      this.tagLists.delete(name);
      this.tagsHeld -= held.tags.length;
    }
    this.tagLists.set(repo, { version, tags });
    this.tagsHeld += tags.length;
  }

  /** Runs a usage query; undefined when the index cannot answer or Redis fails. */
  private async ask<T>(read: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.seen === 'closed') return undefined;
    try {
      const answer = await read();
      if (answer === undefined) this.noticeIncomplete();
      return answer;
    } catch {
      return undefined;
    }
  }

  /** Runs a query script; undefined (storage answers) when the index is not complete or Redis fails. */
  private async query(script: typeof QUERY_REPOS, keys: string[], args: (string | number)[]): Promise<string[] | undefined> {
    if (this.seen === 'closed') return undefined;
    try {
      const reply = await this.o.client.run(script, keys, args);
      if (!Array.isArray(reply)) {
        this.noticeIncomplete();
        return undefined;
      }
      if (this.seen !== 'ready' && this.running === undefined) this.seen = 'ready';
      return reply.map(String);
    } catch {
      return undefined;
    }
  }

  /** The index was found incomplete (or distrusted): make sure a rebuild is under way somewhere. */
  private noticeIncomplete(): void {
    void this.o.client.call('HGET', this.keys.meta, 'state').then((state) => {
      if (state !== 'complete') {
        this.seen = 'rebuilding';
        this.kick();
      }
    }, () => undefined);
  }

  /** Starts a rebuild here unless one runs here, one was tried recently, or auto-rebuild is off. */
  private kick(): void {
    if (this.o.autoRebuild === false || this.running !== undefined || Date.now() - this.lastAttempt < RETRY_MS) return;
    this.running = this.rebuildOnce(false).finally(() => {
      this.running = undefined;
    });
  }

  private async rebuildOnce(wait: boolean): Promise<RedisRebuildReport | undefined> {
    this.lastAttempt = Date.now();
    try {
      const report = await rebuildRedisIndex({
        client: this.o.client, source: this.o.source, keys: this.keys, lock: this.o.lock, by: this.by, wait,
        signal: this.stop.signal, refresh: (c) => this.apply(c, false), warn: (m, f) => this.o.log.warn(m, f),
      });
      if (report) {
        this.seen = 'ready';
        this.o.log.info('index: rebuilt in redis from storage', { ...report });
      }
      return report;
    } catch (err) {
      if (!this.stop.signal.aborted) this.o.log.warn('index: rebuilding the index in redis failed; listings come from storage', { err: messageOf(err) });
      return undefined;
    }
  }

  /** A refresh that failed (Redis away): kept, and re-applied by `tick` once Redis answers. */
  private remember(change: IndexChange, err: unknown): void {
    if (this.failed.size === 0) this.o.log.warn('index: could not update the index in redis; will retry', { err: messageOf(err) });
    this.failed.set(itemKey(change), change);
  }

  /** Every second: re-applies failed refreshes, and checks the index is complete (else rebuilds). */
  private async tick(): Promise<void> {
    if (this.seen === 'closed') return;
    for (const [key, change] of [...this.failed]) {
      try {
        await this.apply(change);
        this.failed.delete(key);
      } catch {
        return; // still away
      }
    }
    const state = await this.o.client.call('HGET', this.keys.meta, 'state').catch(() => undefined);
    if (state === 'complete') {
      if (this.running === undefined) this.seen = 'ready';
    } else if (state !== undefined) {
      this.seen = 'rebuilding';
      this.kick();
    }
    await this.trim().catch((err: unknown) => this.o.log.warn('index: trimming the tickets in redis failed', { err: messageOf(err) }));
  }

  trim(force = false): Promise<number> {
    return trimApplied(this.o.client, this.keys, { by: this.by, force, stopped: () => this.seen === 'closed' });
  }
}
