/**
 * The filesystem driver on a local root makes a stat, and a reader's open, fstat, small reads and close,
 * at once (blocking) while no writer of the process is busy, and through libuv's pool while one is
 * (filesystem.ts, file comment). What shows it: the fs requests in flight right after the call
 * (`process.getActiveResourcesInfo()`), none for a call made at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, expect, it } from 'vitest';
import { isSendable } from './driver.js';
import { createFilesystemDriver } from './filesystem.js';
import { isLocalFilesystem } from './filesystem-shared-stat.js';

const root = mkdtempSync(join(tmpdir(), 'berth-at-once-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const local = isLocalFilesystem(root);
if (!local) console.log(`skipped: ${root} is not on a filesystem known to be local`);

/** fs requests in flight through the pool (callback and promise APIs alike). */
const inPool = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('FSReq')).length;

/** A Writable that keeps what it is given (copied: a sending reader reuses its buffers). */
function sink(): { w: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write: (c: Buffer, _e, cb) => {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  return { w, bytes: () => Buffer.concat(chunks) };
}

it.runIf(local)('answers stat and opens a reader at once on a local root with no writer busy, and sends a small file the same way', async () => {
  const driver = createFilesystemDriver({ root });
  await driver.putContent('/a/small', Buffer.from('small bytes'));
  const before = inPool();
  const stat = driver.stat('/a/small');
  const opening = driver.reader('/a/small', 6);
  expect(inPool()).toBe(before);
  expect((await stat).size).toBe(11);
  const reader = await opening;
  if (!isSendable(reader)) throw new Error('a filesystem reader sends itself');
  const out = sink();
  await reader.sendTo(out.w);
  expect(out.bytes().toString()).toBe('bytes');
  await expect(driver.stat('/a/missing')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  await expect(driver.reader('/a/missing', 0)).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  await expect(driver.reader('/a/small', 12)).rejects.toMatchObject({ code: 'INVALID_OFFSET' });
  await expect(driver.reader('/a', 0)).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
});

it.runIf(local)('goes through the pool while a writer of the process is writing', async () => {
  const driver = createFilesystemDriver({ root });
  await driver.putContent('/b/small', Buffer.from('small'));
  const w = await driver.writer('/b/upload', { append: false });
  const wrote = new Promise<void>((resolve, reject) => w.write(Buffer.alloc(8 << 20), (err) => (err ? reject(err) : resolve())));
  const before = inPool();
  const stat = driver.stat('/b/small');
  expect(inPool()).toBeGreaterThan(before);
  expect((await stat).size).toBe(5);
  await wrote;
  await w.cancel();
});
