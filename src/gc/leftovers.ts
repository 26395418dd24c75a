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
 *
 * The mark has already looked through every repository's folders (Inventory.contents) and found the
 * temporary files and unfinished tags in them; what is left to look through is the rest of the tree
 * (the blobs, the folders above the repositories), which the walk here reads, skipping those folders.
 */
import type { Inventory, Leftover } from '../storage/maintenance/inventory.js';
import type { RepoName, Tag } from '../storage/reference.js';
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

/** What the mark found in the repositories' folders (MarkState). */
export interface FoundLeftovers {
  readonly leftovers: readonly Leftover[];
  readonly unfinishedTags: readonly { readonly repo: RepoName; readonly tag: Tag }[];
  /** The folders the mark looked through, not looked through again. */
  readonly folders: ReadonlySet<string>;
}

/** Removes the driver's temporary files and the unfinished tags older than the grace period. */
export async function removeLeftovers(inv: Inventory, found: FoundLeftovers, opts: LeftoverOptions): Promise<LeftoverResult> {
  const o = opts.signal ? { signal: opts.signal } : {};
  const old = (modTime: number): boolean => opts.youngAfter === undefined || modTime <= opts.youngAfter;
  let files = 0;
  const remove = async (f: Leftover): Promise<void> => {
    if (!old(f.modTime)) return;
    if (opts.dryRun || (await inv.deleteLeftover(f.path, o))) {
      files += 1;
      opts.emit({ type: 'leftover-removed', what: 'temporary file of a write cut short', path: f.path });
    }
  };
  for (const f of found.leftovers) await remove(f);
  for await (const f of inv.leftovers({ ...o, skip: found.folders })) await remove(f);
  let tags = 0;
  for (const { repo, tag } of found.unfinishedTags) {
    // Looked at again (its age, and whether a tag write has finished since the mark listed it).
    const t = await inv.unfinishedTag(repo, tag, o);
    if (t === undefined || !old(t.modTime)) continue;
    if (opts.dryRun || (await inv.deleteTag(repo, tag, o))) {
      tags += 1;
      opts.emit({ type: 'leftover-removed', what: 'unfinished tag (an index link, no current link)', path: `${repo}:${tag}` });
    }
  }
  return { files, tags };
}
