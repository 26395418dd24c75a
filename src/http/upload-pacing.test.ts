import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { LAG_LIMIT_MS, TICK_MS, whenUploadMayGo } from './upload-pacing.js';
import { uploadStarted } from './uploads-running.js';

/** Keeps the loop busy for `ms`, as a burst of work would. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spinning
  }
}

/** Resolves once the pacing timer has run after the loop was busy (its interval is due before this timeout). */
const afterTick = (): Promise<void> => sleep(0);

it('lets chunks go at once while the loop keeps time, and with no upload running', async () => {
  let went = 0;
  whenUploadMayGo(() => went++);
  expect(went).toBe(1);
  const done = uploadStarted();
  await sleep(4 * TICK_MS);
  whenUploadMayGo(() => went++);
  expect(went).toBe(2);
  done();
});

it('holds chunks after a late tick until the next one, and never two ticks in a row', async () => {
  const done = uploadStarted();
  try {
    await sleep(2 * TICK_MS);
    busy(TICK_MS + LAG_LIMIT_MS + 20);
    await afterTick(); // the late tick: chunks from now on are held
    const went: string[] = [];
    whenUploadMayGo(() => went.push('held'));
    expect(went).toEqual([]);
    busy(TICK_MS + LAG_LIMIT_MS + 20); // late again: this tick releases, it does not hold again
    await afterTick();
    expect(went).toEqual(['held']);
    whenUploadMayGo(() => went.push('next'));
    expect(went).toEqual(['held', 'next']);
  } finally {
    done();
  }
});

it('lets held chunks go at once when the last upload ends', async () => {
  const first = uploadStarted();
  const second = uploadStarted();
  await sleep(2 * TICK_MS);
  busy(TICK_MS + LAG_LIMIT_MS + 20);
  await afterTick();
  let went = 0;
  whenUploadMayGo(() => went++);
  expect(went).toBe(0);
  first();
  first(); // a second call does nothing: the other upload still counts
  expect(went).toBe(0);
  second();
  expect(went).toBe(1);
});
