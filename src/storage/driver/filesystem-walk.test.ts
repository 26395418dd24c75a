/**
 * The look-ahead walk yields exactly what a serial pre-order walk would, in the same order, for a
 * directory wider than its window; and it stops when told to. The blocking twins (offline commands)
 * answer exactly what the asynchronous ones do, and `tree` lists each directory once, by kind.
 */
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectoryEntries, FileInfo } from './driver.js';
import { tempFilesSync, treeSync, walkTreeSync } from './filesystem-blocking.js';
import { tempFiles, treeOf, walkTree } from './filesystem-walk.js';

async function drain<T>(items: AsyncIterable<T> | Iterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

const brief = (f: FileInfo): string => `${f.path} ${f.isDir ? 'dir' : f.size}`;
const sortedListing = (d: DirectoryEntries): string =>
  `${d.path} dirs=${[...d.dirs].sort().join(',')} files=${[...d.files].sort().join(',')} temps=${d.temps.map((t) => t.path).sort().join(',')}`;

let root: string;

/** The serial reference: readdir order, each entry then what is under it (real directories only). */
function serial(path: string, full: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(full)) {
    if (/^\..*\.tmp$/.test(name)) continue;
    const childFull = join(full, name);
    const link = lstatSync(childFull);
    const st = link.isSymbolicLink() ? statSync(childFull) : link;
    out.push(`${path}/${name} ${st.isDirectory() ? 'dir' : st.size}`);
    if (link.isDirectory()) out.push(...serial(`${path}/${name}`, childFull));
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-walk-'));
  for (let i = 0; i < 40; i++) {
    const dir = join(root, 'a', `d${i}`);
    await mkdir(join(dir, 'inner'), { recursive: true });
    await writeFile(join(dir, 'link'), 'x'.repeat(i));
    await writeFile(join(dir, 'inner', 'data'), 'y'.repeat(i + 1));
    if (i % 7 === 0) await writeFile(join(dir, `.link.${'0'.repeat(16)}.tmp`), 'partial');
  }
  await symlink(join(root, 'a', 'd1'), join(root, 'a', 'to-d1'));
  await writeFile(join(root, 'a', 'top'), 'z');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('filesystem walk with look-ahead', () => {
  it('yields the serial pre-order, symlinks followed for their state but not descended', async () => {
    const seen: string[] = [];
    for await (const f of walkTree('/a', join(root, 'a'))) seen.push(`${f.path} ${f.isDir ? 'dir' : f.size}`);
    expect(seen).toEqual(serial('/a', join(root, 'a')));
    expect(seen.length).toBe(40 * 4 + 2);
  });

  it('finds every temporary file, in walk order', async () => {
    const found: string[] = [];
    for await (const f of tempFiles('/a', join(root, 'a'), true)) found.push(f.path);
    const expected = serial('/a', join(root, 'a'))
      .map((l) => l.split(' ')[0] ?? '')
      .filter((p) => /\/d\d+$/.test(p) && Number(p.slice(p.lastIndexOf('d') + 1)) % 7 === 0)
      .map((p) => `${p}/.link.${'0'.repeat(16)}.tmp`);
    expect(found).toEqual(expected);
  });

  it('stops at an aborted signal, and a missing top is an error', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    await expect(async () => {
      for await (const f of walkTree('/a', join(root, 'a'), { signal: ac.signal })) {
        seen.push(f.path);
        if (seen.length === 5) ac.abort(new Error('stop'));
      }
    }).rejects.toThrow('stop');
    expect(seen).toHaveLength(5);
    await expect(async () => {
      for await (const f of walkTree('/none', join(root, 'none'))) seen.push(f.path);
    }).rejects.toThrow();
  });
});

describe('blocking walks and tree', () => {
  it('walkTreeSync and tempFilesSync answer what their asynchronous twins do', async () => {
    expect((await drain(walkTreeSync('/a', join(root, 'a')))).map(brief)).toEqual((await drain(walkTree('/a', join(root, 'a')))).map(brief));
    expect((await drain(tempFilesSync('/a', join(root, 'a'), true))).map(brief)).toEqual((await drain(tempFiles('/a', join(root, 'a'), true))).map(brief));
  });

  it('tree lists every real directory once, files and temporary files apart, symlinks to directories not followed', async () => {
    const listings = await drain(treeOf('/a', join(root, 'a')));
    expect(listings.map(sortedListing)).toEqual((await drain(treeSync('/a', join(root, 'a')))).map(sortedListing));
    expect(listings).toHaveLength(1 + 40 * 2); // /a, each d<i> and its inner
    const top = listings.find((d) => d.path === '/a');
    expect(top?.files).toEqual(['top']);
    expect(top?.dirs).toHaveLength(40); // to-d1 is a symlink to a directory: neither listed nor followed
    const d7 = listings.find((d) => d.path === '/a/d7');
    expect(d7?.files).toEqual(['link']);
    expect(d7?.dirs).toEqual(['inner']);
    expect(d7?.temps.map((t) => t.path)).toEqual([`/a/d7/.link.${'0'.repeat(16)}.tmp`]);
    expect(listings.find((d) => d.path === '/a/d8')?.temps).toEqual([]);
  });

  it('leftovers skip the folders a caller has already looked through, asynchronously or not', async () => {
    const skip = new Set(['/a/d0', '/a/d14']);
    const expected = [7, 21, 28, 35].map((i) => `/a/d${i}/.link.${'0'.repeat(16)}.tmp`).sort();
    expect((await drain(tempFiles('/a', join(root, 'a'), true, { skip }))).map((f) => f.path).sort()).toEqual(expected);
    expect((await drain(tempFilesSync('/a', join(root, 'a'), true, { skip }))).map((f) => f.path).sort()).toEqual(expected);
  });

  it('a missing top is an error for tree too', async () => {
    await expect(drain(treeSync('/none', join(root, 'none')))).rejects.toThrow(/path not found/);
    await expect(drain(treeOf('/none', join(root, 'none')))).rejects.toThrow(/path not found/);
  });
});
