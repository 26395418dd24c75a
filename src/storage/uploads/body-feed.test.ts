import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Digester } from '../digest.js';
import { type BodyPacer, feed } from './body-feed.js';

const chunk = (n: number, size = 1000): Buffer => Buffer.alloc(size, n);

/** A writer that keeps what it is given and calls back only when told to (`release`), or at once. */
class Sink extends Writable {
  readonly got: Buffer[] = [];
  private pending: (() => void)[] = [];
  constructor(
    private readonly hold: boolean,
    highWaterMark = 16 * 1024,
  ) {
    super({ highWaterMark });
  }
  override _write(c: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.got.push(c);
    if (this.hold) this.pending.push(() => cb());
    else cb();
  }
  release(): void {
    const go = this.pending;
    this.pending = [];
    for (const cb of go) cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.got);
  }
}

describe('feed', () => {
  it('hands every chunk to the writer in order, hashed, and ends it', async () => {
    const body = new PassThrough();
    const sink = new Sink(false);
    const hash = Digester.create();
    const done = feed(body, sink, { hash });
    const sent = [chunk(1), chunk(2), chunk(3)];
    for (const c of sent) body.write(c);
    body.end();
    await done;
    expect(sink.writableFinished).toBe(true);
    expect(sink.bytes.equals(Buffer.concat(sent))).toBe(true);
    expect(hash.digest()).toBe(`sha256:${createHash('sha256').update(Buffer.concat(sent)).digest('hex')}`);
  });

  it('pauses the body while the writer is full and goes on after its drain', async () => {
    const body = new PassThrough();
    const sink = new Sink(true, 1500);
    const done = feed(body, sink);
    body.write(chunk(1));
    body.write(chunk(2));
    await new Promise((resolve) => setImmediate(resolve));
    expect(body.isPaused()).toBe(true); // 2000 bytes waiting in a writer whose mark is 1500
    expect(sink.got.length).toBe(1);
    const drained = once(sink, 'drain');
    sink.release(); // the first chunk's callback: the second goes to _write
    sink.release();
    await drained;
    await new Promise((resolve) => setImmediate(resolve));
    expect(body.isPaused()).toBe(false);
    body.end(chunk(3));
    await new Promise((resolve) => setImmediate(resolve));
    sink.release();
    await done;
    expect(sink.bytes.equals(Buffer.concat([chunk(1), chunk(2), chunk(3)]))).toBe(true);
  });

  it("holds a chunk the pacer refuses, and the ones after it, until the pacer's go; counts every byte", async () => {
    let refuse = false;
    let counted = 0;
    let go: (() => void) | undefined;
    const pacer: BodyPacer = {
      admit(bytes) {
        counted += bytes;
        return !refuse;
      },
      later(g) {
        go = g;
      },
    };
    const body = new PassThrough();
    const sink = new Sink(false);
    const done = feed(body, sink, { pacer });
    body.write(chunk(1));
    await new Promise((resolve) => setImmediate(resolve));
    refuse = true;
    body.write(chunk(2));
    body.end(chunk(3));
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.bytes.equals(chunk(1))).toBe(true);
    expect(body.isPaused()).toBe(true);
    expect(sink.writableEnded).toBe(false); // the body has ended, but a chunk is held
    refuse = false;
    go?.();
    await done;
    expect(sink.bytes.equals(Buffer.concat([chunk(1), chunk(2), chunk(3)]))).toBe(true);
    expect(counted).toBe(3000);
  });

  it('leaves the body readable, paused and not destroyed, when the writer fails', async () => {
    const body = new PassThrough();
    const sink = new Writable({
      write(_c: Buffer, _e, cb) {
        cb(new Error('disk full'));
      },
    });
    const done = feed(body, sink);
    body.write(chunk(1));
    await expect(done).rejects.toThrow('disk full');
    body.end(chunk(2));
    await new Promise((resolve) => setImmediate(resolve)); // a body still flowing would emit it to nobody now
    expect(body.destroyed).toBe(false);
    const rest: Buffer[] = [];
    for await (const c of body) rest.push(c as Buffer);
    expect(Buffer.concat(rest).equals(chunk(2))).toBe(true); // nothing lost to a 'data' with no listener
  });

  it('fails on a body that closes before its end, without ending the writer', async () => {
    const body = new PassThrough();
    const sink = new Sink(false);
    const done = feed(body, sink);
    body.write(chunk(1));
    body.destroy();
    await expect(done).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(sink.writableEnded).toBe(false);
  });

  it('fails with an AbortError when the signal fires; a writer destroyed by the same signal throws nothing', async () => {
    const body = new PassThrough();
    const sink = new Sink(true);
    const abort = new AbortController();
    abort.signal.addEventListener('abort', () => sink.destroy(new Error('aborted write'))); // as a driver's writer does
    const done = feed(body, sink, { signal: abort.signal });
    body.write(chunk(1));
    abort.abort();
    await expect(done).rejects.toMatchObject({ name: 'AbortError' });
    await new Promise((resolve) => sink.on('close', resolve)); // its 'error' came after the feed settled: a listener was still there
    expect(body.destroyed).toBe(false);
  });
});
