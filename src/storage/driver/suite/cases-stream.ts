/**
 * Driver suite: reader offsets, writer append/truncate/cancel, concurrent readers, abort signals
 * (distribution's testsuites TestReadStreamWithOffset, TestContinueStreamAppend*, TestConcurrentStreamReads).
 */
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { type SendableReader, isSendable } from '../driver.js';
import {
  bytes,
  closed,
  expectDriverError,
  random,
  readAll,
  sha256,
  writeAndEnd,
  writeOne,
} from './helpers.js';
import type { DriverCase } from './helpers.js';

const readerCases: DriverCase[] = [
  {
    title: 'reader from offset 0 streams the whole file',
    body: async ({ d, p }) => {
      const data = random(3 * 1024 * 1024 + 17);
      await d.putContent(`${p}/f`, data);
      expect(sha256(await readAll(await d.reader(`${p}/f`, 0)))).toBe(sha256(data));
    },
  },
  {
    title: 'reader from a middle offset streams the rest of the file',
    body: async ({ d, p }) => {
      const data = random(2 * 1024 * 1024 + 5);
      await d.putContent(`${p}/f`, data);
      for (const offset of [1, 1024 * 1024, data.length - 1]) {
        expect((await readAll(await d.reader(`${p}/f`, offset))).equals(data.subarray(offset))).toBe(true);
      }
    },
  },
  {
    title: 'reader at the end of the file gives an empty stream',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('0123456789'));
      expect((await readAll(await d.reader(`${p}/f`, 10))).length).toBe(0);
    },
  },
  {
    title: 'reader beyond the end, or at a negative offset, throws InvalidOffsetError',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('0123456789'));
      for (const offset of [11, 1 << 30, -1, 0.5]) {
        await expectDriverError(d.reader(`${p}/f`, offset), 'INVALID_OFFSET', d.name, { path: `${p}/f`, offset });
      }
    },
  },
  {
    title: 'concurrent readers of the same file get identical bytes',
    body: async ({ d, p }) => {
      const data = random(4 * 1024 * 1024 + 3);
      await d.putContent(`${p}/f`, data);
      const offsets = [0, 0, 0, 0, 0, 0, 7, 1024 * 1024, 4 * 1024 * 1024];
      const reads = await Promise.all(offsets.map(async (o) => readAll(await d.reader(`${p}/f`, o))));
      reads.forEach((got, i) => expect(sha256(got)).toBe(sha256(data.subarray(offsets[i]))));
    },
  },
];

const writerCases: DriverCase[] = [
  {
    title: 'writer creates a file and its parents; size counts the bytes written',
    body: async ({ d, p }) => {
      const w = await d.writer(`${p}/up/load/data`, { append: false });
      expect(w.size).toBe(0);
      await writeOne(w, bytes('hello '));
      expect(w.size).toBe(6);
      await writeAndEnd(w, bytes('world'));
      expect(w.size).toBe(11);
      await w.commit();
      expect((await d.getContent(`${p}/up/load/data`)).toString()).toBe('hello world');
      expect(await d.stat(`${p}/up/load/data`)).toMatchObject({ size: 11, isDir: false });
    },
  },
  {
    title: 'writer with append: false truncates an existing file',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('a much longer old content'));
      const w = await d.writer(`${p}/f`, { append: false });
      expect(w.size).toBe(0);
      await writeAndEnd(w, bytes('new'));
      await w.commit();
      expect((await d.getContent(`${p}/f`)).toString()).toBe('new');
    },
  },
  {
    title: 'writer append after a zero-byte write',
    body: async ({ d, p }) => {
      const first = await d.writer(`${p}/f`, { append: false });
      await writeAndEnd(first);
      await first.commit();
      expect(first.size).toBe(0);
      expect(await d.stat(`${p}/f`)).toMatchObject({ size: 0, isDir: false });
      const second = await d.writer(`${p}/f`, { append: true });
      expect(second.size).toBe(0);
      await writeAndEnd(second, bytes('abc'));
      await second.commit();
      expect(second.size).toBe(3);
      expect((await d.getContent(`${p}/f`)).toString()).toBe('abc');
    },
  },
  {
    title: 'writer append resumes after end(): size is right and the content concatenated',
    body: async ({ d, p }) => {
      const parts = [random(1024 * 1024 + 1), random(77), random(3 * 1024 * 1024)];
      let expected = 0;
      for (const part of parts) {
        const w = await d.writer(`${p}/data`, { append: true });
        expect(w.size).toBe(expected);
        await writeAndEnd(w, part.subarray(0, 10), part.subarray(10));
        expected += part.length;
        expect(w.size).toBe(expected);
        expect((await d.stat(`${p}/data`)).size).toBe(expected);
      }
      const all = Buffer.concat(parts);
      expect(sha256(await readAll(await d.reader(`${p}/data`, 0)))).toBe(sha256(all));
    },
  },
  {
    title: 'writer append to a missing file starts at zero',
    body: async ({ d, p }) => {
      const w = await d.writer(`${p}/new`, { append: true });
      expect(w.size).toBe(0);
      await writeAndEnd(w, bytes('x'));
      await w.commit();
      expect((await d.getContent(`${p}/new`)).toString()).toBe('x');
    },
  },
  {
    title: 'writer takes many small writes in order',
    body: async ({ d, p }) => {
      const chunks = Array.from({ length: 5000 }, (_, i) => bytes(`${i},`));
      const w = await d.writer(`${p}/f`, { append: false });
      await writeAndEnd(w, ...chunks);
      await w.commit();
      expect((await d.getContent(`${p}/f`)).equals(Buffer.concat(chunks))).toBe(true);
    },
  },
  {
    title: 'writer commit() ends the writer when end() was not called',
    body: async ({ d, p }) => {
      const w = await d.writer(`${p}/f`, { append: false });
      await writeOne(w, bytes('abc'));
      await w.commit();
      expect((await d.getContent(`${p}/f`)).toString()).toBe('abc');
    },
  },
];

const cancelAndAbortCases: DriverCase[] = [
  {
    title: 'writer cancel removes the file, before or after end()',
    body: async ({ d, p }) => {
      const before = await d.writer(`${p}/a`, { append: false });
      await writeOne(before, bytes('partial'));
      await before.cancel();
      await expectDriverError(d.stat(`${p}/a`), 'PATH_NOT_FOUND', d.name);
      await d.putContent(`${p}/b`, bytes('old'));
      const after = await d.writer(`${p}/b`, { append: true });
      await writeAndEnd(after, bytes('more'));
      await after.cancel();
      await expectDriverError(d.stat(`${p}/b`), 'PATH_NOT_FOUND', d.name);
    },
  },
  {
    title: 'an aborted writer keeps a prefix of what it took, and append resumes from it',
    body: async ({ d, p }) => {
      const ac = new AbortController();
      const w = await d.writer(`${p}/data`, { append: false, signal: ac.signal });
      const failed = new Promise<unknown>((resolve) => w.once('error', resolve));
      await writeOne(w, bytes('hello '));
      ac.abort();
      expect(await failed).toMatchObject({ name: 'AbortError' });
      await closed(w);
      const resumed = await d.writer(`${p}/data`, { append: true });
      expect(resumed.size).toBeLessThanOrEqual(6);
      const kept = (await d.getContent(`${p}/data`)).toString();
      await writeAndEnd(resumed, bytes('hello world'.slice(resumed.size)));
      await resumed.commit();
      expect('hello '.startsWith(kept)).toBe(true);
      expect((await d.getContent(`${p}/data`)).toString()).toBe('hello world');
    },
  },
  {
    title: 'an aborted reader stops with an AbortError',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, random(4 * 1024 * 1024));
      const ac = new AbortController();
      const r = await d.reader(`${p}/f`, 0, { signal: ac.signal });
      ac.abort();
      await expect(readAll(r)).rejects.toMatchObject({ name: 'AbortError' });
    },
  },
  {
    title: 'calls with an already aborted signal reject and change nothing',
    body: async ({ d, p }) => {
      const signal = AbortSignal.abort();
      await d.putContent(`${p}/keep`, bytes('x'));
      await expect(d.putContent(`${p}/f`, bytes('x'), { signal })).rejects.toMatchObject({ name: 'AbortError' });
      await expect(d.getContent(`${p}/keep`, { signal })).rejects.toMatchObject({ name: 'AbortError' });
      await expect(d.writer(`${p}/w`, { append: false, signal })).rejects.toMatchObject({ name: 'AbortError' });
      await expect(d.delete(`${p}/keep`, { signal })).rejects.toMatchObject({ name: 'AbortError' });
      expect(await d.list(p)).toEqual([`${p}/keep`]);
    },
  },
];

/** A writable that keeps a copy of every chunk and calls back at once (as a socket that has sent it). */
function collector(): { sink: Writable; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk)); // copied: the sender reuses its buffers once called back
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** The optional capability `sendableReaders` (driver.ts SendableReader). */
const sendableCases: DriverCase[] = [
  {
    title: 'readers are SendableReaders exactly when the driver declares sendableReaders',
    body: async ({ d, p }) => {
      await d.putContent(`${p}/f`, bytes('0123456789'));
      const r = await d.reader(`${p}/f`, 0);
      expect(isSendable(r)).toBe(d.capabilities?.sendableReaders === true);
      expect((await readAll(r)).toString()).toBe('0123456789');
    },
  },
  {
    title: 'a SendableReader sends from its offset to a writable, capped or to the end, and yields no more than its cap',
    requires: 'sendableReaders',
    body: async ({ d, p }) => {
      const data = random(2 * 1024 * 1024 + 9);
      await d.putContent(`${p}/f`, data);
      const sendable = async (offset: number): Promise<SendableReader> => {
        const r = await d.reader(`${p}/f`, offset);
        if (!isSendable(r)) throw new Error('the driver declares sendableReaders but its reader is not one');
        return r;
      };
      const whole = collector();
      await (await sendable(5)).sendTo(whole.sink);
      expect(whole.bytes().equals(data.subarray(5))).toBe(true);
      const capped = collector();
      const length = 1024 * 1024 + 3;
      await (await sendable(7)).cap(length).sendTo(capped.sink);
      expect(capped.bytes().equals(data.subarray(7, 7 + length))).toBe(true);
      expect((await readAll((await sendable(11)).cap(100))).equals(data.subarray(11, 111))).toBe(true);
      await expect((await sendable(data.length - 4)).cap(10).sendTo(collector().sink)).rejects.toThrow();
    },
  },
];

/** reader / writer cases. */
/** The optional capability `readsWhileWriting`. */
const readsWhileWritingCases: DriverCase[] = [
  {
    title: 'a reader of a file an appending writer is still writing gets every byte written so far',
    requires: 'readsWhileWriting',
    body: async ({ d, p }) => {
      const w = await d.writer(`${p}/up/data`, { append: true });
      await writeOne(w, bytes('written '));
      expect((await readAll(await d.reader(`${p}/up/data`, 0))).toString()).toBe('written ');
      await writeOne(w, bytes('so far'));
      expect((await readAll(await d.reader(`${p}/up/data`, 8))).toString()).toBe('so far');
      await writeAndEnd(w);
      await w.commit();
    },
  },
];

export const streamCases: readonly DriverCase[] = [...readerCases, ...sendableCases, ...readsWhileWritingCases, ...writerCases, ...cancelAndAbortCases];
