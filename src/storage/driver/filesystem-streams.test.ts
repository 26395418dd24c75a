/**
 * The filesystem driver's faster paths (issue #8): getContent's read with a growing buffer and its kept
 * small files (checked against a stat on every read),
 * readers that cap themselves and send themselves to a socket through reused buffers, and writers that
 * flush in the background while large content arrives. Real files in a temporary directory, real TCP
 * sockets on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SendableReader, isSendable } from './driver.js';
import { PathNotFoundError, type StorageDriver } from './driver.js';
import { createFilesystemDriver } from './filesystem.js';
import { instrument } from './instrument.js';

/** `n` bytes that differ at every offset (a position error shows). */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8) * 13) & 0xff;
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A connected pair of sockets on 127.0.0.1: what `sendTo` writes into `out` is collected from the other end. */
async function socketPair(): Promise<{ out: Socket; received: Promise<Buffer>; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const out = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => out.once('connect', () => r()));
  const peer = await accepted;
  const received = new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    peer.on('data', (c: Buffer) => chunks.push(c));
    peer.on('close', () => resolve(Buffer.concat(chunks)));
  });
  return {
    out,
    received,
    close: async () => {
      peer.destroy();
      out.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function sendable(d: StorageDriver, path: string, offset: number): Promise<SendableReader> {
  const r: Readable = await d.reader(path, offset);
  if (!isSendable(r)) throw new Error('the filesystem reader is not sendable');
  return r;
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('filesystem driver: faster paths', () => {
  let root: string;
  let d: StorageDriver;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-fs-streams-'));
    d = instrument(createFilesystemDriver({ root }));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('getContent reads whole files of every size around its first buffer (16 KiB)', async () => {
    for (const size of [0, 1, 71, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 32 * 1024, 200_001]) {
      const content = pattern(size);
      await d.putContent(`/f/${size}`, content);
      const got = await d.getContent(`/f/${size}`);
      expect(got.length, `size ${size}`).toBe(size);
      expect(sha(got), `size ${size}`).toBe(sha(content));
    }
  });

  it('getContent never answers a kept small file after it changed on disk, however it changed', { timeout: 30_000 }, async () => {
    const digest = (c: string): Buffer => Buffer.from(`sha256:${c.repeat(64)}`); // 71 bytes, like a link
    await d.putContent('/l/link', digest('a'));
    await new Promise((r) => setTimeout(r, 2100)); // only files left alone for 2 s are kept
    expect(await d.getContent('/l/link')).toEqual(digest('a'));
    expect(await d.getContent('/l/link'), 'kept, unchanged').toEqual(digest('a'));
    await d.putContent('/l/link', digest('b')); // replaced through a rename: a new inode
    expect(await d.getContent('/l/link')).toEqual(digest('b'));
    await new Promise((r) => setTimeout(r, 2100));
    expect(await d.getContent('/l/link'), 'kept again').toEqual(digest('b'));
    for (const c of ['c', 'd', 'e']) {
      await writeFile(join(root, 'l', 'link'), digest(c)); // rewritten in place: same inode, same size
      expect(await d.getContent('/l/link'), `in place ${c}`).toEqual(digest(c));
    }
    await writeFile(join(root, 'l', 'link'), 'short');
    expect((await d.getContent('/l/link')).toString()).toBe('short');
    await new Promise((r) => setTimeout(r, 2100));
    (await d.getContent('/l/link')).fill(0); // kept now: a caller changing what it got changes nothing kept
    expect((await d.getContent('/l/link')).toString()).toBe('short');
    await rm(join(root, 'l', 'link'));
    await expect(d.getContent('/l/link')).rejects.toBeInstanceOf(PathNotFoundError);
    await mkdir(join(root, 'l', 'link'));
    await expect(d.getContent('/l/link'), 'a directory now').rejects.toBeInstanceOf(PathNotFoundError);
  });

  it('a reader sends itself to a socket, whole or from an offset, and closes its file', async () => {
    const content = pattern(3 * 1024 * 1024 + 12_345); // more than two 1 MiB buffers, and a short last read
    await d.putContent('/blob', content);
    for (const offset of [0, 1, 1024 * 1024, content.length - 1, content.length]) {
      const pair = await socketPair();
      const r = await sendable(d, '/blob', offset);
      await r.sendTo(pair.out);
      pair.out.end();
      const got = await pair.received;
      expect(sha(got), `offset ${offset}`).toBe(sha(content.subarray(offset)));
      expect(r.destroyed).toBe(true);
      await pair.close();
    }
  });

  it('cap(n) limits both what it sends and what it yields as a Readable', async () => {
    const content = pattern(2 * 1024 * 1024 + 100);
    await d.putContent('/blob', content);
    for (const [offset, length] of [[0, 1], [5, 4096], [1024 * 1024 - 3, 1024 * 1024 + 7], [100, content.length - 100]] as const) {
      const pair = await socketPair();
      await (await sendable(d, '/blob', offset)).cap(length).sendTo(pair.out);
      pair.out.end();
      expect(sha(await pair.received), `send ${offset}+${length}`).toBe(sha(content.subarray(offset, offset + length)));
      await pair.close();
      const yielded = await collect((await sendable(d, '/blob', offset)).cap(length));
      expect(sha(yielded), `read ${offset}+${length}`).toBe(sha(content.subarray(offset, offset + length)));
    }
  });

  it('sendTo rejects when the file is shorter than its cap, and when the socket goes away mid-transfer', async () => {
    await d.putContent('/short', pattern(1000));
    const pair = await socketPair();
    const r = await sendable(d, '/short', 0);
    await expect(r.cap(2000).sendTo(pair.out)).rejects.toThrow(/ended 1000 bytes early/);
    expect(r.destroyed).toBe(true);
    await pair.close();

    await d.putContent('/big', pattern(8 * 1024 * 1024));
    const gone = await socketPair();
    const big = await sendable(d, '/big', 0);
    const sending = big.sendTo(gone.out);
    gone.out.destroy();
    await expect(sending).rejects.toThrow();
    expect(big.destroyed).toBe(true);
    await gone.close();
  });

  it('cap and sendTo refuse a reader that has started reading', async () => {
    await d.putContent('/blob', pattern(10));
    const r = await sendable(d, '/blob', 0);
    await collect(r);
    expect(() => r.cap(1)).toThrow(/after reading started/);
    await expect(r.sendTo(new PassThrough())).rejects.toThrow(/after reading started/);
  });

  it('a writer flushing in the background keeps every byte, in order, across resumed writers', async () => {
    const part = pattern(20 * 1024 * 1024 + 3); // two writers of 20 MiB: the 32 MiB background flush runs in the second
    const w1 = await d.writer('/up/data', { append: false });
    for (let at = 0; at < part.length; at += 64 * 1024) w1.write(part.subarray(at, at + 64 * 1024));
    await w1.commit();
    const w2 = await d.writer('/up/data', { append: true });
    expect(w2.size).toBe(part.length);
    for (let at = 0; at < part.length; at += 1024 * 1024) {
      if (!w2.write(part.subarray(at, at + 1024 * 1024))) await new Promise((r) => w2.once('drain', r));
    }
    await w2.commit();
    expect(w2.size).toBe(2 * part.length);
    const stored = await readFile(join(root, 'up', 'data'));
    expect(stored.length).toBe(2 * part.length);
    expect(sha(stored)).toBe(sha(Buffer.concat([part, part])));
    expect((await stat(join(root, 'up', 'data'))).size).toBe(2 * part.length);
  });
});
