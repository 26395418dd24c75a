import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidPathError, PathNotFoundError } from './driver.js';
import type { FileInfo, StorageDriver } from './driver.js';
import { createFilesystemDriver } from './filesystem.js';
import { instrument } from './instrument.js';
import { runDriverSuite } from './suite/suite.js';
import { drain, writeOne } from './suite/helpers.js';

// The writers' records and the deleted directories go beside the root: the suite expects a root left empty.
runDriverSuite('filesystem', async () => {
  const base = await mkdtemp(join(tmpdir(), 'berth-fs-driver-'));
  const driver = createFilesystemDriver({ root: join(base, 'root'), writers: join(base, 'writers'), discarded: join(base, 'discarded') });
  return { driver, cleanup: () => rm(base, { recursive: true, force: true }) };
});

// The offline commands' driver (blocking reads) must answer exactly what the server's does.
runDriverSuite('filesystem (blocking reads)', async () => {
  const base = await mkdtemp(join(tmpdir(), 'berth-fs-blocking-'));
  const driver = createFilesystemDriver({ root: join(base, 'root'), blocking: true, writers: join(base, 'writers'), discarded: join(base, 'discarded') });
  return { driver, cleanup: () => rm(base, { recursive: true, force: true }) };
}, {
  skip: {
    // A loop of reads that waits on writes of the same process: a blocking read never lets the event
    // loop run the writes' callbacks, so the loop never ends. What blocking reads are for: a process
    // that only reads (the offline commands), never one that writes while it reads.
    'getContent during concurrent putContent sees whole versions only': 'blocking reads starve the writes this test waits for',
  },
});

describe('filesystem driver specifics', () => {
  let base: string;
  let root: string;
  let d: StorageDriver;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'berth-fs-specific-'));
    root = join(base, 'root');
    d = instrument(createFilesystemDriver({ root, writers: `${base}.writers`, discarded: `${base}.discarded` }));
  });
  // The writers' records and deleted directories are kept beside `base`: these tests look at everything under it.
  afterEach(() => Promise.all([base, `${base}.writers`, `${base}.discarded`].map((dir) => rm(dir, { recursive: true, force: true }))));

  /** Every entry under `dir`, relative, sorted (hidden files included). */
  async function tree(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { recursive: true });
    return entries.map((e) => e.split(sep).join('/')).sort();
  }

  it('creates the root on the first write; before that the root lists as missing', async () => {
    await expect(d.list('/')).rejects.toBeInstanceOf(PathNotFoundError);
    await d.putContent('/a', Buffer.from('x'));
    expect(await d.list('/')).toEqual(['/a']);
  });

  it('leftovers lists the temporary files a cut-short write leaves, which list and walk hide; delete removes one', async () => {
    const leftovers = (path: string): Promise<FileInfo[]> => {
      if (d.leftovers === undefined) throw new Error('the filesystem driver has leftovers');
      return drain(d.leftovers(path));
    };
    await d.putContent('/a/b/link', Buffer.from('x'));
    expect(await leftovers('/')).toEqual([]);
    // What a kill -9 between the temporary write and the rename leaves.
    await writeFile(join(root, 'a/b/.link.0123456789abcdef.tmp'), 'partial');
    await mkdir(join(root, 'c'), { recursive: true });
    await writeFile(join(root, 'c/.data.fedcba9876543210.tmp'), 'partial!');
    await writeFile(join(root, 'c/.not-ours.tmp'), 'someone else\'s');
    const found = await leftovers('/');
    expect(found.map((f) => [f.path, f.size, f.isDir]).sort()).toEqual([
      ['/a/b/.link.0123456789abcdef.tmp', 7, false],
      ['/c/.data.fedcba9876543210.tmp', 8, false],
    ]);
    expect(found.every((f) => Date.now() - f.modTime.getTime() < 60_000)).toBe(true);
    expect(await d.list('/a/b')).toEqual(['/a/b/link']);
    expect((await drain(d.walk('/'))).map((f) => f.path)).not.toContain('/a/b/.link.0123456789abcdef.tmp');
    await d.delete('/a/b/.link.0123456789abcdef.tmp');
    expect(await leftovers('/a')).toEqual([]);
    await expect(leftovers('/missing')).rejects.toBeInstanceOf(PathNotFoundError);
  });

  it('putContent leaves no temporary files behind, also when it fails', async () => {
    for (let i = 0; i < 5; i += 1) await d.putContent('/a/b', Buffer.from(`v${i}`));
    await Promise.all(Array.from({ length: 10 }, (_, i) => d.putContent('/a/c', Buffer.alloc(4096, i))));
    await d.putContent('/a/dir/x', Buffer.from('x'));
    await expect(d.putContent('/a/dir', Buffer.from('over a directory'))).rejects.toMatchObject({
      code: 'DRIVER_FAILURE',
      driver: 'filesystem',
    });
    expect(await tree(root)).toEqual(['a', 'a/b', 'a/c', 'a/dir', 'a/dir/x']);
  });

  it('list and walk skip temporary files that a crash left behind', async () => {
    await d.putContent('/a/b', Buffer.from('x'));
    await writeFile(join(root, 'a', '.b.0123456789abcdef.tmp'), 'half');
    expect(await d.list('/a')).toEqual(['/a/b']);
    expect((await drain(d.walk('/'))).map((i) => i.path)).toEqual(['/a', '/a/b']);
  });

  it('writer bytes go straight to the file at its path', async () => {
    const w = await d.writer('/up/data', { append: false });
    await writeOne(w, Buffer.from('chunk'));
    expect(await readFile(join(root, 'up', 'data'), 'utf8')).toBe('chunk');
    await w.cancel();
    expect(await tree(root)).toEqual(['up']);
  });

  it('delete does not follow a symlink that points outside the root', async () => {
    const outside = join(base, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'precious'), 'keep');
    await d.putContent('/a/f', Buffer.from('x'));
    await symlink(outside, join(root, 'a', 'link'));
    await d.delete('/a/link');
    expect(await tree(root)).toEqual(['a', 'a/f']);
    await symlink(outside, join(root, 'a', 'link'));
    await d.delete('/a');
    expect(await tree(root)).toEqual([]);
    expect(await readFile(join(outside, 'precious'), 'utf8')).toBe('keep');
  });

  it('refuses a path that escapes the root even without instrument()', async () => {
    const raw = createFilesystemDriver({ root, writers: `${base}.writers`, discarded: `${base}.discarded` });
    await raw.putContent('/inside', Buffer.from('x'));
    for (const bad of ['/../x', '/..', '/a/../../x', '..', 'x']) {
      const results = await Promise.allSettled([
        raw.getContent(bad), raw.putContent(bad, Buffer.from('x')), raw.reader(bad, 0), raw.stat(bad),
        raw.writer(bad, { append: false }), raw.list(bad), raw.move('/inside', bad), raw.move(bad, '/inside'),
        raw.delete(bad), drain(raw.walk(bad)),
      ]);
      const refused = { status: 'rejected', reason: { code: 'INVALID_PATH', driver: 'filesystem', path: bad } };
      results.forEach((r) => expect(r).toMatchObject(refused));
    }
    await expect(raw.delete('/')).rejects.toBeInstanceOf(InvalidPathError);
    expect(await tree(base)).toEqual(['root', 'root/inside']);
  });
});
