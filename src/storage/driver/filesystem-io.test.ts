/**
 * fsyncs are throttled to half of libuv's threadpool (filesystem-io.ts `throttledSync`), so that a burst
 * of them (a cold mirror pull caching a manifest and four blobs) never takes every thread the process's
 * other fs calls need. Each sync here is a promise the test settles, so "how many run at once" is seen
 * exactly, without timing.
 */
import { describe, expect, it } from 'vitest';
import { throttledSync } from './filesystem-io.js';

/** A sync that runs until `finish()`; `started` settles once it runs. */
function heldSync(): { run: () => Promise<void>; started: Promise<void>; finish: (err?: Error) => void; running: () => boolean } {
  let markStarted = (): void => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  let settle: (err?: Error) => void = () => undefined;
  let running = false;
  const run = (): Promise<void> => {
    running = true;
    markStarted();
    return new Promise<void>((resolve, reject) => {
      settle = (err) => {
        running = false;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
  };
  return { run, started, finish: (err) => settle(err), running: () => running };
}

/** Lets every queued promise callback run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('throttledSync', () => {
  it('runs at most half the threadpool (2 of the default 4) at once, the others in order as slots free', async () => {
    const slots = Math.max(1, Math.floor((Number(process.env['UV_THREADPOOL_SIZE']) || 4) / 2));
    const syncs = Array.from({ length: slots + 3 }, () => heldSync());
    const done = syncs.map((s) => throttledSync(s.run));
    await settle();
    expect(syncs.map((s) => s.running())).toEqual(syncs.map((_, i) => i < slots));
    // A failed sync frees its slot as a finished one does, for the next in line.
    syncs[0]?.finish(new Error('EIO'));
    await expect(done[0]).rejects.toThrow('EIO');
    await syncs[slots]?.started;
    expect(syncs.map((s) => s.running())).toEqual(syncs.map((_, i) => i >= 1 && i <= slots));
    for (let i = 1; i < syncs.length; i++) {
      syncs[i]?.finish();
      await done[i];
      const next = syncs[i + slots];
      if (next !== undefined) await next.started;
      await settle();
      expect(syncs.filter((s) => s.running()).length).toBe(Math.min(slots, syncs.length - 1 - i));
    }
    // All slots are free again: the next sync runs at once.
    const after = heldSync();
    const last = throttledSync(after.run);
    await after.started;
    after.finish();
    await last;
  });
});
