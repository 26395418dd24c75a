/**
 * What the filesystem driver's writers hold in memory (issue #19): one writer alone takes up to 1 MiB
 * before its stream must wait, but while many write, each takes only its share of what all of them
 * may hold together, so a burst of uploads does not keep a megabyte of request chunks alive per
 * upload. Real files in a temporary directory; the chunks are all offered within one turn of the
 * event loop, before any write can end, so what a writer takes is decided by the count alone.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { FileWriter, StorageDriver } from './driver.js';
import { createFilesystemDriver } from './filesystem.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

/** Chunk `i` of writer `w`: bytes that tell writers and chunks apart. */
function chunkOf(w: number, i: number): Buffer {
  return Buffer.alloc(CHUNK, (w * 31 + i * 7) & 0xff);
}

/** Writes chunks into `w` until write() asks to wait (at most 64); the bytes it took. */
function fillUntilFull(w: FileWriter, n: number): { taken: number; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  for (let i = 0; i < 64; i++) {
    const c = chunkOf(n, i);
    chunks.push(c);
    if (!w.write(c)) break;
  }
  return { taken: chunks.length * CHUNK, chunks };
}

let root: string;
let d: StorageDriver;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-fs-writer-'));
  d = createFilesystemDriver({ root });
});
afterEach(() => rm(root, { recursive: true, force: true }));

async function endAll(writers: FileWriter[]): Promise<void> {
  await Promise.all(writers.map((w) => new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())))));
}

it('a writer alone takes 1 MiB before it asks to wait; among 99 others holding bytes, a third of that', async () => {
  const alone = await d.writer('/alone/data', { append: false });
  const { taken: takenAlone, chunks: aloneChunks } = fillUntilFull(alone, 0);
  expect(takenAlone).toBeGreaterThanOrEqual(MiB);
  await endAll([alone]);
  expect(createHash('sha256').update(await readFile(join(root, 'alone/data'))).digest('hex')).toBe(createHash('sha256').update(Buffer.concat(aloneChunks)).digest('hex'));

  const others: FileWriter[] = [];
  for (let n = 1; n <= 99; n++) others.push(await d.writer(`/many/${n}/data`, { append: false }));
  const last = await d.writer('/many/100/data', { append: false });
  // One chunk each: 99 writers hold bytes (none of their writes can end within this turn).
  const firstChunks = others.map((w, n) => {
    const c = chunkOf(n + 1, 0);
    w.write(c);
    return c;
  });
  const { taken, chunks } = fillUntilFull(last, 100);
  // Its share of 32 MiB among 100 (328 KiB) and the stream's own queue (128 KiB), in whole chunks;
  // without the shared limit it took 1 MiB and more here, as alone.
  expect(taken).toBeLessThanOrEqual(512 * KiB);
  expect(taken).toBeGreaterThanOrEqual(2 * CHUNK);
  await endAll([...others, last]);
  // Every byte taken is written all the same.
  expect(Buffer.compare(await readFile(join(root, 'many/100/data')), Buffer.concat(chunks))).toBe(0);
  expect(Buffer.compare(await readFile(join(root, 'many/7/data')), firstChunks[6] ?? Buffer.alloc(0))).toBe(0);
});
