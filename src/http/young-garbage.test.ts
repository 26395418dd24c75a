import { setTimeout as sleep } from 'node:timers/promises';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { expect, it } from 'vitest';
import { BYTES_PER_COLLECTION, FULL_CHECK_BYTES, FULL_GROWTH_BYTES, uploadBytesTaken, uploadStarted } from './young-garbage.js';

const MiB = 1024 * 1024;
const arrayBuffers = (): number => process.memoryUsage().arrayBuffers;

/**
 * `arrayBuffers` (buffers outside the heap) once it is under `below`, or after about 100 ms: V8's
 * sweeper frees buffers on its own thread shortly after a collection (within 5 ms here).
 */
async function arrayBuffersUnder(below: number): Promise<number> {
  let now = arrayBuffers();
  for (let i = 0; i < 20 && now >= below; i++) {
    await sleep(5);
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

const heapUsed = (): number => getHeapStatistics().used_heap_size;

/** Takes `bytes` of upload bodies in BYTES_PER_COLLECTION steps (one young collection each). */
function take(bytes: number): void {
  for (let taken = 0; taken < bytes; taken += BYTES_PER_COLLECTION) uploadBytesTaken(BYTES_PER_COLLECTION);
}

/** Full (mark-compact) collections during `op`, as V8 reports them to perf_hooks. */
async function fullCollectionsDuring(op: () => void): Promise<number> {
  let full = 0;
  const seen = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as PerformanceEntry & { readonly detail?: { readonly kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full += 1;
    }
  });
  seen.observe({ entryTypes: ['gc'] });
  op();
  await sleep(20); // the entries arrive after the collection
  seen.disconnect();
  return full;
}

it('frees what young collections promoted and then died with a full collection every FULL_CHECK_BYTES, once the heap grew by FULL_GROWTH_BYTES', async () => {
  take(FULL_CHECK_BYTES); // starts the count at a look (one that found no growth, or collected)
  const base = heapUsed();
  // Objects an upload keeps across two young collections (a part request in flight, a PATCH's
  // session) land in the old generation and die there.
  let kept: { n: number; s: string }[] | undefined = Array.from({ length: 300_000 }, (_, n) => ({ n, s: `part ${n}` }));
  take(2 * BYTES_PER_COLLECTION);
  expect(kept.length).toBe(300_000);
  kept = undefined;
  take(FULL_CHECK_BYTES - 3 * BYTES_PER_COLLECTION);
  const promoted = heapUsed() - base;
  expect(promoted).toBeGreaterThan(FULL_GROWTH_BYTES); // young collections alone leave them
  expect(await fullCollectionsDuring(() => take(BYTES_PER_COLLECTION))).toBe(1); // FULL_CHECK_BYTES since the last look
  expect(heapUsed() - base).toBeLessThan(promoted / 4);
});

it('asks for no full collection at a look when the heap did not grow by FULL_GROWTH_BYTES', async () => {
  take(FULL_CHECK_BYTES);
  expect(await fullCollectionsDuring(() => take(FULL_CHECK_BYTES))).toBe(0);
});
