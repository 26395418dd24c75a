import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../storage/digest.js';
import { type BlobSpool, createBlobSpool } from './blob-spool.js';

/** Reads `stream` until it has `n` bytes (or ends). */
async function take(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    chunks.push(c);
    size += c.length;
    if (size >= n) break;
  }
  return Buffer.concat(chunks);
}

describe('the blob spool', () => {
  let dir: string;
  let spool: BlobSpool;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-spool-'));
    spool = createBlobSpool(dir);
  });
  afterEach(async () => {
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  });

  const content = Buffer.from('0123456789abcdefghij');
  const digest = digestOf(content);

  it('starts one fetch per key; readers follow the bytes as they arrive, the last one only once verified', async () => {
    const body = new PassThrough();
    let starts = 0;
    const stored: Buffer[] = [];
    const fetch = {
      digest,
      start: async () => {
        starts += 1;
        return { size: content.length, body };
      },
      store: async (s: Readable) => void stored.push(await take(s, Number.POSITIVE_INFINITY)),
    };
    const [a, b] = await Promise.all([spool.fetch('k', fetch), spool.fetch('k', fetch)]);
    expect(a).toBe(b);
    expect(starts).toBe(1);
    expect(await a.size()).toBe(content.length);
    const whole = await a.open();
    const ranged = await a.open({ start: 5, end: 9 });
    if (whole === undefined || ranged === undefined) throw new Error('spool gone');
    body.write(content.subarray(0, 12));
    // Everything but the last byte written so far is readable before the digest is known.
    expect((await take(whole, 11)).equals(content.subarray(0, 11))).toBe(true);
    expect((await take(ranged, 5)).equals(content.subarray(5, 10))).toBe(true);
    body.end(content.subarray(12));
    await a.cached;
    expect(stored).toEqual([content]);
    expect(spool.inFlight(digest)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('never releases the last byte of wrong content, stores nothing, and forgets the fetch', async () => {
    const body = new PassThrough();
    const entry = await spool.fetch('k', { digest, start: async () => ({ size: content.length, body }), store: async (s) => void (await take(s, Number.POSITIVE_INFINITY)) });
    const reader = await entry.open();
    if (reader === undefined) throw new Error('spool gone');
    const got: Buffer[] = [];
    const ended = new Promise<Error | undefined>((resolve) => {
      reader.on('data', (c: Buffer) => got.push(c));
      reader.on('error', resolve);
      reader.on('end', () => resolve(undefined));
    });
    body.end(Buffer.from('0123456789abcdefghiX'));
    const err = await ended;
    expect(err?.message).toMatch(/do not match/);
    expect(Buffer.concat(got).length).toBeLessThan(content.length);
    await expect(entry.cached).rejects.toThrow(/do not match/);
    expect(spool.inFlight(digest)).toBeUndefined();
  });

  it('serves readers that keep up from memory and readers that fell behind from the file, byte for byte', async () => {
    const big = randomBytes(20 * 1024 * 1024); // more than the 8 MiB window kept in memory
    const body = new PassThrough();
    const stored: Buffer[] = [];
    const entry = await spool.fetch('big', {
      digest: digestOf(big),
      start: async () => ({ size: big.length, body }),
      store: async (s: Readable) => void stored.push(await take(s, Number.POSITIVE_INFINITY)),
    });
    const late = await entry.open(); // read only once everything has arrived: behind the window
    const ranged = await entry.open({ start: 1, end: big.length - 2 });
    const follower = await entry.open();
    if (late === undefined || ranged === undefined || follower === undefined) throw new Error('spool gone');
    const following = take(follower, big.length);
    for (let at = 0; at < big.length; at += 1024 * 1024) {
      // Paced by the body's backpressure: the follower reads along, near the tail.
      if (!body.write(big.subarray(at, at + 1024 * 1024))) await new Promise((resolve) => body.once('drain', resolve));
    }
    body.end();
    expect((await following).equals(big)).toBe(true);
    await entry.cached;
    expect((await take(late, big.length)).equals(big)).toBe(true);
    expect((await take(ranged, big.length)).equals(big.subarray(1, big.length - 1))).toBe(true);
    expect(stored).toHaveLength(1);
    expect(stored[0]?.equals(big)).toBe(true);
  }, 30_000);
});
