/**
 * Upload bodies' dead chunks, collected as they pile up. Node hands a request body over in chunks of
 * up to 64 KiB, each in a buffer of its own outside the V8 heap; an upload hashes and copies a chunk
 * and drops it at once. V8 frees such buffers only when it collects the young generation, which it
 * does when the young space fills (its 16 MiB semi-spaces, which a few small objects per chunk take
 * long to fill) or external memory has grown a long way: during a 1 GiB upload some 20-40 MiB of dead
 * chunks stayed resident between collections (issue #18, bench/results/s3-2026-12-07-3.md).
 *
 * So after every BYTES_PER_COLLECTION bytes of request bodies taken per upload running (counted over all
 * of them together: the garbage is the process's), a young-generation collection is asked for: every
 * 4 MiB while one upload runs, every 16 MiB while four do. One upload alone gets them as often as
 * before, so its peak is unchanged; several at once leave at most 4 MiB of dead chunks each between
 * collections, and the collections come no more often than for one fast upload. Collecting every 4 MiB
 * of all uploads together made four uploads 15-25% slower under mixed load, and the manifest GETs
 * served meanwhile slower at the tail (bench/results/mixed-2026-12-07-3.md): sixty or so a second,
 * each stopping the loop and copying whatever other requests hold in the young space. With one upload nearly everything in the young
 * space is dead, so each costs well under a millisecond here: 256 collections, some 0.1-0.2 s of CPU
 * per GiB uploaded. Probe on Ceph (1 GiB, peak RSS, one part buffer per writer): PUT 101-104 MiB
 * collecting every 4 MiB, 104-109 every 8 MiB, 135 never; 64 MiB PATCHes 110-115, 112-118, 143;
 * upload speed the same within the noise. Other requests are left to V8's own pacing (a smaller young
 * space for every request, `--max-semi-space-size`, costs manifest GETs 25-50% more CPU: README).
 *
 * V8 gives JavaScript a `gc` function only with `--expose-gc`; the flag is turned on just long enough
 * to make a new context, whose `gc` is kept, and turned off again, so the process's own global
 * object never gets one. If that does not give a function, nothing is collected early.
 *
 * Full collections are left to V8. On Node 20 `gc({ type: 'major' })` (with or without `execution:
 * 'sync'`) does not collect the old generation: 30 MiB of promoted dead objects stayed, and the plain
 * `gc()` freed them in 5 ms. With the plain call every 64 MiB of uploads (when the heap in use had grown
 * by 16 MiB) the S3 PATCH peaks did not move (bench/results/s3-2026-12-07-8.md): the memory they add
 * is outside V8's heap.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { uploadsRunning } from './uploads-running.js';

/** Bytes of upload bodies per upload running between two young-generation collections. */
export const BYTES_PER_COLLECTION = 4 * 1024 * 1024;

type CollectYoung = () => void;

/** V8's `gc` asked for a young-generation collection, or undefined when this V8 does not give one. */
function youngCollector(): CollectYoung | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof gc !== 'function') return undefined;
    return () => void gc({ type: 'minor', execution: 'sync' });
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

let collect: CollectYoung | undefined | null = null;
let sinceLast = 0;

/**
 * Counts `bytes` of an upload body taken (and dropped); collects the young generation every
 * BYTES_PER_COLLECTION per upload running (uploads-running.ts; none counts as one).
 */
export function uploadBytesTaken(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < BYTES_PER_COLLECTION * Math.max(1, uploadsRunning())) return;
  sinceLast = 0;
  if (collect === null) collect = youngCollector();
  collect?.();
}
