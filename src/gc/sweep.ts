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
import type { Inventory } from '../storage/inventory.js';
import type { LinkGate } from '../storage/link-gate.js';
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
  const eligible = await eligibleBlobs(inv, state, opts);
  opts.emit({ type: 'summary', marked: state.marked.size, blobs: eligible.length, manifests: manifestsEligible });
  let swept = 0;
  let bytesFreed = 0;
  let done = 0;
  // Deletions are independent (each holds only its own digest's lock), so a few run at once: on an
  // object store each is a round trip.
  await forEachConcurrently(eligible, SWEEP_CONCURRENCY, async (b) => {
    opts.signal?.throwIfAborted();
    opts.emit({ type: 'blob-eligible', digest: b.digest });
    const size = opts.dryRun ? b.size : await deleteBlob(inv, b.digest, opts);
    if (size !== undefined) {
      swept += 1;
      bytesFreed += size;
    }
    done += 1;
    opts.emit({ type: 'progress', phase: 'sweep', done, total: eligible.length });
  });
  return { swept, bytesFreed };
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

/** Unmarked blobs whose data and newest link are older than the grace period (digests and sizes only). */
async function eligibleBlobs(
  inv: Inventory,
  state: MarkState,
  opts: SweepOptions,
): Promise<{ digest: Digest; size: number }[]> {
  const eligible: { digest: Digest; size: number }[] = [];
  for await (const b of inv.blobs(signalOf(opts))) {
    if (state.marked.has(b.digest)) continue;
    if (isYoung(b.modTime, opts) || isYoung(state.linkTimes.get(b.digest), opts)) continue;
    eligible.push({ digest: b.digest, size: b.size });
  }
  return eligible;
}

/**
 * Whether the gate saw the digest linked (or read through a repository) since the run began, or
 * within the grace period before it: a client that found a blob just before the run may still name it.
 */
function linkedRecently(last: number | undefined, opts: SweepOptions): boolean {
  return last !== undefined && last >= (opts.youngAfter ?? opts.runStart); // youngAfter = runStart - grace
}

/** Deletes one blob inside the gate; answers the bytes freed, or undefined when it was kept or already gone. */
function deleteBlob(inv: Inventory, d: Digest, opts: SweepOptions): Promise<number | undefined> {
  return opts.gate.sweep(d, async (last) => {
    if (linkedRecently(last, opts)) {
      opts.emit({ type: 'blob-kept', digest: d, reason: 'linked or read within the grace period, or since the collection began' });
      return undefined;
    }
    const now = await inv.statBlob(d, signalOf(opts));
    if (now === undefined) return undefined;
    if (isYoung(now.modTime, opts)) {
      opts.emit({ type: 'blob-kept', digest: d, reason: 'written within the grace period' });
      return undefined;
    }
    const path = await inv.deleteBlob(d, signalOf(opts));
    if (path === undefined) return undefined;
    opts.emit({ type: 'blob-deleted', digest: d, path, size: now.size });
    return now.size;
  });
}

function isYoung(modTime: number | undefined, opts: SweepOptions): boolean {
  return opts.youngAfter !== undefined && modTime !== undefined && modTime > opts.youngAfter;
}

function signalOf(opts: SweepOptions): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}
