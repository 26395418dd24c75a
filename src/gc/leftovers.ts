/**
 * What a crash leaves behind, removed once it is older than the grace period (issue #14):
 *
 *   - the storage driver's temporary files (the filesystem writes `.<name>.<16 hex>.tmp` beside a link
 *     or a blob's `data` and renames it into place; a kill -9 between the two leaves the temporary file,
 *     which no listing shows and nothing else ever removes);
 *   - unfinished tags: a tag folder with an `index` link but no `current/link` (a tag is written index
 *     first, current second). Such a tag names nothing, yet the tag listing shows it.
 *
 * Nothing here is content: a temporary file was never published, and an unfinished tag never resolved.
 * Age is what tells them from a write in progress, hence the grace period (0, offline: everything goes,
 * as the offline commands refuse to run beside a server). An unfinished tag is looked at just before
 * it goes, and kept when its current link has appeared meanwhile.
 *
 * Finding them means looking through every folder of the tree (about 250,000 on a tree of 10,000
 * repositories, four times what the mark and sweep read: issue #19), so a run does it only when one
 * can be there. Every process writing through the filesystem driver keeps a record while it may be
 * in the middle of a write and removes it when it exits cleanly (storage/driver/filesystem-writers.ts).
 * The whole tree is looked through when
 *   - no run has done so yet and found it clean (a tree from before these records, or copied in: its
 *     `berth/leftovers-scanned` is missing);
 *   - a record names a process that is gone (killed, crashed, or exited in the middle of a write), or
 *     one on another machine (which cannot be judged from here), or one that left a file behind;
 *   - the driver keeps no records (S3: its unfinished tags).
 * A run that looked through the whole tree and left nothing behind (removed all it found, or found
 * nothing, and kept nothing young) records so, and forgets the records of the processes that were gone
 * before it began: what they could have left, it has looked for. Otherwise the next run looks again.
 */
import type { Inventory, WriterRecord } from '../storage/maintenance/inventory.js';
import type { RepoName } from '../storage/reference.js';
import type { EmitEvent } from './report.js';

export interface LeftoverOptions {
  /** Leftovers written after this (ms since the epoch) are kept; undefined: none is young. */
  readonly youngAfter: number | undefined;
  readonly dryRun: boolean;
  readonly emit: EmitEvent;
  readonly signal?: AbortSignal;
}

export interface LeftoverResult {
  /** Temporary files removed (or that would be, in a dry run). */
  readonly files: number;
  /** Unfinished tags removed (or that would be). */
  readonly tags: number;
  /** Whether the run looked through the whole tree. */
  readonly whole: boolean;
}

/** Removes the driver's temporary files and the unfinished tags older than the grace period, when there can be any. */
export async function removeLeftovers(inv: Inventory, repositories: readonly RepoName[], opts: LeftoverOptions): Promise<LeftoverResult> {
  const o = opts.signal ? { signal: opts.signal } : {};
  const writers = await inv.writers(o);
  const why = await whyLook(inv, writers, o);
  opts.emit({ type: 'leftover-scan', whole: why !== undefined, why: why ?? 'every process that wrote since the last look through the whole tree exited cleanly, or is still running' });
  if (why === undefined) return { files: 0, tags: 0, whole: false };
  const old = (modTime: number): boolean => opts.youngAfter === undefined || modTime <= opts.youngAfter;
  let files = 0;
  let tags = 0;
  let left = 0; // found and still there: kept as young, or left by a dry run
  for await (const f of inv.leftovers(o)) {
    if (!old(f.modTime)) {
      left += 1;
    } else if (opts.dryRun || (await inv.deleteLeftover(f.path, o))) {
      files += 1;
      if (opts.dryRun) left += 1;
      opts.emit({ type: 'leftover-removed', what: 'temporary file of a write cut short', path: f.path });
    }
  }
  for (const repo of repositories) {
    for await (const t of inv.unfinishedTags(repo, o)) {
      if (!old(t.modTime)) {
        left += 1;
      } else if (opts.dryRun || (await inv.deleteTag(repo, t.tag, o))) {
        tags += 1;
        if (opts.dryRun) left += 1;
        opts.emit({ type: 'leftover-removed', what: 'unfinished tag (an index link, no current link)', path: `${repo}:${t.tag}` });
      }
    }
  }
  if (left === 0 && writers !== undefined) await recordClean(inv, writers, opts.dryRun, o);
  return { files, tags, whole: true };
}

/**
 * Records that the tree holds no crash leftover, and forgets the processes gone before the run began.
 * A dry run may run where it cannot write (a read-only copy): then it records nothing, and the next run
 * looks through the tree again.
 */
async function recordClean(inv: Inventory, writers: readonly WriterRecord[], dryRun: boolean, o: { signal?: AbortSignal }): Promise<void> {
  try {
    for (const w of writers) if (w.state === 'gone') await inv.forgetWriter(w.name, o);
    await inv.recordLeftoversScanned(o);
  } catch (err) {
    if (!dryRun) throw err;
  }
}

/**
 * Whether a run would look through the whole tree now (removeLeftovers decides the same way when it
 * comes to it), for a run that reads the tree ahead of its mark (GcRunOptions.readAhead).
 */
export async function leftoversLookedFor(inv: Inventory, o: { signal?: AbortSignal } = {}): Promise<boolean> {
  return (await whyLook(inv, await inv.writers(o), o)) !== undefined;
}

/** Why the whole tree must be looked through, or undefined when no crash leftover can be in it. */
async function whyLook(inv: Inventory, writers: readonly WriterRecord[] | undefined, o: { signal?: AbortSignal }): Promise<string | undefined> {
  if (writers === undefined) return 'the storage driver keeps no records of its writers';
  if (!(await inv.leftoversScanned(o))) return 'no collection has looked through this tree yet';
  const gone = writers.filter((w) => w.state === 'gone').length;
  if (gone > 0) return `${gone} process${gone === 1 ? '' : 'es'} that wrote to the tree did not exit cleanly`;
  const unknown = writers.filter((w) => w.state === 'unknown').length;
  if (unknown > 0) return `${unknown} process${unknown === 1 ? '' : 'es'} on another machine write${unknown === 1 ? 's' : ''} to the tree`;
  if (writers.some((w) => w.dirty)) return 'a running process left a temporary file behind after a failed write';
  return undefined;
}
