/**
 * Stats of one path shared by the callers that want it at about the same time (the filesystem driver
 * checks a kept link against its inode on every read, and fifty requests for one tag would otherwise
 * make fifty stats of the same two files).
 *
 * The rule that keeps this as fresh as a stat of one's own: a caller shares only a stat that STARTED
 * after it asked. So there is at most one stat of a path in flight; a caller that asks while one is in
 * flight does not take its answer (the file may have changed between that stat's start and the call)
 * but waits for the next one, which starts as soon as the one in flight ends and serves every caller
 * that asked in between. Whatever another process had finished writing when a caller asked is seen.
 *
 * On a local filesystem none of that is needed: the stat is made at once, blocking (`statSync`). The
 * path was read before (that is why it is checked), so the kernel answers from its inode cache in 2-3 µs
 * of CPU, where a stat through libuv's thread pool costs 10-40 µs (a job queued, a pool thread woken, the
 * answer posted back to the loop and a promise settled) and, under load, a few turns of the loop of
 * waiting. A network or user-space filesystem (NFS, SMB, FUSE, Ceph…) may wait on a server for a stat,
 * which must not stop the loop: there, and on any filesystem not known to be local, the stats go
 * through the pool, shared as above. So do they while a writer of this process is writing or
 * flushing (an upload): measured under four 1 GiB uploads, blocking stats made the manifest p99 worse
 * (380-670 ms against registry:2's 270-750 in the same runs, where the shared stats had kept it at
 * 86-237 ms against 316-1,090 on an as busy machine: bench/results/p99g19-notes-2026-12-07.md); why
 * was not found (the event loop's lag stayed under 80 ms; the blocking stats themselves took at most
 * 4.8 ms, bench/results/mixedw19-notes-2026-12-08.md).
 *
 * A process serving as one of several `http.workers` keeps its stats blocking while it writes
 * (`whileWriting`): there the two cores are full (each worker's main thread waits for a CPU a third
 * of the time under the same load), and a stat through the pool costs two hand-overs between threads
 * that each wait for a CPU. Measured under four 1 GiB uploads with 2 workers: manifest p99 47 / 40 ms
 * and 5,366 GETs/s against 117 / 66 ms and 2,254 with the pool (mixedw19-notes-2026-12-08.md).
 */
import { stat as statPath, statSync, statfsSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { dirname } from 'node:path';
import { fdCall } from './filesystem-io.js';
import { writersBusy } from './filesystem-writer.js';

/**
 * statfs(2) `f_type` of the local filesystems a stat is answered from memory on (linux/magic.h): ext2-4,
 * XFS, Btrfs, tmpfs, overlayfs (containers), ZFS, F2FS, bcachefs.
 */
const LOCAL_FILESYSTEMS: ReadonlySet<number> = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0x2fc12fc1, 0xf2f52010, 0xca451a4e]);

/** Whether `dir` (or, while it does not exist yet, its nearest existing parent) is on a local filesystem. */
export function isLocalFilesystem(dir: string): boolean {
  for (let at = dir; ; at = dirname(at)) {
    try {
      return LOCAL_FILESYSTEMS.has(statfsSync(at).type);
    } catch {
      if (dirname(at) === at) return false;
    }
  }
}

/** The stat of one path in flight, and the callers waiting for the one after it. */
interface Lane {
  running: Promise<BigIntStats>;
  /** Resolved with the next stat once `running` ends; undefined while nobody is waiting. */
  next?: { readonly promise: Promise<BigIntStats>; readonly start: () => void };
}

/** Shares `stat(path, { bigint: true })` between concurrent callers of one path (see the file comment). */
export class SharedStats {
  private readonly lanes = new Map<string, Lane>();

  /**
   * `blocking`: stat at once with statSync (a local filesystem, see the file comment) while no writer is
   * busy, or, with `whileWriting`, also while one is (one of several `http.workers`).
   */
  constructor(private readonly blocking: boolean, private readonly whileWriting = false) {}

  /**
   * The path's state, from a stat that started after this call: made at once when blocking (and then
   * throws as `fs.statSync` does), else shared. Rejects as `fs.stat` does.
   */
  stat(full: string): BigIntStats | Promise<BigIntStats> {
    if (this.blocking && (this.whileWriting || !writersBusy())) return statSync(full, { bigint: true });
    const lane = this.lanes.get(full);
    if (lane === undefined) return this.begin(full);
    lane.next ??= this.queued(full);
    return lane.next.promise;
  }

  /** Starts a stat of `full` now; when it ends, starts the next one if callers are waiting for it. */
  private begin(full: string): Promise<BigIntStats> {
    const running = fdCall<BigIntStats>((cb) => statPath(full, { bigint: true }, cb));
    const lane: Lane = { running };
    this.lanes.set(full, lane);
    const ended = (): void => {
      const { next } = lane;
      this.lanes.delete(full);
      next?.start();
    };
    running.then(ended, ended);
    return running;
  }

  /** A stat to start once the one in flight ends, for the callers that ask in the meantime. */
  private queued(full: string): NonNullable<Lane['next']> {
    let start = (): void => undefined;
    const promise = new Promise<BigIntStats>((resolve, reject) => {
      start = () => this.begin(full).then(resolve, reject);
    });
    return { promise, start };
  }
}
