import { describe, expect, it } from 'vitest';
import { createKeyQueue } from './key-queue.js';

/** A promise and the function that resolves it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('key queue', () => {
  it('runs the tasks of one key one at a time, in order', async () => {
    const q = createKeyQueue();
    const log: string[] = [];
    const first = gate();
    const a = q.run('k', async () => {
      log.push('a start');
      await first.promise;
      log.push('a end');
    });
    await Promise.resolve();
    const b = q.run('k', async () => void log.push('b'));
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual(['a start']);
    first.open();
    await Promise.all([a, b]);
    expect(log).toEqual(['a start', 'a end', 'b']);
  });

  it('a task asked for while one of its key is still waiting joins the waiting one', async () => {
    const q = createKeyQueue();
    const first = gate();
    let runs = 0;
    const a = q.run('k', () => first.promise.then(() => void (runs += 1)));
    await Promise.resolve();
    const b = q.run('k', async () => void (runs += 1));
    const c = q.run('k', async () => void (runs += 1));
    expect(c).toBe(b);
    first.open();
    await Promise.all([a, b, c]);
    expect(runs).toBe(2);
  });

  it('keys do not wait for each other, and idle() waits for all of them', async () => {
    const q = createKeyQueue();
    const slow = gate();
    let fastDone = false;
    let slowDone = false;
    void q.run('slow', () => slow.promise.then(() => void (slowDone = true)));
    await q.run('fast', async () => void (fastDone = true));
    expect([fastDone, slowDone]).toEqual([true, false]);
    const idle = q.idle();
    slow.open();
    await idle;
    expect(slowDone).toBe(true);
    expect(q.size).toBe(0);
  });

  it('a rejected task does not block the next one', async () => {
    const q = createKeyQueue();
    await expect(q.run('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    let ran = false;
    await q.run('k', async () => void (ran = true));
    expect(ran).toBe(true);
  });
});
