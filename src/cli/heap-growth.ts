/**
 * A mirror's heap grows in larger steps between full garbage collections (issue #13).
 *
 * Berth's heap is small (about 11 MB live) and V8, finding its collections cheap, sets the next full
 * collection's limit only about one young generation above it (16 MB: `--trace-incremental-marking`
 * showed "size/limit 11MB / 27MB"). With that little room V8 counts itself as near the limit at once
 * and starts incremental marking again right after each full collection, so a cold pull of a 50 MB
 * image through the mirror (which allocates a fresh socket buffer for every 64 KiB from the upstream
 * and promotes some of them) ran 3-7 full collections ("finalize incremental marking via task; GC in
 * old space requested"), 30-140 ms of CPU, with its concurrent marking on the other core too.
 *
 * V8's `--heap-growing-percent` fixes the factor by which the limit is set above the live heap after
 * each full collection; V8 itself picks between 1.1 and 4. At HEAP_GROWING_PERCENT (a factor of 4, the
 * top of V8's own range) the limit leaves room beyond a young generation, and a cold pull ran 1 full
 * collection (probe runs, bench/results/mirror-2026-12-07-7.md). The flag is read whenever V8 sets a
 * new limit, so setting it once the process runs takes effect from the next full collection (the probe
 * showed the same counts set this way as given on the command line). The cost: more heap before a full
 * collection (about four times the live heap, rather than one young generation above it). Only a
 * process that mirrors sets it; other registries keep V8's own choice.
 */
import { setFlagsFromString } from 'node:v8';

/** The percentage above the live heap at which the next full collection is due (a factor of 1 + p/100). */
export const HEAP_GROWING_PERCENT = 300;

/** Makes V8 grow the heap by HEAP_GROWING_PERCENT between full collections, from the next one on. */
export function growHeapInLargerSteps(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
