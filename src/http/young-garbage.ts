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
 * What those collections promote. A young collection moves what is still alive into the old generation
 * once it has survived two of them, and with one every 4 MiB (10-20 ms at upload speed) that is every
 * object an upload keeps for a few tens of milliseconds: the s3 driver's part requests in flight, a
 * PATCH's request and session, the SDK's parsed answers. They die soon after in the old generation,
 * which only a full collection frees, and V8 starts one only when the old generation has grown some
 * 20-30 MiB past what was live after the last: 1 GiB on Ceph in 64 MiB PATCHes peaked with a heap of
 * 48-54 MiB, 31-43 of them in use, where a heap snapshot (a full collection first) found 18 MiB of
 * objects alive (issue #18, bench/results/s3-2026-12-07-7.md). So every FULL_CHECK_BYTES per upload
 * running, right after the young collection, the heap in use is compared with what was in use after
 * the last full collection (ours or V8's: the lowest seen since), and a full collection is asked for
 * when it grew by FULL_GROWTH_BYTES. It costs a few milliseconds with a heap this size (a pause: the
 * full collection asked for is not incremental), at most once per FULL_CHECK_BYTES of uploads.
 *
 * V8 gives JavaScript a `gc` function only with `--expose-gc`; the flag is turned on just long enough
 * to make a new context, whose `gc` is kept, and turned off again, so the process's own global
 * object never gets one. If that does not give a function, nothing is collected early.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes of upload bodies per upload running between two young-generation collections. */
export const BYTES_PER_COLLECTION = 4 * 1024 * 1024;

/** Bytes of upload bodies per upload running between two looks at the heap in use (a multiple of BYTES_PER_COLLECTION). */
export const FULL_CHECK_BYTES = 64 * 1024 * 1024;

/** Growth of the heap in use since the last full collection that has the next look ask for one. */
export const FULL_GROWTH_BYTES = 16 * 1024 * 1024;

interface Collector {
  readonly young: () => void;
  readonly full: () => void;
}

/**
 * V8's `gc`, or undefined when this V8 does not give one. Called with no argument it collects the whole
 * heap; `{ type: 'major' }` (with or without `execution: 'sync'`) left promoted garbage in place on
 * Node 20 (measured: 30 MiB of dead objects stayed, freed by the plain call in 5 ms).
 */
function collector(): Collector | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof gc !== 'function') return undefined;
    return { young: () => void gc({ type: 'minor', execution: 'sync' }), full: () => void gc() };
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

let collect: Collector | undefined | null = null;
let sinceLast = 0;
let sinceFullCheck = 0;
/** The least heap in use seen at a look since the last full collection this module asked for. */
let usedAfterFull = Number.POSITIVE_INFINITY;
let uploadsRunning = 0;

/**
 * Counts an upload as running until the function returned is called (once; later calls do nothing).
 * While `n` run, a collection comes every `n` × BYTES_PER_COLLECTION bytes taken.
 */
export function uploadStarted(): () => void {
  uploadsRunning++;
  let running = true;
  return () => {
    if (!running) return;
    running = false;
    uploadsRunning--;
  };
}

/**
 * Counts `bytes` of an upload body taken (and dropped); collects the young generation every
 * BYTES_PER_COLLECTION per upload running (uploadStarted; none counts as one).
 */
export function uploadBytesTaken(bytes: number): void {
  sinceLast += bytes;
  const share = Math.max(1, uploadsRunning);
  if (sinceLast < BYTES_PER_COLLECTION * share) return;
  sinceFullCheck += sinceLast;
  sinceLast = 0;
  if (collect === null) collect = collector();
  if (collect === undefined) return;
  collect.young();
  if (sinceFullCheck < FULL_CHECK_BYTES * share) return;
  sinceFullCheck = 0;
  const used = getHeapStatistics().used_heap_size;
  usedAfterFull = Math.min(usedAfterFull, used);
  if (used - usedAfterFull < FULL_GROWTH_BYTES) return;
  collect.full();
  usedAfterFull = getHeapStatistics().used_heap_size;
}
