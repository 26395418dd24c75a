/**
 * Sweep: remove what the mark did not reach.
 *
 * 1. Untagged manifests (`deleteUntagged`): each candidate's revision link is removed inside
 *    `linkGate.sweep(digest)`. If the gate says the manifest was linked since the run began (an index
 *    PUT naming it as a child, a re-push), it is kept, and so is everything it reaches, which is marked
 *    now, before any blob is considered; candidates it reaches (its children, its referrers) are kept too.
 * 2. Blobs: every blob in the store that is not marked, whose data and newest link (any repository's
 *    `_layers` or revision link, noted during the mark) are both older than the grace period, is
 *    eligible. Each is deleted only inside `linkGate.sweep(digest)`, and kept when the gate says it was
 *    linked (or found by a client) since the run began, or when its data was rewritten since it was
 *    listed. That gate is what makes a push racing with the sweep safe (link-gate.ts): either the link
 *    came first and the sweep keeps the blob, or the sweep came first and the link finds no blob and
 *    fails cleanly. The grace period only spares work in progress from needless failures.
 */
import type { Digest } from '../storage/digest.js';
import type { Inventory } from '../storage/maintenance/inventory.js';
import type { LinkGate } from '../storage/maintenance/link-gate.js';
import type { RepoName } from '../storage/reference.js';
import { type MarkOptions, type MarkState, type UntaggedCandidate, markTree } from './mark.js';

export interface SweepOptions extends MarkOptions {
  readonly gate: LinkGate;
  /** When the run began (ms, the gate's clock): a link at or after it keeps a blob. */
  readonly runStart: number;
  readonly dryRun: boolean;
}

export interface SweepResult {
  readonly swept: number;
  readonly bytesFreed: number;
  /** Unmarked blobs kept because they (or their newest link) were written within the grace period. */
  readonly keptYoung: number;
  /** The blobs deleted (in a dry run: that would be), whose `_layers` links go next (`removeLayerLinks`). */
  readonly deleted: ReadonlySet<Digest>;
}

/** Removes the revision links of untagged candidates (step 1); answers how many went (or would go). */
export async function removeUntagged(
  inv: Inventory,
  candidates: readonly UntaggedCandidate[],
  state: MarkState,
  opts: SweepOptions,
): Promise<number> {
  if (opts.dryRun) return candidates.length;
  const kept = new Set<string>();
  let removed = 0;
  for (const c of candidates) {
    opts.signal?.throwIfAborted();
    const key = (d: Digest): string => `${c.repo}@${d}`;
    const parentKept = c.parents.some((p) => kept.has(key(p)));
    const gone = !parentKept && (await opts.gate.sweep(c.digest, async (last) => {
      if (linkedRecently(last, opts)) return false;
      return inv.deleteRevision(c.repo, c.digest, signalOf(opts));
    }));
    if (gone) {
      removed += 1;
      opts.emit({ type: 'manifest-removed', repo: c.repo, digest: c.digest });
    } else {
      kept.add(key(c.digest));
      await markTree(inv, c.repo, c.digest, opts, state);
    }
  }
  return removed;
}

/** Deletes unmarked blobs older than the grace period (step 2). */
export async function sweepBlobs(
  inv: Inventory,
  state: MarkState,
  opts: SweepOptions,
  manifestsEligible: number,
): Promise<SweepResult> {
  const { eligible, young } = await eligibleBlobs(inv, state, opts);
  opts.emit({ type: 'summary', marked: state.marked.size, blobs: eligible.length, manifests: manifestsEligible });
  let swept = 0;
  let bytesFreed = 0;
  let done = 0;
  let keptYoung = young;
  const deleted = new Set<Digest>();
  // Deletions are independent (each holds only its own digest's lock), so a few run at once: on an
  // object store each is a round trip.
  await forEachConcurrently(eligible, SWEEP_CONCURRENCY, async (b) => {
    opts.signal?.throwIfAborted();
    opts.emit({ type: 'blob-eligible', digest: b.digest });
    const outcome = opts.dryRun ? { size: b.size } : await deleteBlob(inv, b.digest, opts);
    if ('size' in outcome) {
      swept += 1;
      bytesFreed += outcome.size;
      deleted.add(b.digest);
    } else if (outcome.kept === 'young') {
      keptYoung += 1;
    }
    done += 1;
    opts.emit({ type: 'progress', phase: 'sweep', done, total: eligible.length });
  });
  return { swept, bytesFreed, keptYoung, deleted };
}

/** How many blob deletions a sweep runs at once. */
export const SWEEP_CONCURRENCY = 8;

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first failure. */
async function forEachConcurrently<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const item = items[next]!;
      next += 1;
      try {
        await fn(item);
      } catch (err) {
        failed = true; // the other workers stop after their current item
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Unmarked blobs whose data and newest link are older than the grace period (digests and sizes only),
 * and how many unmarked ones the grace period spared.
 */
async function eligibleBlobs(
  inv: Inventory,
  state: MarkState,
  opts: SweepOptions,
): Promise<{ eligible: { digest: Digest; size: number }[]; young: number }> {
  const eligible: { digest: Digest; size: number }[] = [];
  let young = 0;
  // The store's folders are listed, and only the unmarked blobs' data stat'ed (their size and age).
  for await (const d of inv.blobDigests(signalOf(opts))) {
    if (state.marked.has(d)) continue;
    const b = await inv.statBlob(d, signalOf(opts));
    if (b === undefined) continue; // a folder without data: no blob
    if (isYoung(b.modTime, opts) || isYoung(state.linkTimes.get(b.digest), opts)) young += 1;
    else eligible.push({ digest: b.digest, size: b.size });
  }
  return { eligible, young };
}

/**
 * Removes the `_layers` links of the blobs this run deleted, in every repository (distribution v3 does
 * the same), so no repository is left linking a blob that is gone. The links are the mark's loose ones
 * (MarkState.looseLayers): a link to a blob its own repository's manifests keep names a marked blob,
 * which no sweep deletes. Each removal runs inside `linkGate.sweep(digest)` and is skipped when the
 * digest was linked since the run began or its blob exists again: a push that re-uploaded the blob after
 * the sweep keeps its link. Answers how many went (in a dry run: how many links the blobs that would go have).
 */
export async function removeLayerLinks(
  inv: Inventory,
  loose: readonly { readonly repo: RepoName; readonly digest: Digest }[],
  deleted: ReadonlySet<Digest>,
  opts: SweepOptions,
): Promise<number> {
  if (deleted.size === 0) return 0;
  const dangling = loose.filter((l) => deleted.has(l.digest));
  if (opts.dryRun) return dangling.length;
  let removed = 0;
  for (const { repo, digest: d } of dangling) {
    opts.signal?.throwIfAborted();
    const gone = await opts.gate.sweep(d, async (last) => {
      if (linkedRecently(last, opts) || (await inv.statBlob(d, signalOf(opts))) !== undefined) return false;
      return inv.deleteLayerLink(repo, d, signalOf(opts));
    });
    if (gone) removed += 1;
  }
  return removed;
}

/**
 * Whether the gate saw the digest linked (or read through a repository) since the run began, or
 * within the grace period before it: a client that found a blob just before the run may still name it.
 */
function linkedRecently(last: number | undefined, opts: SweepOptions): boolean {
  return last !== undefined && last >= (opts.youngAfter ?? opts.runStart); // youngAfter = runStart - grace
}

/** What became of one eligible blob: deleted (its size), or kept (and why), or already gone. */
type BlobOutcome = { readonly size: number } | { readonly kept: 'linked' | 'young' | 'gone' };

/** Deletes one blob inside the gate. */
function deleteBlob(inv: Inventory, d: Digest, opts: SweepOptions): Promise<BlobOutcome> {
  return opts.gate.sweep(d, async (last): Promise<BlobOutcome> => {
    if (linkedRecently(last, opts)) {
      opts.emit({ type: 'blob-kept', digest: d, reason: 'linked or read within the grace period, or since the collection began' });
      return { kept: 'linked' };
    }
    const now = await inv.statBlob(d, signalOf(opts));
    if (now === undefined) return { kept: 'gone' };
    if (isYoung(now.modTime, opts)) {
      opts.emit({ type: 'blob-kept', digest: d, reason: 'written within the grace period' });
      return { kept: 'young' };
    }
    const path = await inv.deleteBlob(d, signalOf(opts));
    if (path === undefined) return { kept: 'gone' };
    opts.emit({ type: 'blob-deleted', digest: d, path, size: now.size });
    return { size: now.size };
  });
}

function isYoung(modTime: number | undefined, opts: SweepOptions): boolean {
  return opts.youngAfter !== undefined && modTime !== undefined && modTime > opts.youngAfter;
}

function signalOf(opts: SweepOptions): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}
