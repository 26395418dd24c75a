/**
 * Driver suite, slow group: a multi-GB blob streamed through a writer (with a resume in the middle, so
 * offsets pass 2^31 and 2^32) and read back, checked by sha256. Runs only when CI=true or
 * BERTH_SLOW_TESTS=1; otherwise it is skipped with the reason printed.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import { random, slowTestsEnabled } from './helpers.js';
import type { DriverCase } from './helpers.js';

const MiB = 1024 * 1024;
const TOTAL_MIB = 3 * 1024; // 3 GiB
const RESUME_AT_MIB = 2 * 1024 + 512; // past 2^31, before 2^32

/** Chunks `from` to `to` (in MiB) of a deterministic stream: a random block stamped with its index. */
function* chunks(block: Buffer, from: number, to: number, hash: Hash): Generator<Buffer> {
  for (let i = from; i < to; i += 1) {
    const chunk = Buffer.allocUnsafe(MiB);
    block.copy(chunk);
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
    yield chunk;
  }
}

async function hashOf(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const buf: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    hash.update(buf);
    size += buf.length;
  }
  return { digest: hash.digest('hex'), size };
}

/** The slow cases; `skipReason` is set unless the slow switches are on. */
export const slowCases: readonly DriverCase[] = [
  {
    title: `streams ${TOTAL_MIB / 1024} GiB through a resumed writer and reads it back (sha256)`,
    timeout: 30 * 60 * 1000,
    skipReason: slowTestsEnabled() ? undefined : 'slow test; set CI=true or BERTH_SLOW_TESTS=1 to run it',
    body: async ({ d, p }) => {
      const path = `${p}/big/data`;
      const block = random(MiB);
      const written = createHash('sha256');
      const started = performance.now();
      const first = await d.writer(path, { append: false });
      await pipeline(Readable.from(chunks(block, 0, RESUME_AT_MIB, written), { objectMode: false }), first);
      const second = await d.writer(path, { append: true });
      expect(second.size).toBe(RESUME_AT_MIB * MiB);
      await pipeline(Readable.from(chunks(block, RESUME_AT_MIB, TOTAL_MIB, written), { objectMode: false }), second);
      await second.commit();
      const wroteAt = performance.now();
      expect((await d.stat(path)).size).toBe(TOTAL_MIB * MiB);
      const read = await hashOf(await d.reader(path, 0));
      const readAt = performance.now();
      expect(read).toEqual({ digest: written.digest('hex'), size: TOTAL_MIB * MiB });
      const tail = await hashOf(await d.reader(path, TOTAL_MIB * MiB - 3));
      expect(tail.size).toBe(3);
      const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
      console.log(`[${d.name}] ${TOTAL_MIB / 1024} GiB: write ${s(wroteAt - started)}, read ${s(readAt - wroteAt)}`);
    },
  },
];
