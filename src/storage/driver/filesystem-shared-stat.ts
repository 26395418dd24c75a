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
 */
import { stat as statPath } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { fdCall } from './filesystem-io.js';

/** The stat of one path in flight, and the callers waiting for the one after it. */
interface Lane {
  running: Promise<BigIntStats>;
  /** Resolved with the next stat once `running` ends; undefined while nobody is waiting. */
  next?: { readonly promise: Promise<BigIntStats>; readonly start: () => void };
}

/** Shares `stat(path, { bigint: true })` between concurrent callers of one path (see the file comment). */
export class SharedStats {
  private readonly lanes = new Map<string, Lane>();

  /** The path's state, from a stat that started after this call. Rejects as `fs.stat` does. */
  stat(full: string): Promise<BigIntStats> {
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
