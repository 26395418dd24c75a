/**
 * The filesystem driver's delete of a directory (filesystem-discard.ts): out of the tree at once,
 * removed in the background, what a stopped process left removed by the next one.
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Discarder } from './filesystem-discard.js';
import { createFilesystemDriver } from './filesystem.js';

/** A directory of `n` folders holding one small file each. */
async function fill(dir: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await mkdir(join(dir, `d${i}`), { recursive: true });
    await writeFile(join(dir, `d${i}`, 'link'), `sha256:${i}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

describe('deleting a directory through the filesystem driver', () => {
  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'berth-fs-discard-'));
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  it('takes the directory out of the tree whole, into berth/discarded, and removes it in the background', async () => {
    const root = join(base, 'root');
    await fill(join(root, 'repositories/r/_manifests/tags'), 200);
    const discarder = new Discarder(join(root, 'berth/discarded'));
    await discarder.discard(join(root, 'repositories/r/_manifests'));
    expect(await exists(join(root, 'repositories/r/_manifests')), 'gone from the tree when discard resolves').toBe(false);
    expect(await readdir(join(root, 'repositories/r'))).toEqual([]);
    await discarder.idle();
    expect(await readdir(join(root, 'berth/discarded')), 'its entries removed once idle').toEqual([]);
  });

  it('the driver deletes a directory that way when told it may free the space later, and otherwise in place', async () => {
    const root = join(base, 'root');
    const driver = createFilesystemDriver({ root });
    await fill(join(root, 'repositories/r/_layers/sha256'), 3);
    await fill(join(root, 'repositories/r/_uploads'), 3);
    await writeFile(join(root, 'repositories/r/file'), 'x');
    await driver.delete('/repositories/r/file', { freeLater: true });
    expect(await exists(join(root, 'berth/discarded')), 'a file is not renamed anywhere').toBe(false);
    await driver.delete('/repositories/r/_uploads');
    expect(await exists(join(root, 'berth/discarded')), 'a plain delete (an upload cancelled: its space back at once) removes in place').toBe(false);
    await driver.delete('/repositories/r/_layers', { freeLater: true });
    expect(await readdir(join(root, 'repositories/r'))).toEqual([]);
    expect(await exists(join(root, 'berth/discarded')), 'a directory goes through berth/discarded').toBe(true);
    await expect(driver.delete('/repositories/r/_layers', { freeLater: true })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  });

  it('an offline command (blocking reads) removes in place', async () => {
    const root = join(base, 'root');
    const driver = createFilesystemDriver({ root, blocking: true });
    await fill(join(root, 'repositories/r/_layers/sha256'), 3);
    await driver.delete('/repositories/r/_layers', { freeLater: true });
    expect(await readdir(join(root, 'repositories/r'))).toEqual([]);
    expect(await exists(join(root, 'berth/discarded'))).toBe(false);
  });

  it('removes what a stopped process left in berth/discarded when the next server driver starts', async () => {
    const root = join(base, 'root');
    await fill(join(root, 'berth/discarded/1-left-behind'), 20);
    const discarder = new Discarder(join(root, 'berth/discarded'));
    discarder.sweepLeftBehind();
    await discarder.idle();
    expect(await readdir(join(root, 'berth/discarded'))).toEqual([]);
  });

  it('removes the directory in place when it cannot rename it out of the tree', async () => {
    const root = join(base, 'root');
    await fill(join(root, 'repositories/r/_manifests'), 5);
    await mkdir(join(root, 'berth'), { recursive: true });
    await writeFile(join(root, 'berth/discarded'), 'a file where the folder should be');
    const discarder = new Discarder(join(root, 'berth/discarded'));
    await discarder.discard(join(root, 'repositories/r/_manifests'));
    expect(await readdir(join(root, 'repositories/r'))).toEqual([]);
    await discarder.idle();
  });

  it('answers a missing directory as missing, whatever the state of berth/discarded', async () => {
    const discarder = new Discarder(join(base, 'discarded'));
    await expect(discarder.discard(join(base, 'nothing-here'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
