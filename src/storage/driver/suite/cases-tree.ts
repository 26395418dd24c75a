/**
 * Driver suite: the tree operations stat, list, move, delete and walk (distribution's testsuites
 * TestStatCall, TestList, TestMove*, TestDelete*, TestWalk).
 */
import { expect } from 'vitest';
import type { FileInfo } from '../driver.js';
import { bytes, drain, expectDriverError, sorted } from './helpers.js';
import type { DriverCase } from './helpers.js';

/** Allowance for coarse or skewed modification times. */
const CLOCK_SLACK_MS = 5_000;

const statAndListCases: DriverCase[] = [
  {
    title: 'stat of a file reports its size, a recent modTime and isDir false',
    body: async ({ d, p }) => {
      const before = Date.now();
      await d.putContent(`${p}/f`, bytes('12345'));
      const info = await d.stat(`${p}/f`);
      expect(info).toMatchObject({ path: `${p}/f`, size: 5, isDir: false });
      expect(info.modTime).toBeInstanceOf(Date);
      expect(info.modTime.getTime()).toBeGreaterThanOrEqual(before - CLOCK_SLACK_MS);
      expect(info.modTime.getTime()).toBeLessThanOrEqual(Date.now() + CLOCK_SLACK_MS);
    },
  },
  {
    title: 'stat of a directory reports isDir true and size 0',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/dir/sub/f`, bytes('12345'));
      expect(await d.stat(`${p}/dir`)).toMatchObject({ path: `${p}/dir`, size: 0, isDir: true });
      expect(await d.stat(p)).toMatchObject({ path: p, size: 0, isDir: true });
    },
  },
  {
    title: 'exists, where the driver has it, answers as stat does: a file or a directory yes, a missing path or one under a file no',
    body: async ({ d, p }) => {
      if (d.exists === undefined) return;
      await d.putContent(`${p}/dir/f`, bytes('12345'));
      expect(await d.exists(`${p}/dir/f`)).toBe(true);
      expect(await d.exists(`${p}/dir`)).toBe(true);
      expect(await d.exists(`${p}/dir/missing`)).toBe(false);
      expect(await d.exists(`${p}/nowhere/f`)).toBe(false);
      expect(await d.exists(`${p}/dir/f/x`)).toBe(false);
      await expectDriverError(d.exists(`${p}/../x`), 'INVALID_PATH', d.name);
    },
  },
  {
    title: 'list returns the direct children only, files and directories, as full paths',
    body: async ({ d, p }) => {
      for (const f of ['a', 'b/c', 'b/d/e', 'b/d/f', 'bc', 'b-x/y']) await d.putContent(`${p}/${f}`, bytes(f));
      expect(sorted(await d.list(p))).toEqual([`${p}/a`, `${p}/b`, `${p}/b-x`, `${p}/bc`]);
      expect(sorted(await d.list(`${p}/b`))).toEqual([`${p}/b/c`, `${p}/b/d`]);
      expect(sorted(await d.list(`${p}/b/d`))).toEqual([`${p}/b/d/e`, `${p}/b/d/f`]);
    },
  },
  {
    title: 'list of the root / includes top-level directories',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/x/y`, bytes('1'));
      expect(await d.list('/')).toContain(p);
    },
  },
];

const moveCases: DriverCase[] = [
  {
    title: 'move renames a file and creates the parents of the destination',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/from/f`, bytes('payload'));
      await d.move(`${p}/from/f`, `${p}/to/a/b/f`);
      expect((await d.getContent(`${p}/to/a/b/f`)).toString()).toBe('payload');
      await expectDriverError(d.stat(`${p}/from/f`), 'PATH_NOT_FOUND', d.name);
    },
  },
  {
    title: 'move overwrites an existing file at the destination',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/new`, bytes('new'));
      await d.putContent(`${p}/dest`, bytes('old, and longer than new'));
      await d.move(`${p}/new`, `${p}/dest`);
      expect((await d.getContent(`${p}/dest`)).toString()).toBe('new');
      expect(await d.list(p)).toEqual([`${p}/dest`]);
    },
  },
  {
    title: 'move of a file written by a writer (upload data to blob path)',
    body: async ({ d, p }) => {
      const w = await d.writer(`${p}/_uploads/u1/data`, { append: false });
      w.end(bytes('blob bytes'));
      await w.commit();
      await d.move(`${p}/_uploads/u1/data`, `${p}/blobs/sha256/ab/abcd/data`);
      expect((await d.getContent(`${p}/blobs/sha256/ab/abcd/data`)).toString()).toBe('blob bytes');
      await expectDriverError(d.stat(`${p}/_uploads/u1/data`), 'PATH_NOT_FOUND', d.name);
    },
  },
];

const deleteCases: DriverCase[] = [
  {
    title: 'delete of a file removes it and leaves its siblings',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/a`, bytes('a'));
      await d.putContent(`${p}/ab`, bytes('ab'));
      await d.delete(`${p}/a`);
      await expectDriverError(d.getContent(`${p}/a`), 'PATH_NOT_FOUND', d.name);
      expect(await d.list(p)).toEqual([`${p}/ab`]);
    },
  },
  {
    title: 'delete of a directory removes everything under it and only that',
    body: async ({ d, p }) => {
      const doomed = ['a/b/x', 'a/b/y/z', 'a/b/.dot'];
      const kept = ['a/bc', 'a/b-c/x', 'a/b2/x', 'a/ab', 'ab/b/x', 'a.b'];
      for (const f of [...doomed, ...kept]) await d.putContent(`${p}/${f}`, bytes(f));
      await d.delete(`${p}/a/b`);
      await expectDriverError(d.stat(`${p}/a/b`), 'PATH_NOT_FOUND', d.name);
      for (const f of doomed) await expectDriverError(d.stat(`${p}/${f}`), 'PATH_NOT_FOUND', d.name);
      for (const f of kept) expect((await d.getContent(`${p}/${f}`)).toString()).toBe(f);
      const files = (await drain(d.walk(p))).filter((i) => !i.isDir).map((i) => i.path);
      expect(sorted(files)).toEqual(sorted(kept.map((f) => `${p}/${f}`)));
    },
  },
];

/** `infos` as path → [isDir, size], for exact comparison. */
function shape(infos: readonly FileInfo[]): Record<string, [boolean, number]> {
  return Object.fromEntries(infos.map((i) => [i.path, [i.isDir, i.size]]));
}

const walkCases: DriverCase[] = [
  {
    title: 'walk returns every descendant (not the path itself), parents before children',
    body: async ({ d, p }) => {
      for (const f of ['a', 'b/c', 'b/d/e', 'b/d/ff', 'bc/x']) await d.putContent(`${p}/${f}`, bytes(f));
      const infos = await drain(d.walk(p));
      expect(shape(infos)).toEqual({
        [`${p}/a`]: [false, 1], [`${p}/b`]: [true, 0], [`${p}/b/c`]: [false, 3], [`${p}/b/d`]: [true, 0],
        [`${p}/b/d/e`]: [false, 5], [`${p}/b/d/ff`]: [false, 6], [`${p}/bc`]: [true, 0], [`${p}/bc/x`]: [false, 4],
      });
      expect(infos.length).toBe(8);
      const seen = new Set<string>();
      for (const i of infos) {
        const parent = i.path.slice(0, i.path.lastIndexOf('/'));
        if (parent !== p) expect(seen.has(parent), `${parent} before ${i.path}`).toBe(true);
        seen.add(i.path);
      }
      infos.forEach((i) => expect(i.modTime).toBeInstanceOf(Date));
    },
  },
  {
    title: 'walk of a subdirectory and of the root',
    body: async ({ d, p }) => {
      for (const f of ['x/y/z', 'x/w']) await d.putContent(`${p}/${f}`, bytes(f));
      expect(sorted((await drain(d.walk(`${p}/x/y`))).map((i) => i.path))).toEqual([`${p}/x/y/z`]);
      const all = (await drain(d.walk('/'))).map((i) => i.path);
      expect(all).toEqual(expect.arrayContaining([p, `${p}/x`, `${p}/x/y`, `${p}/x/y/z`, `${p}/x/w`]));
    },
  },
];

/** stat, list, move, delete and walk cases. */
export const treeCases: readonly DriverCase[] = [...statAndListCases, ...moveCases, ...deleteCases, ...walkCases];
