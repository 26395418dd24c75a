/**
 * The LevelDB index (DESIGN.md §7): the sorted repository list, tags per repository, referrers per
 * subject and blob descriptors, derived from the layout and answered in place of walking it.
 *
 * Trust. The database on disk is never trusted as found: a data directory may have been copied in,
 * edited, or restored while Berth was down, or Berth may have been killed in the middle of a rebuild.
 * The index answers only once THIS process has rebuilt it from storage (the in-memory state `ready`);
 * the database holds a generation record (`building`, then `complete`) for operators and tools, never
 * as a reason to trust it. Until then, and whenever it stops being ready, every query answers
 * `undefined` and storage walks the tree, so a listing is never answered from stale entries. A kill -9
 * at any point leaves a database the next start ignores and rebuilds.
 *
 * Changes (index-port.ts) name an item, not its new value; applying one re-reads that item from
 * storage and writes its entry, one refresh at a time per item (key-queue.ts), so the entry ends as
 * storage ends whatever order racing requests report in. Whole tag lists are also held in memory
 * (tag-lists.ts): dropped after each refresh of a tag or repository, and all of them whenever the
 * index stops being ready.
 *
 * Rebuild, and the writes that happen during it. States: rebuilding → catching-up → ready.
 * - rebuilding: wait for running refreshes, empty the database, walk the layout and write every entry
 *   (rebuild.ts). A change reported meanwhile is only recorded (deduplicated by item) and its request
 *   goes on at once: nothing answers from the index yet, so nobody can miss the write.
 * - catching-up: the walk has written everything it read. Each recorded item is refreshed now, and
 *   new changes are applied as they come (through the same per-item queue). Every read of a recorded
 *   item happens after the write that recorded it, and every DB write of a refresh comes after the
 *   walk's write of that item, so a value the walk read before a concurrent write cannot survive.
 *   An item nobody wrote during the walk was read by the walk after the rebuild began, which is after
 *   every earlier write (all of which had reported, and so had been refreshed, before the rebuild).
 * - ready: recorded items are all refreshed; the generation record says `complete`; queries answer.
 * A change the index cannot attribute to one item (`everything`) sends it back to rebuilding. A change
 * to a whole folder of one repository (`contents`: a repository delete) does not: each tag, revision
 * and layer link the index holds of it or storage holds now is refreshed as an item of its own
 * (refresh.ts itemsOf), and the index stays ready throughout.
 *
 * Failures. LevelDB that cannot be opened: a locked database (another process) is left alone and
 * Berth serves without an index; any other failure (corrupt or unreadable files) removes the directory
 * and starts an empty one, which is safe because nothing in it would have been trusted anyway; if that
 * fails too, Berth serves without an index. A LevelDB read or write failing later turns the index off
 * for the life of the process. Each is one warning in the log; storage answers either way. Storage
 * failures while reading one repository leave that repository's listings to storage.
 *
 * One writer: the index hears of the writes of this process only. Several processes writing one tree
 * (replicas over shared storage, registry:2 itself, an offline tool while Berth serves) would leave
 * it stale, so a replica set must run without it.
 */
import type { Logger } from '../log.js';
import { type Digest, parseDigest } from '../storage/digest.js';
import {
  type BlobDescriptor, type IndexChange, type IndexSource, type IndexedReferrer, type ListRange, type RegistryIndex, type RepoName, type RepoScope,
  type ScopeUsage, type TagTarget, type UsageFigures, type UsageQuery, sliceSorted,
} from '../storage/indexing/index-port.js';
import { createKeyQueue } from './key-queue.js';
import { GENERATION_KEY, REBUILT_RANGES, blobKey, costKey, isIndexable, lastField, referrerRange, repoKey, repoRange, tagRange } from './keys.js';
import { messageOf, openLevel } from './open.js';
import { type Distrust, type IndexLevel, isBlobHint, newDistrust } from './entries.js';
import { itemKey, itemsOf, refreshItem } from './refresh.js';
import { type WalkCounts, eachLimited, walkInto } from './rebuild.js';
import { TimesTable, pruneTimes } from './times.js';
import type { TimesStore } from '../storage/indexing/manifest-times.js';
import { createTagLists } from './tag-lists.js';
import { figuresOf, refreshCost, scopeLinksOf, scopeUsageOf, usagePage, writeCosts } from './usage.js';

export { isIndexLocked } from './open.js';

export type IndexState = 'rebuilding' | 'catching-up' | 'ready' | 'failed' | 'closed';

/** The generation record: which rebuild wrote the database, and whether it finished. */
export interface GenerationRecord {
  readonly generation: number;
  readonly state: 'building' | 'complete';
  readonly startedAt: string;
  readonly completedAt?: string;
  readonly pid: number;
  readonly repositories?: number;
  readonly tags?: number;
  readonly referrers?: number;
}

export interface RebuildReport {
  readonly generation: number;
  readonly repositories: number;
  readonly tags: number;
  readonly referrers: number;
  readonly blobs: number;
  /** Revisions whose push time was taken from their link's modification time (times.ts). */
  readonly linkTimes: number;
  readonly ms: number;
}

export interface IndexDb extends RegistryIndex {
  usage(repo: RepoName): Promise<UsageFigures | undefined>;
  usages(query: UsageQuery): Promise<UsageFigures[] | undefined>;
  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined>;
  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined>;
  /** Push and pull times per manifest revision (times.ts), kept across rebuilds. */
  readonly times: TimesStore;
  readonly location: string;
  readonly state: IndexState;
  /** Resolves true once the index is ready (now or after the rebuild under way), false if it failed or closed. */
  ready(): Promise<boolean>;
  /** Rebuilds from storage (or joins the rebuild under way); answers undefined when it failed or was closed. */
  rebuild(): Promise<RebuildReport | undefined>;
  /** What the index knows of a blob: a hint only (the collector may have removed it); check the driver. */
  blobHint(d: Digest): Promise<Omit<BlobDescriptor, 'digest'> | undefined>;
  /** The generation record in the database, if any. */
  generation(): Promise<GenerationRecord | undefined>;
  /** Stops a rebuild under way, waits for refreshes, closes the database. Queries answer undefined after. */
  close(): Promise<void>;
}

/**
 * How many tags the index keeps in memory over all repositories (tag-lists.ts): some 50 bytes each,
 * so about 10 MiB. A repository with more tags than this is listed from the database range by range.
 */
const TAGS_HELD = 200_000;

/** How many items of a `contents` change (a repository delete) are refreshed at once. */
const CONTENTS_AT_ONCE = 16;

export interface IndexDbOptions {
  /** The LevelDB directory, outside `docker/registry/v2` (e.g. `<rootdirectory>/berth/index`). */
  readonly location: string;
  readonly source: IndexSource;
  readonly log: Logger;
}

/** Opens the index and starts its rebuild in the background; undefined (after a warning) when it cannot be opened. */
export async function startIndexDb(opts: IndexDbOptions): Promise<IndexDb | undefined> {
  const index = await openIndexDb(opts);
  void index?.rebuild();
  return index;
}

/** Opens the index, untrusted until `rebuild()` completes; undefined (after a warning) when it cannot be opened. */
export async function openIndexDb(opts: IndexDbOptions): Promise<IndexDb | undefined> {
  const db = await openLevel(opts.location, opts.log);
  return db && new LevelIndex(db, opts);
}

class LevelIndex implements IndexDb {
  readonly location: string;
  private readonly source: IndexSource;
  private readonly log: Logger;
  private readonly queue = createKeyQueue();
  private readonly tagLists = createTagLists(TAGS_HELD);
  private readonly stop = new AbortController();
  private current: IndexState = 'rebuilding';
  /** Bumped whenever the index stops being ready, so a query that straddles it answers undefined. */
  private epoch = 0;
  /** Changes reported during the walk, by item. */
  private recorded = new Map<string, IndexChange>();
  /** Set when a change only a new walk can take in arrives during a rebuild. */
  private again = false;
  private running: Promise<RebuildReport | undefined> | undefined;
  private distrust: Distrust = newDistrust();
  private waiters: ((ok: boolean) => void)[] = [];
  readonly times: TimesTable;
  /** Whether the index was ready when it was closed (the last pulls are written as a ready index would). */
  private closedReady = false;

  constructor(
    private readonly db: IndexLevel,
    opts: IndexDbOptions,
  ) {
    this.location = opts.location;
    this.source = opts.source;
    this.log = opts.log;
    this.times = new TimesTable({
      db, queue: this.queue, ready: () => this.current === 'ready' || this.closedReady,
      open: () => this.current !== 'failed' && db.status === 'open',
      fail: (what, err) => this.fail(what, err),
    });
  }

  get state(): IndexState {
    return this.current;
  }

  ready(): Promise<boolean> {
    if (this.current === 'ready') return Promise.resolve(true);
    if (this.current === 'failed' || this.current === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  rebuild(): Promise<RebuildReport | undefined> {
    this.running ??= this.rebuildLoop()
      .catch((err: unknown) => {
        this.fail('rebuilding the index failed', err);
        return undefined;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  repositories(range: ListRange): Promise<readonly string[] | undefined> {
    return this.answer(async () => (this.distrust.catalog ? undefined : (await this.keysIn(repoRange(range))).map(lastField)));
  }

  tags(repo: string, range: ListRange): Promise<readonly string[] | undefined> {
    return this.answer(async () => {
      if (this.tagLists.oversized(repo)) return (await this.knows(repo)) ? this.tagsIn(repo, range) : undefined;
      const all = await this.tagLists.get(repo, async () => ((await this.knows(repo)) ? this.tagsIn(repo, {}) : undefined));
      return all && sliceSorted(all, range);
    });
  }

  tagTargets(repo: string, range: ListRange): Promise<TagTarget[] | undefined> {
    return this.answer(async () => {
      if (!(await this.knows(repo))) return undefined;
      const entries = await this.db.iterator(tagRange(repo, range)).all();
      return entries.map(([key, value]) => ({ tag: lastField(key), digest: typeof value === 'string' ? parseDigest(value) : undefined }));
    });
  }

  descriptorOf(d: Digest): Promise<Omit<BlobDescriptor, 'digest'> | undefined> {
    return this.blobHint(d);
  }

  referrers(repo: string, subject: Digest): Promise<IndexedReferrer[] | undefined> {
    return this.answer(async () =>
      (await this.knows(repo)) ? ((await this.db.values(referrerRange(repo, subject)).all()) as IndexedReferrer[]) : undefined,
    );
  }

  usage(repo: RepoName): Promise<UsageFigures | undefined> {
    return this.answer(async () => ((await this.knowsUsageOf(repo)) ? (await figuresOf(this.db, [repo]))[0] : undefined));
  }

  usages(query: UsageQuery): Promise<UsageFigures[] | undefined> {
    const { prefix = '', after, limit = Number.POSITIVE_INFINITY, include } = query;
    return this.answer(async () => {
      if (!this.usageTrusted()) return undefined;
      return usagePage(this.db, { prefix, after, limit, include }, (repo) => !this.distrust.repos.has(repo));
    });
  }

  scopeUsage(scope: RepoScope): Promise<ScopeUsage | undefined> {
    return this.answer(async () => (this.usageTrusted() ? scopeUsageOf(this.db, scope) : undefined));
  }

  scopeLinks(scope: RepoScope, d: Digest): Promise<boolean | undefined> {
    return this.answer(async () => (this.usageTrusted() ? scopeLinksOf(this.db, scope, d) : undefined));
  }

  async onChange(change: IndexChange): Promise<void> {
    if (this.current === 'failed' || this.current === 'closed') return;
    if (change.kind === 'everything') {
      this.again = true;
      this.enter('rebuilding');
      void this.rebuild();
      return;
    }
    // During the walk a change is only recorded; it is applied once the walk is done (file comment).
    if (this.current === 'rebuilding') {
      this.recorded.set(itemKey(change), change);
      return;
    }
    await this.queue.run(itemKey(change), () => this.refresh(change));
  }

  async blobHint(d: Digest): Promise<Omit<BlobDescriptor, 'digest'> | undefined> {
    if (this.current === 'failed' || this.current === 'closed') return undefined;
    try {
      const value = await this.db.get(blobKey(d));
      return isBlobHint(value) ? value : undefined;
    } catch (err) {
      this.fail('reading the index database failed', err);
      return undefined;
    }
  }

  async generation(): Promise<GenerationRecord | undefined> {
    const value = await this.db.get(GENERATION_KEY);
    return isGenerationRecord(value) ? value : undefined;
  }

  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.closedReady = this.current === 'ready';
    this.current = 'closed';
    this.tagLists.clear();
    this.wake(false);
    this.stop.abort();
    await this.running;
    await this.times.flushPulls(); // the pulls still in memory, while the database is open
    await this.queue.idle();
    await this.db.close();
  }

  /** Rebuilds until no change that needs a new walk arrived during the last one. */
  private async rebuildLoop(): Promise<RebuildReport | undefined> {
    for (;;) {
      const started = Date.now();
      this.enter('rebuilding');
      this.recorded = new Map();
      this.again = false;
      this.distrust = newDistrust();
      await this.queue.idle();
      if (this.now() !== 'rebuilding') return undefined;
      const generation = await this.startGeneration(started);
      const seen = new Set<string>();
      const counts = await walkInto(this.db, this.source, this.distrust, { signal: this.stop.signal, warn: (m, f) => this.log.warn(m, f), seen });
      if (this.again) continue;
      await writeCosts(this.db, this.source, { signal: this.stop.signal });
      if (this.again) continue;
      await pruneTimes(this.db, seen, this.distrust.repos);
      this.enter('catching-up');
      await this.catchUp();
      if (this.again) continue;
      if (this.now() !== 'catching-up') return undefined;
      await this.completeGeneration(generation, counts);
      if (this.again) continue;
      if (this.now() !== 'catching-up') return undefined;
      this.enter('ready');
      const report: RebuildReport = { generation: generation.generation, ...counts, ms: Date.now() - started };
      this.log.info('index: rebuilt from storage', { location: this.location, ...report });
      return report;
    }
  }

  /** Empties the database and records that a rebuild by this process began. */
  private async startGeneration(started: number): Promise<GenerationRecord> {
    const previous = await this.db.get(GENERATION_KEY);
    const record: GenerationRecord = {
      generation: (isGenerationRecord(previous) ? previous.generation : 0) + 1,
      state: 'building',
      startedAt: new Date(started).toISOString(),
      pid: process.pid,
    };
    for (const range of REBUILT_RANGES) await this.db.clear(range);
    await this.db.put(GENERATION_KEY, record);
    return record;
  }

  /** Records that the rebuild finished (for operators and tools; never a reason to trust the database). */
  private async completeGeneration(record: GenerationRecord, counts: WalkCounts): Promise<void> {
    const { repositories, tags, referrers } = counts;
    const complete: GenerationRecord = { ...record, state: 'complete', completedAt: new Date().toISOString(), repositories, tags, referrers };
    await this.db.put(GENERATION_KEY, complete);
  }

  /** Refreshes every item changed during the walk (new changes meanwhile go through the queue). */
  private async catchUp(): Promise<void> {
    const pending = [...this.recorded.values()];
    this.recorded = new Map();
    await Promise.all(pending.map((c) => this.queue.run(itemKey(c), () => this.refresh(c))));
  }

  /**
   * Re-reads one item, then recounts the blob whose links or data it touched (in that blob's own queue
   * slot, after this write); a storage failure distrusts what it touches, a LevelDB failure the whole index.
   */
  private async refresh(change: IndexChange): Promise<void> {
    try {
      if (change.kind === 'contents') {
        const items = await itemsOf(this.db, this.source, change.repo);
        await eachLimited(items, CONTENTS_AT_ONCE, (c) => this.queue.run(itemKey(c), () => this.refresh(c)));
        return;
      }
      const recount = await refreshItem(this.db, this.source, change, this.distrust);
      if (recount !== undefined) await this.queue.run(costKey(recount), () => this.recount(recount));
    } catch (err) {
      if (this.current === 'closed' || this.current === 'failed') return;
      await this.refreshFailed(change, err);
    } finally {
      // After the write and before the change's request is answered (tag-lists.ts).
      if (change.kind === 'tag' || change.kind === 'repository' || change.kind === 'contents') this.tagLists.invalidate(change.repo);
    }
  }

  /** Recounts a blob's cost (usage.ts); a storage failure leaves usage figures to no one until the next rebuild. */
  private async recount(d: Digest): Promise<void> {
    try {
      await refreshCost(this.db, this.source, d);
    } catch (err) {
      if (this.current === 'closed' || this.current === 'failed') return;
      if (!isStorageFailure(err)) return this.fail('writing the index database failed', err);
      this.log.warn('index: could not re-read a blob; usage figures are not answered until the next rebuild', { digest: d, err: messageOf(err) });
      this.distrust.usage = true;
    }
  }

  /** A refresh failed: storage's failure distrusts what the change touches, LevelDB's the whole index. */
  private async refreshFailed(change: IndexChange, err: unknown): Promise<void> {
    if (!isStorageFailure(err) || change.kind === 'everything') {
      this.fail('writing the index database failed', err);
      return;
    }
    this.log.warn('index: could not re-read a changed item; its listings come from storage', { change, err: messageOf(err) });
    if (change.kind === 'blob') await this.db.del(blobKey(change.digest)).catch((e: unknown) => this.fail('writing failed', e));
    else this.distrust.repos.add(change.repo);
    if (change.kind === 'repository' || change.kind === 'contents') this.distrust.catalog = true;
    if (change.kind === 'layer' || change.kind === 'revision' || change.kind === 'contents') this.distrust.usage = true;
  }

  /** Runs a read of the database and answers it only if the index was ready throughout. */
  private async answer<T>(read: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.current !== 'ready') return undefined;
    const at = this.epoch;
    try {
      const result = await read();
      return this.current === 'ready' && this.epoch === at ? result : undefined;
    } catch (err) {
      this.fail('reading the index database failed', err);
      return undefined;
    }
  }

  /** Keys in a range; all() reads in large batches (nextv), several times faster than key by key. */
  private keysIn(range: { gt: string; lt: string; limit?: number }): Promise<string[]> {
    return this.db.keys(range).all();
  }

  /** Tags of `repo` in `range`, read from the database. */
  private async tagsIn(repo: string, range: ListRange): Promise<string[]> {
    return (await this.keysIn(tagRange(repo, range))).map(lastField);
  }

  /** Whether the usage tables hold every link (usage.ts). */
  private usageTrusted(): boolean {
    return !this.distrust.usage && !this.distrust.catalog;
  }

  /** Whether the index may answer usage figures for `repo`. */
  private async knowsUsageOf(repo: RepoName): Promise<boolean> {
    return this.usageTrusted() && (await this.knows(repo));
  }

  /** Whether the index holds `repo` and may answer for it. */
  private async knows(repo: string): Promise<boolean> {
    return isIndexable(repo) && !this.distrust.repos.has(repo) && (await this.db.get(repoKey(repo))) !== undefined;
  }

  /** The state now (a call, so that what an await may have changed is not narrowed away). */
  private now(): IndexState {
    return this.current;
  }

  private enter(next: IndexState): void {
    if (this.current === 'closed' || this.current === 'failed') return;
    if (next !== 'ready') {
      this.epoch += 1;
      this.tagLists.clear();
    }
    this.current = next;
    if (next === 'ready' || next === 'failed') this.wake(next === 'ready');
  }

  private wake(ok: boolean): void {
    for (const wake of this.waiters.splice(0)) wake(ok);
  }

  private fail(what: string, err: unknown): void {
    if (this.current === 'closed' || this.current === 'failed') return;
    this.log.warn(`index: ${what}; listings are answered from storage until restart`, { location: this.location, err: messageOf(err) });
    this.enter('failed');
    this.stop.abort();
  }
}

function isGenerationRecord(v: unknown): v is GenerationRecord {
  return typeof v === 'object' && v !== null && typeof (v as { generation?: unknown }).generation === 'number';
}

/** True for an error storage raised (a DriverError or a RegistryError), as opposed to LevelDB's. */
function isStorageFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !code.startsWith('LEVEL_');
}
