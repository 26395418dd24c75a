/**
 * The resumable SHA-256: the same digests as Node's, and a state in Go's crypto/sha256 format that a
 * new hash takes up at any split, including inside a block and on its edges.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../digest.js';
import { GO_STATE_BYTES, ResumableSha256 } from './resumable-sha256.js';

const IV = ['6a09e667', 'bb67ae85', '3c6ef372', 'a54ff53a', '510e527f', '9b05688c', '1f83d9ab', '5be0cd19'];

describe('ResumableSha256', () => {
  it('hashes as Node does, and digest() leaves it usable', async () => {
    const data = randomBytes(1000);
    const h = await ResumableSha256.create();
    h.update(data.subarray(0, 100));
    expect(h.digest()).toBe(digestOf(data.subarray(0, 100)));
    h.update(data.subarray(100));
    expect(h.digest()).toBe(digestOf(data));
    expect(h.size).toBe(1000);
  });

  it('saves a short message as Go does: magic, the initial words, the pending bytes, the length', async () => {
    const h = await ResumableSha256.create();
    h.update(Buffer.from('abc'));
    const expected = Buffer.concat([
      Buffer.from('sha\x03', 'latin1'),
      Buffer.from(IV.join(''), 'hex'),
      Buffer.from('abc'),
      Buffer.alloc(61),
      Buffer.from('0000000000000003', 'hex'),
    ]);
    expect(h.state()).toEqual(expected);
    expect(expected.length).toBe(GO_STATE_BYTES);
  });

  it.each([0, 1, 55, 63, 64, 65, 127, 128, 4096, 100_003])('resumes from a state saved after %i bytes', async (split) => {
    const data = randomBytes(split + 777);
    const first = await ResumableSha256.create();
    first.update(data.subarray(0, split));
    const state = first.state();
    expect(state.readBigUInt64BE(GO_STATE_BYTES - 8)).toBe(BigInt(split));
    const second = await ResumableSha256.resume(state, split);
    expect(second?.size).toBe(split);
    second?.update(data.subarray(split));
    expect(second?.digest()).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    // A state saved after a resume is the one an unbroken hash saves.
    const whole = await ResumableSha256.create();
    whole.update(data);
    expect(second?.state()).toEqual(whole.state());
  });

  it('refuses a state for another size, a torn state and a state of another hash', async () => {
    const h = await ResumableSha256.create();
    h.update(randomBytes(70));
    const state = h.state();
    expect(await ResumableSha256.resume(state, 69)).toBeUndefined();
    expect(await ResumableSha256.resume(state.subarray(0, 100), 70)).toBeUndefined();
    const sha224 = Buffer.from(state);
    sha224.write('sha\x02', 0, 'latin1');
    expect(await ResumableSha256.resume(sha224, 70)).toBeUndefined();
    expect(await ResumableSha256.resume(state, 70)).toBeDefined();
  });
});
