import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_RELEASE_MS, PartBufferPool, mappedBuffer } from './s3-part-buffers.js';

describe('PartBufferPool', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands back the buffers given to it, so writer after writer allocates no more than two', () => {
    const pool = new PartBufferPool(1024, 2);
    for (let writer = 0; writer < 5; writer += 1) {
      const filling = pool.take();
      const sending = pool.take();
      expect(filling).not.toBe(sending);
      pool.give(sending);
      pool.give(filling);
    }
    expect(pool.allocated).toBe(2);
    expect(pool.free).toBe(2);
  });

  it('keeps at most `keep` free buffers, ignores a buffer given twice or of another size', () => {
    const pool = new PartBufferPool(16, 2);
    const bufs = [pool.take(), pool.take(), pool.take()];
    for (const b of bufs) pool.give(b);
    expect(pool.free).toBe(2);
    expect(bufs[2]?.length).toBe(0); // the one over `keep` is let go
    const again = pool.take();
    pool.give(again);
    pool.give(again);
    pool.give(Buffer.alloc(8));
    expect(pool.free).toBe(2);
  });

  it("takes buffers mapped by V8 (resizable ArrayBuffers), not malloc'd ones, each its ArrayBuffer's whole length", () => {
    const pool = new PartBufferPool(3 * 1024 * 1024, 2);
    const buf = pool.take();
    // A malloc'd Buffer's ArrayBuffer is not resizable; a resizable one is reserved and mapped by V8.
    expect(Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get?.call(buf.buffer)).toBe(true);
    expect([buf.byteOffset, buf.length, buf.buffer.byteLength]).toEqual([0, 3 * 1024 * 1024, 3 * 1024 * 1024]);
    Buffer.from('part bytes').copy(buf, 100);
    expect(buf.subarray(100, 110).toString()).toBe('part bytes');
    expect(mappedBuffer(16).length).toBe(16);
  });

  it('drops its free buffers once none was given back for a while, letting their memory go (detached)', () => {
    vi.useFakeTimers();
    const pool = new PartBufferPool(16, 2);
    const given = pool.take();
    pool.give(given);
    vi.advanceTimersByTime(IDLE_RELEASE_MS - 1);
    expect(pool.free).toBe(1);
    expect(given.length).toBe(16);
    vi.advanceTimersByTime(1);
    expect(pool.free).toBe(0);
    // Moved into an ArrayBuffer nobody holds, freed by the next young-generation collection.
    expect(given.length).toBe(0);
    expect(pool.take().length).toBe(16);
    expect(pool.allocated).toBe(2);
  });
});
