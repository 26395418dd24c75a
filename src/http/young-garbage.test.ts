import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { uploadStarted } from './uploads-running.js';
import { BYTES_PER_COLLECTION, uploadBytesTaken } from './young-garbage.js';

const MiB = 1024 * 1024;
const arrayBuffers = (): number => process.memoryUsage().arrayBuffers;

/**
 * `arrayBuffers` (buffers outside the heap) once it is under `below`, or after about a second: V8's
 * sweeper frees buffers on its own thread shortly after a collection (within 5 ms on an idle machine;
 * with both cores busy that thread once was not run within 100 ms, and the test failed). Left to itself
 * V8 frees nothing in that second (no allocation, so no young collection), so the wait cannot pass a
 * collection that was not asked for.
 */
async function arrayBuffersUnder(below: number): Promise<number> {
  let now = arrayBuffers();
  for (let i = 0; i < 100 && now >= below; i++) {
    await sleep(10);
    now = arrayBuffers();
  }
  return now;
}

/**
 * Drops 8 MiB of 64 KiB chunks at once, as an upload drops the request's chunks (left to itself V8 frees
 * them only at its next young-generation collection: none came in 150 ms here), then checks that they
 * stay while uploads take `bytes` - 1 bytes and are freed once they have taken `bytes`.
 */
async function freedAfterTaking(bytes: number, base: number): Promise<void> {
  for (let i = 0; i < 128; i++) Buffer.alloc(64 * 1024).fill(i);
  await sleep(0);
  const held = arrayBuffers();
  expect(held - base).toBeGreaterThanOrEqual(7 * MiB);
  uploadBytesTaken(bytes - 1);
  await sleep(20);
  expect(arrayBuffers()).toBeGreaterThanOrEqual(held - MiB);
  uploadBytesTaken(1);
  expect(await arrayBuffersUnder(base + MiB)).toBeLessThan(base + MiB);
}

it('frees dropped upload chunks once uploads have taken BYTES_PER_COLLECTION bytes, and not before', async () => {
  uploadBytesTaken(BYTES_PER_COLLECTION); // the first collection also makes the collector (a new context)
  await sleep(0);
  await freedAfterTaking(BYTES_PER_COLLECTION, arrayBuffers());
});

it('waits for BYTES_PER_COLLECTION per upload running while several run, and for BYTES_PER_COLLECTION again once one is left', async () => {
  uploadBytesTaken(BYTES_PER_COLLECTION); // at most one upload counted: this collects and starts the count afresh
  await sleep(20); // lets V8 finish freeing what the last collection found (right after another, it may not have yet)
  const first = uploadStarted();
  const second = uploadStarted();
  const base = arrayBuffers();
  await freedAfterTaking(2 * BYTES_PER_COLLECTION, base); // not at one upload's share: at two uploads'

  second();
  second(); // a second call does not count the upload out twice
  await freedAfterTaking(BYTES_PER_COLLECTION, base); // one upload running: its share is enough again
  first();
});
