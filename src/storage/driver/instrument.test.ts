import { describe, expect, it } from 'vitest';
import { DriverError, InvalidPathError, PathNotFoundError } from './driver.js';
import type { StorageDriver } from './driver.js';
import { instrument, isValidPath } from './instrument.js';
import type { DriverCall } from './instrument.js';
import { createMemoryDriver } from './memory.js';
import { drain } from './suite/helpers.js';

describe('isValidPath', () => {
  it.each([
    ['/a', false, true], ['/a/b.c/d-e_f', false, true], ['/...', false, true], ['/.a', false, true],
    ['/', false, false], ['/', true, true], ['', true, false], ['a', false, false], ['/a/', false, false],
    ['//a', false, false], ['/a/./b', false, false], ['/a/..', false, false], ['/%2e', false, false],
  ])('%j (allowRoot %s) → %s', (path, allowRoot, valid) => {
    expect(isValidPath(path, allowRoot)).toBe(valid);
  });
});

describe('instrument', () => {
  function observed(driver: StorageDriver = createMemoryDriver()): { d: StorageDriver; calls: DriverCall[] } {
    const calls: DriverCall[] = [];
    return { d: instrument(driver, (c) => calls.push(c)), calls };
  }

  it('reports each call with its outcome, without calling the driver for an invalid path', async () => {
    const { d, calls } = observed();
    await d.putContent('/a', Buffer.from('x'));
    await expect(d.getContent('/b')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(d.stat('/a/../b')).rejects.toBeInstanceOf(InvalidPathError);
    await expect(d.list('/', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    await drain(d.walk('/'));
    expect(calls.map((c) => [c.driver, c.op, c.outcome])).toEqual([
      ['inmemory', 'putContent', 'ok'],
      ['inmemory', 'getContent', 'PATH_NOT_FOUND'],
      ['inmemory', 'stat', 'INVALID_PATH'],
      ['inmemory', 'list', 'aborted'],
      ['inmemory', 'walk', 'ok'],
    ]);
    calls.forEach((c) => expect(c.seconds).toBeGreaterThanOrEqual(0));
  });

  it('turns a stray error into a DRIVER_FAILURE naming the driver, keeping the cause', async () => {
    const cause = new Error('disk on fire');
    const broken: StorageDriver = { ...createMemoryDriver(), name: 'broken', stat: () => Promise.reject(cause) };
    const err: unknown = await instrument(broken).stat('/a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect(err).toMatchObject({ code: 'DRIVER_FAILURE', driver: 'broken', cause });
  });

  it('passes redirectUrl through only when the driver has one', async () => {
    expect(instrument(createMemoryDriver()).redirectUrl).toBeUndefined();
    const withUrl: StorageDriver = { ...createMemoryDriver(), redirectUrl: async (p) => `https://cdn.example${p}` };
    const d = instrument(withUrl);
    expect(await d.redirectUrl?.('/a/b', 'GET')).toBe('https://cdn.example/a/b');
    await expect(d.redirectUrl?.('/a/../b', 'GET')).rejects.toBeInstanceOf(InvalidPathError);
  });
});
