/**
 * Driver suite: path validation (InvalidPathError naming the driver) and PathNotFoundError for every
 * call on a missing path (distribution's testsuites TestInvalidPaths, TestReadNonexistent, ...).
 */
import { expect } from 'vitest';
import type { StorageDriver } from '../driver.js';
import { bytes, drain, expectDriverError, expectWalkError, sorted } from './helpers.js';
import type { DriverCase } from './helpers.js';

/** Paths every call must refuse before the driver sees them. */
const BAD_PATHS = [
  '', 'a', 'a/b', '.', '..', '/.', '/..', '//', '/a//b', '/a/', '/a/.', '/a/..', '/a/../b', '/a/./b', '/../x',
  '/a b', ' /a', '/%2e%2e', '/a/%2e%2e/b', '/a\\b', '/a\u0000b', '/ä', '/a?b', '/a:b', '/a\nb', '/a/b/',
];

/** Every call with `bad` in a path position, lazily (so no rejection goes unhandled). */
function callsWith(d: StorageDriver, bad: string): Array<[string, () => Promise<unknown>]> {
  return [
    ['getContent', () => d.getContent(bad)],
    ['putContent', () => d.putContent(bad, bytes('x'))],
    ['reader', () => d.reader(bad, 0)],
    ['writer', () => d.writer(bad, { append: false })],
    ['stat', () => d.stat(bad)],
    ['list', () => d.list(bad)],
    ['move from', () => d.move(bad, '/valid')],
    ['move to', () => d.move('/valid', bad)],
    ['delete', () => d.delete(bad)],
    ['walk', () => drain(d.walk(bad))],
  ];
}

const invalidPathCases: DriverCase[] = BAD_PATHS.map((bad) => ({
  title: `refuses the invalid path ${JSON.stringify(bad)} in every call`,
  body: async ({ d }) => {
    for (const [label, call] of callsWith(d, bad)) {
      await expectDriverError(call(), 'INVALID_PATH', d.name, { path: bad }, label);
    }
  },
}));

const rootAndNameCases: DriverCase[] = [
  {
    title: 'accepts the root / only in list and walk',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('x'));
      expect(await d.list('/')).toContain(p);
      expect((await drain(d.walk('/'))).map((i) => i.path)).toContain(`${p}/f`);
      for (const [label, call] of callsWith(d, '/')) {
        if (label === 'list' || label === 'walk') continue;
        await expectDriverError(call(), 'INVALID_PATH', d.name, { path: '/' }, label);
      }
    },
  },
  {
    title: 'accepts names made of dots, dashes, underscores, digits and both cases',
    body: async ({ d, p }) => {
      const names = ['.hidden', 'a..b', '...', 'A-Z_0.9', '-', '_', 'sha256-x'];
      for (const n of names) await d.putContent(`${p}/${n}`, bytes(n));
      for (const n of names) expect((await d.getContent(`${p}/${n}`)).toString()).toBe(n);
      expect(sorted(await d.list(p))).toEqual(sorted(names.map((n) => `${p}/${n}`)));
    },
  },
];

const notFoundCases: DriverCase[] = [
  {
    title: 'getContent of a missing file, a directory or a path below a file throws PathNotFoundError',
    body: async ({ d, p }) => {
      await expectDriverError(d.getContent(`${p}/missing`), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/dir/f`, bytes('x'));
      await expectDriverError(d.getContent(`${p}/dir`), 'PATH_NOT_FOUND', d.name, { path: `${p}/dir` });
      await expectDriverError(d.getContent(`${p}/dir/f/x`), 'PATH_NOT_FOUND', d.name, { path: `${p}/dir/f/x` });
    },
  },
  {
    title: 'stat of a missing path throws PathNotFoundError',
    body: async ({ d, p }) => {
      await expectDriverError(d.stat(`${p}/missing`), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/f`, bytes('x'));
      await expectDriverError(d.stat(`${p}/f/x`), 'PATH_NOT_FOUND', d.name, { path: `${p}/f/x` });
    },
  },
  {
    title: 'list of a missing directory or of a file throws PathNotFoundError',
    body: async ({ d, p }) => {
      await expectDriverError(d.list(`${p}/missing`), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/f`, bytes('x'));
      await expectDriverError(d.list(`${p}/f`), 'PATH_NOT_FOUND', d.name, { path: `${p}/f` });
    },
  },
  {
    title: 'delete of a missing path throws PathNotFoundError and removes nothing',
    body: async ({ d, p }) => {
      await expectDriverError(d.delete(`${p}/missing`), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/dir/f`, bytes('x'));
      await expectDriverError(d.delete(`${p}/dir/g`), 'PATH_NOT_FOUND', d.name, { path: `${p}/dir/g` });
      await expectDriverError(d.delete(`${p}/di`), 'PATH_NOT_FOUND', d.name, { path: `${p}/di` });
      expect((await d.getContent(`${p}/dir/f`)).toString()).toBe('x');
    },
  },
  {
    title: 'reader of a missing file or a directory throws PathNotFoundError',
    body: async ({ d, p }) => {
      await expectDriverError(d.reader(`${p}/missing`, 0), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/dir/f`, bytes('x'));
      await expectDriverError(d.reader(`${p}/dir`, 0), 'PATH_NOT_FOUND', d.name, { path: `${p}/dir` });
    },
  },
  {
    title: 'move of a missing source throws PathNotFoundError and creates nothing',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/keep`, bytes('x'));
      const from = `${p}/missing`;
      await expectDriverError(d.move(from, `${p}/new/dest`), 'PATH_NOT_FOUND', d.name, { path: from });
      expect(await d.list(p)).toEqual([`${p}/keep`]);
    },
  },
  {
    title: 'walk of a missing directory or of a file throws PathNotFoundError on iteration',
    body: async ({ d, p }) => {
      const iterable = d.walk(`${p}/missing`); // creating the iterable never throws
      await expectDriverError(drain(iterable), 'PATH_NOT_FOUND', d.name, { path: `${p}/missing` });
      await d.putContent(`${p}/f`, bytes('x'));
      await expectWalkError(d, `${p}/f`, 'PATH_NOT_FOUND', { path: `${p}/f` });
    },
  },
];

/** Path validation and not-found cases. */
export const pathCases: readonly DriverCase[] = [...invalidPathCases, ...rootAndNameCases, ...notFoundCases];
