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
 * as the offline commands refuse to run beside a server). An unfinished tag is looked at again just
 * before it goes, and kept when its current link has appeared meanwhile.
 */
import type { Inventory } from '../storage/maintenance/inventory.js';
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
}

/** Removes the driver's temporary files and the unfinished tags of `repos` older than the grace period. */
export async function removeLeftovers(inv: Inventory, repos: readonly RepoName[], opts: LeftoverOptions): Promise<LeftoverResult> {
  const o = opts.signal ? { signal: opts.signal } : {};
  const old = (modTime: number): boolean => opts.youngAfter === undefined || modTime <= opts.youngAfter;
  let files = 0;
  for await (const f of inv.leftovers(o)) {
    if (!old(f.modTime)) continue;
    if (opts.dryRun || (await inv.deleteLeftover(f.path, o))) {
      files += 1;
      opts.emit({ type: 'leftover-removed', what: 'temporary file of a write cut short', path: f.path });
    }
  }
  let tags = 0;
  for (const repo of repos) {
    for await (const t of inv.unfinishedTags(repo, o)) {
      if (!old(t.modTime)) continue;
      if (!opts.dryRun && !(await stillUnfinished(inv, repo, t.tag, o))) continue;
      if (opts.dryRun || (await inv.deleteTag(repo, t.tag, o))) {
        tags += 1;
        opts.emit({ type: 'leftover-removed', what: 'unfinished tag (an index link, no current link)', path: `${repo}:${t.tag}` });
      }
    }
  }
  return { files, tags };
}

/** Whether the tag still has no current link (a tag write may have finished since it was listed). */
async function stillUnfinished(inv: Inventory, repo: RepoName, tag: string, o: { signal?: AbortSignal }): Promise<boolean> {
  for await (const t of inv.unfinishedTags(repo, o)) if (t.tag === tag) return true;
  return false;
}
