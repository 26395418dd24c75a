/**
 * Driver suite: small objects through getContent/putContent (distribution's testsuites TestWriteRead*,
 * TestTruncate, TestConcurrentFileStreams in spirit): round trips, overwrite, copies, atomic replace.
 */
import { expect } from 'vitest';
import { bytes, expectDriverError, random, readAll, sha256 } from './helpers.js';
import type { DriverCase } from './helpers.js';

const roundTripCases: DriverCase[] = [
  {
    title: 'putContent then getContent returns the same bytes',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('sha256:0123abcd'));
      expect((await d.getContent(`${p}/f`)).toString()).toBe('sha256:0123abcd');
      expect(await d.stat(`${p}/f`)).toMatchObject({ path: `${p}/f`, size: 15, isDir: false });
    },
  },
  {
    title: 'empty content round trips',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/empty`, new Uint8Array(0));
      expect((await d.getContent(`${p}/empty`)).length).toBe(0);
      expect(await d.stat(`${p}/empty`)).toMatchObject({ size: 0, isDir: false });
      expect((await readAll(await d.reader(`${p}/empty`, 0))).length).toBe(0);
      await expectDriverError(d.reader(`${p}/empty`, 1), 'INVALID_OFFSET', d.name, { offset: 1 });
    },
  },
  {
    title: 'binary content round trips (every byte value, and 1 MiB of random bytes)',
    body: async ({ d, p }) => {
      const every = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      const big = random(1 << 20);
      await d.putContent(`${p}/every`, every);
      await d.putContent(`${p}/big`, big);
      expect((await d.getContent(`${p}/every`)).equals(every)).toBe(true);
      expect(sha256(await d.getContent(`${p}/big`))).toBe(sha256(big));
    },
  },
  {
    title: 'putContent overwrites an existing file, also with shorter content',
    body: async ({ d, p }) => {
      for (const s of ['a long first version', 'short', '', 'a longer third version!']) {
        await d.putContent(`${p}/f`, bytes(s));
        expect((await d.getContent(`${p}/f`)).toString()).toBe(s);
        expect((await d.stat(`${p}/f`)).size).toBe(s.length);
      }
    },
  },
  {
    title: 'putContent creates missing parent directories',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/a/b/c/d/f`, bytes('deep'));
      for (const dir of [`${p}/a`, `${p}/a/b`, `${p}/a/b/c`, `${p}/a/b/c/d`]) {
        expect(await d.stat(dir)).toMatchObject({ path: dir, isDir: true, size: 0 });
      }
      expect((await d.getContent(`${p}/a/b/c/d/f`)).toString()).toBe('deep');
    },
  },
  {
    title: "stored content is a copy: changing the caller's buffers changes nothing",
    body: async ({ d, p }) => {
      const input = bytes('original');
      await d.putContent(`${p}/f`, input);
      input.fill(0);
      const first = await d.getContent(`${p}/f`);
      expect(first.toString()).toBe('original');
      first.fill(0);
      expect((await d.getContent(`${p}/f`)).toString()).toBe('original');
    },
  },
];

const concurrencyCases: DriverCase[] = [
  {
    title: 'many concurrent putContent to the same path leave one complete version',
    body: async ({ d, p }) => {
      const versions = Array.from({ length: 24 }, () => random(256 * 1024));
      await Promise.all(versions.map((v) => d.putContent(`${p}/f`, v)));
      const final = sha256(await d.getContent(`${p}/f`));
      expect(versions.map(sha256)).toContain(final);
      expect(await d.list(p)).toEqual([`${p}/f`]);
    },
  },
  {
    title: 'getContent during concurrent putContent sees whole versions only',
    body: async ({ d, p }) => {
      const versions = Array.from({ length: 12 }, () => random(128 * 1024));
      const known = new Set(versions.map(sha256));
      await d.putContent(`${p}/f`, versions[0] ?? Buffer.alloc(0));
      let writing = true;
      const writes = Promise.all(versions.map((v) => d.putContent(`${p}/f`, v))).finally(() => {
        writing = false;
      });
      let reads = 0;
      while (writing || reads === 0) {
        expect(known.has(sha256(await d.getContent(`${p}/f`)))).toBe(true);
        reads += 1;
      }
      await writes;
    },
  },
];

/** getContent / putContent cases. */
export const contentCases: readonly DriverCase[] = [...roundTripCases, ...concurrencyCases];
