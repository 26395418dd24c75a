import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilesystemDriver } from './filesystem.js';
import { SharedStats, isLocalFilesystem } from './filesystem-shared-stat.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-shared-stat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Replaces `full` as another process would: a new file renamed over it (a new inode). */
function replace(full: string, content: string): void {
  writeFileSync(`${full}.new`, content);
  renameSync(`${full}.new`, full);
}

describe.each([
  ['blocking (a local filesystem)', true],
  ['shared through the thread pool', false],
])('SharedStats, %s', (_name, blocking) => {
  it('answers a stat that started after the call: a change made while an earlier stat was in flight is seen', async () => {
    const full = join(dir, `link-${String(blocking)}`);
    writeFileSync(full, 'a');
    const stats = new SharedStats(blocking);
    const first = stats.stat(full);
    // Hold the thread while the first stat reaches the disk (its callback cannot run meanwhile), then
    // change the file and ask again in the same tick.
    const until = performance.now() + 20;
    while (performance.now() < until);
    replace(full, 'bb');
    const second = await stats.stat(full);
    expect(second.ino).toBe(statSync(full, { bigint: true }).ino);
    expect(second.size).toBe(2n);
    expect((await first).size).toBeGreaterThanOrEqual(1n);
  });

  it('fails as fs.stat does for a missing path', async () => {
    const stats = new SharedStats(blocking);
    await expect(Promise.resolve().then(() => stats.stat(join(dir, 'missing')))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

it('on a local filesystem stats at once, but through the pool while a writer of the process is writing', async () => {
  const full = join(dir, 'busy');
  writeFileSync(full, 'a');
  const stats = new SharedStats(true);
  expect(stats.stat(full)).not.toBeInstanceOf(Promise);

  const driver = createFilesystemDriver({ root: join(dir, 'root') });
  const writer = await driver.writer('/upload/data', { append: false });
  try {
    const written = new Promise<unknown>((resolve) => writer.write(Buffer.alloc(64 * 1024), resolve));
    const during = stats.stat(full); // the write is in libuv's pool now
    expect(during).toBeInstanceOf(Promise);
    expect((await during).size).toBe(1n);
    await written;
    expect(stats.stat(full)).not.toBeInstanceOf(Promise);
  } finally {
    await writer.cancel();
  }
});

it('with whileWriting (one of several http.workers) stats at once even while a writer of the process is writing', async () => {
  const full = join(dir, 'busy-worker');
  writeFileSync(full, 'a');
  const stats = new SharedStats(true, true);
  const driver = createFilesystemDriver({ root: join(dir, 'root-worker') });
  const writer = await driver.writer('/upload/data', { append: false });
  try {
    const written = new Promise<unknown>((resolve) => writer.write(Buffer.alloc(64 * 1024), resolve));
    const during = stats.stat(full); // the write is in libuv's pool now
    expect(during).not.toBeInstanceOf(Promise);
    expect((await during).size).toBe(1n);
    replace(full, 'bb');
    expect((await stats.stat(full)).size).toBe(2n); // still a stat of its own: the change is seen
    await written;
  } finally {
    await writer.cancel();
  }
});

it('takes the temporary directory for local and /proc for not (a stat there is not known to be answered from memory)', () => {
  expect(isLocalFilesystem(dir)).toBe(true);
  expect(isLocalFilesystem(join(dir, 'not', 'made', 'yet'))).toBe(true);
  expect(isLocalFilesystem('/proc')).toBe(false);
});
