import { describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../digest.js';
import { createManifestCache } from './manifest-cache.js';

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
const describeAs = (mediaType: string) => () => ({ mediaType });

describe('manifest cache', () => {
  it('keeps summaries by digest and describes each manifest once', () => {
    const cache = createManifestCache();
    const content = Buffer.from('{"schemaVersion":2}');
    const d = digestOf(content);
    let calls = 0;
    const describe1 = (): { mediaType: string } => {
      calls++;
      return { mediaType: 'application/vnd.oci.image.manifest.v1+json' };
    };
    expect(cache.remember(d, content, describe1)).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: content.length });
    cache.remember(d, content, describe1);
    expect(calls).toBe(1);
    expect(cache.get(d)?.size).toBe(content.length);
    expect(cache.content(d), 'remember keeps no bytes').toBeUndefined();
  });

  it('keeps content within its byte bound, dropping the least recently used first', () => {
    const cache = createManifestCache({ maxContentBytes: 16 * 1024 });
    const ds: Digest[] = [];
    for (let i = 0; i < 4; i++) {
      const content = bytes(1000, i);
      ds.push(digestOf(content));
      cache.keepContent(ds[i] as Digest, content);
    }
    for (const d of ds) expect(cache.content(d)?.length).toBe(1000);
    // 16 KiB holds 16 of these; use the first, then add 14 more: the second is the oldest and goes first.
    expect(cache.content(ds[0] as Digest)).toBeDefined();
    for (let i = 4; i < 18; i++) cache.keepContent(digestOf(bytes(1000, i)), bytes(1000, i));
    expect(cache.content(ds[1] as Digest), 'least recently used is dropped').toBeUndefined();
    expect(cache.content(ds[0] as Digest), 'recently used stays').toBeDefined();
  });

  it('never keeps a manifest over a sixteenth of the bound, so one cannot evict the rest', () => {
    const cache = createManifestCache({ maxContentBytes: 16 * 1024 });
    const small = bytes(500, 1);
    const big = bytes(1025, 2);
    cache.keepContent(digestOf(small), small);
    cache.keepContent(digestOf(big), big);
    expect(cache.content(digestOf(small))).toEqual(small);
    expect(cache.content(digestOf(big))).toBeUndefined();
  });

  it('bounds the number of summaries', () => {
    const cache = createManifestCache(2);
    const ds = [1, 2, 3].map((i) => digestOf(bytes(10, i)));
    ds.forEach((d, i) => cache.remember(d, bytes(10, i + 1), describeAs('a/b')));
    expect(cache.get(ds[0] as Digest)).toBeUndefined();
    expect(cache.get(ds[2] as Digest)?.mediaType).toBe('a/b');
  });
});
