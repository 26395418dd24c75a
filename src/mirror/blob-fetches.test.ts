import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../storage/digest.js';
import { createFilesystemDriver } from '../storage/driver/filesystem.js';
import { createMemoryDriver } from '../storage/driver/memory.js';
import { parseRepoName } from '../storage/reference.js';
import { type LocalRegistry, createRegistry } from '../storage/registry.js';
import { type BlobFetch, type BlobFetches, createBlobFetches } from './blob-fetches.js';

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

describe('blob fetches', () => {
  let registry: LocalRegistry;
  let fetches: BlobFetches;
  const repo = parseRepoName('docker.io/library/x');
  beforeEach(() => {
    registry = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true });
    fetches = createBlobFetches();
  });
  afterEach(async () => {
    await fetches.close();
  });

  /** A fetch of `d` from `body`, cached through the memory registry's uploads. */
  const fetchOf = (d: Digest, size: number | undefined, body: Readable, counter = { starts: 0 }): BlobFetch => ({
    digest: d,
    start: async () => {
      counter.starts += 1;
      return { size, body };
    },
    store: async (stream) => void (await registry.repository(repo).uploads.ingestVerified(d, stream)),
    stored: (range) => registry.blobs.open(d, range),
  });

  const content = Buffer.from('0123456789abcdefghij');
  const digest = digestOf(content);

  it('starts one fetch per key; readers follow the bytes as they arrive, the last one only once verified', async () => {
    const body = new PassThrough();
    const counter = { starts: 0 };
    const fetch = fetchOf(digest, content.length, body, counter);
    const [a, b] = await Promise.all([fetches.fetch('k', fetch), fetches.fetch('k', fetch)]);
    expect(a).toBe(b);
    expect(counter.starts).toBe(1);
    expect(await a.size()).toBe(content.length);
    const whole = await a.open();
    const ranged = await a.open({ start: 5, end: 9 });
    if (whole === undefined || ranged === undefined) throw new Error('fetch over');
    body.write(content.subarray(0, 12));
    // Everything received so far is readable before the digest is known (the blob's last byte is not there yet).
    expect((await take(whole, 12)).equals(content.subarray(0, 12))).toBe(true);
    expect((await take(ranged, 5)).equals(content.subarray(5, 10))).toBe(true);
    // All but the blob's last byte: that one waits for the digest.
    const tail = await a.open({ start: 12, end: 19 });
    if (tail === undefined) throw new Error('fetch over');
    const tailBytes: Buffer[] = [];
    const sevenIn = new Promise<void>((resolve) => tail.on('data', (c: Buffer) => {
      tailBytes.push(c);
      if (Buffer.concat(tailBytes).length >= 7) resolve();
    }));
    body.write(content.subarray(12));
    await sevenIn;
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(tailBytes).equals(content.subarray(12, 19))).toBe(true);
    expect(await registry.blobs.stat(digest)).toBeUndefined();
    const tailEnded = new Promise((resolve) => tail.on('end', resolve));
    body.end();
    await tailEnded;
    expect(Buffer.concat(tailBytes).equals(content.subarray(12))).toBe(true);
    await a.cached;
    expect(await registry.repository(repo).blobs.stat(digest)).toEqual({ digest, size: content.length });
    expect(fetches.inFlight(digest)).toBeUndefined();
    expect(await a.open()).toBeUndefined();
  });

  it('never releases the last byte of wrong content, stores nothing, and forgets the fetch', async () => {
    const body = new PassThrough();
    const entry = await fetches.fetch('k', fetchOf(digest, content.length, body));
    const reader = await entry.open();
    if (reader === undefined) throw new Error('fetch over');
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
    expect(fetches.inFlight(digest)).toBeUndefined();
    expect(await registry.blobs.stat(digest)).toBeUndefined();
    expect(await registry.repositories()).toEqual([]);
  });

  it('survives a cache write that fails while the upstream is still sending: the fetch fails, nothing is unhandled', async () => {
    const body = new PassThrough();
    let refused!: () => void;
    const refusedNow = new Promise<void>((resolve) => (refused = resolve));
    const entry = await fetches.fetch('refused', {
      ...fetchOf(digest, content.length, body),
      store: async () => {
        refused();
        throw new Error('quota exceeded');
      },
    });
    body.write(content.subarray(0, 5));
    await refusedNow;
    // The rest arrives over several turns of the event loop after the store failed.
    for (let i = 5; i < content.length; i += 5) {
      await new Promise((r) => setImmediate(r));
      body.write(content.subarray(i, i + 5));
    }
    body.end();
    await expect(entry.cached).rejects.toThrow(/quota exceeded/);
    expect(await registry.blobs.stat(digest)).toBeUndefined();
  });

  it('fails a body longer than its Content-Length, and one that ends short', async () => {
    const long = new PassThrough();
    const first = await fetches.fetch('long', fetchOf(digest, content.length - 1, long));
    long.end(content);
    await expect(first.cached).rejects.toThrow(/more than its Content-Length/);
    const short = new PassThrough();
    const second = await fetches.fetch('short', fetchOf(digest, content.length + 1, short));
    short.end(content);
    await expect(second.cached).rejects.toThrow(/sent 20 of 21 bytes/);
    expect(await registry.blobs.stat(digest)).toBeUndefined();
  });

  it('lets a reader slower than the upstream set the pace, so it never waits for the cache write to commit', async () => {
    const big = randomBytes(24 * 1024 * 1024); // three times the 8 MiB window
    const d = digestOf(big);
    const body = new PassThrough();
    let commit = (): void => undefined;
    const committed = new Promise<void>((resolve) => (commit = resolve));
    const entry = await fetches.fetch('paced', {
      digest: d,
      start: async () => ({ size: big.length, body }),
      // Takes every byte at once but commits only when told: a reader that fell out of the window would wait for that.
      store: async (stream) => {
        for await (const _ of stream as AsyncIterable<Buffer>) void _;
        await committed;
      },
      stored: async (range) => Readable.from([big.subarray(range.start, range.end + 1)]),
    });
    const reader = await entry.open();
    if (reader === undefined) throw new Error('fetch over');
    const reading = (async () => {
      const chunks: Buffer[] = [];
      for await (const c of reader as AsyncIterable<Buffer>) {
        chunks.push(c);
        await new Promise((resolve) => setImmediate(resolve)); // slower than the upstream
      }
      return Buffer.concat(chunks);
    })();
    const writing = (async () => {
      for (let at = 0; at < big.length; at += 1024 * 1024) {
        if (!body.write(big.subarray(at, at + 1024 * 1024))) await new Promise((resolve) => body.once('drain', resolve));
      }
      body.end();
    })();
    expect((await reading).equals(big)).toBe(true);
    commit();
    await writing;
    await entry.cached;
  }, 30_000);

  it('serves readers that keep up from memory and readers that fell behind from storage, byte for byte', async () => {
    const big = randomBytes(20 * 1024 * 1024); // more than the 8 MiB window kept in memory
    const d = digestOf(big);
    const body = new PassThrough();
    const entry = await fetches.fetch('big', fetchOf(d, big.length, body));
    const late = await entry.open(); // read only once everything has arrived: behind the window
    const ranged = await entry.open({ start: 1, end: big.length - 2 });
    const follower = await entry.open();
    if (late === undefined || ranged === undefined || follower === undefined) throw new Error('fetch over');
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
  }, 30_000);

  it('serves a reader that fell behind from the cache write\'s file before the commit, where storage can read it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-fetch-'));
    try {
      const fsRegistry = createRegistry({ driver: createFilesystemDriver({ root: dir }), deleteEnabled: true });
      const big = randomBytes(20 * 1024 * 1024); // more than the 8 MiB window kept in memory
      const d = digestOf(big);
      const body = new PassThrough();
      let readWritten: ((start: number) => Promise<Readable>) | undefined;
      // Told once the cache write has taken every byte: the window then keeps only the last 8 MiB.
      let tookAll = (): void => undefined;
      const allTaken = new Promise<void>((resolve) => (tookAll = resolve));
      let taken = 0;
      const counted = (stream: Readable): Readable => stream.pipe(new PassThrough({
        transform(chunk: Buffer, _enc, cb) {
          taken += chunk.length;
          if (taken === big.length) tookAll();
          cb(null, chunk);
        },
      }));
      const entry = await fetches.fetch('fs', {
        digest: d,
        start: async () => ({ size: big.length, body }),
        store: async (stream) => void (await fsRegistry.repository(repo).uploads.ingestVerified(d, counted(stream), { onWriting: (read) => (readWritten = read) })),
        stored: (range) => fsRegistry.blobs.open(d, range),
        written: async (start) => readWritten?.(start),
      });
      for (let at = 0; at < big.length; at += 1024 * 1024) {
        if (!body.write(big.subarray(at, at + 1024 * 1024))) await new Promise((resolve) => body.once('drain', resolve));
      }
      await allTaken;
      // Everything but the end has arrived: the digest is not checked yet, so nothing can be committed,
      // and the first 12 MiB are no longer in memory. A late reader gets all but the last byte anyway.
      const late = await entry.open();
      const ranged = await entry.open({ start: 1024, end: 2047 });
      if (late === undefined || ranged === undefined) throw new Error('fetch over');
      expect((await take(late, big.length - 1)).equals(big.subarray(0, big.length - 1))).toBe(true);
      expect((await take(ranged, 1024)).equals(big.subarray(1024, 2048))).toBe(true);
      expect(await fsRegistry.blobs.stat(d)).toBeUndefined();
      body.end();
      await entry.cached;
      expect(await fsRegistry.blobs.stat(d)).toMatchObject({ size: big.length });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
