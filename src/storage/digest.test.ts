/**
 * Digests: the grammar Berth accepts, known hash vectors, and the incremental Digester that uploads use
 * (D:opencontainers/go-digest semantics: sha256 canonical, sha512 accepted, lower-case hex only).
 */
import { describe, expect, it } from 'vitest';
import type { DigestAlgorithm } from './digest.js';
import {
  CANONICAL_ALGORITHM,
  Digester,
  digestAlgorithm,
  digestHex,
  digestOf,
  digestProblem,
  makeDigest,
  parseDigest,
} from './digest.js';

const VECTORS: Readonly<Record<DigestAlgorithm, { readonly empty: string; readonly hello: string }>> = {
  sha256: {
    empty: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    hello: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
  },
  sha512: {
    empty:
      'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
    hello:
      '9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043',
  },
};
const HEX256 = VECTORS.sha256.hello;
const HEX512 = VECTORS.sha512.hello;

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('digestProblem and parseDigest', () => {
  it.each([`sha256:${HEX256}`, `sha512:${HEX512}`, `sha256:${VECTORS.sha256.empty}`])('accepts %s', (s) => {
    expect(digestProblem(s)).toBeUndefined();
    expect(parseDigest(s)).toBe(s);
  });

  const invalid: readonly (readonly [string, string, string])[] = [
    ['empty', '', 'malformed digest'],
    ['no colon', HEX256, 'malformed digest'],
    ['empty hex', 'sha256:', 'malformed digest'],
    ['empty algorithm', `:${HEX256}`, 'malformed digest'],
    ['path traversal', 'sha256:../../x', 'malformed digest'],
    ['two colons', `sha256:${HEX256}:x`, 'malformed digest'],
    ['upper-case algorithm', `SHA256:${HEX256}`, 'malformed digest'],
    ['whitespace', ` sha256:${HEX256}`, 'malformed digest'],
    ['unknown algorithm', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'unsupported digest algorithm "md5"'],
    ['algorithm with separator', `sha256+b64u:${HEX256}`, 'unsupported digest algorithm "sha256+b64u"'],
    ['sha384', `sha384:${'0'.repeat(96)}`, 'unsupported digest algorithm "sha384"'],
    ['upper-case hex', `sha256:${HEX256.toUpperCase()}`, 'malformed sha256 digest'],
    ['sha256 short', `sha256:${HEX256.slice(1)}`, 'malformed sha256 digest'],
    ['sha256 long', `sha256:${HEX256}0`, 'malformed sha256 digest'],
    ['sha256 non-hex', `sha256:${HEX256.slice(1)}z`, 'malformed sha256 digest'],
    ['sha512 with sha256 length', `sha512:${HEX256}`, 'malformed sha512 digest'],
    ['sha512 base64url-ish', `sha512:${HEX512.slice(2)}-_`, 'malformed sha512 digest'],
  ];
  it.each(invalid)('refuses %s', (_what, s, problem) => {
    expect(digestProblem(s)).toBe(problem);
    expect(parseDigest(s)).toBeUndefined();
  });
});

describe('digestAlgorithm and digestHex', () => {
  it.each([
    [`sha256:${HEX256}`, 'sha256', HEX256],
    [`sha512:${HEX512}`, 'sha512', HEX512],
  ])('split %s', (s, alg, hex) => {
    const d = parseDigest(s);
    if (d === undefined) throw new Error('test digest invalid');
    expect(digestAlgorithm(d)).toBe(alg);
    expect(digestHex(d)).toBe(hex);
  });
});

describe('digestOf', () => {
  it('defaults to sha256', () => {
    expect(CANONICAL_ALGORITHM).toBe('sha256');
    expect(digestOf(utf8('hello'))).toBe(`sha256:${HEX256}`);
  });

  it.each([
    ['sha256', '', `sha256:${VECTORS.sha256.empty}`],
    ['sha256', 'hello', `sha256:${VECTORS.sha256.hello}`],
    ['sha512', '', `sha512:${VECTORS.sha512.empty}`],
    ['sha512', 'hello', `sha512:${VECTORS.sha512.hello}`],
  ] as const)('%s of %j', (alg, text, expected) => {
    expect(digestOf(utf8(text), alg)).toBe(expected);
  });

  it('hashes a Buffer the same as a Uint8Array', () => {
    expect(digestOf(Buffer.from('hello'))).toBe(digestOf(utf8('hello')));
  });
});

describe('Digester', () => {
  it.each(['sha256', 'sha512'] as const)('%s of nothing is the empty vector with size 0', (alg) => {
    const d = Digester.create(alg);
    expect(d.algorithm).toBe(alg);
    expect(d.size).toBe(0);
    expect(d.digest()).toBe(`${alg}:${VECTORS[alg].empty}`);
  });

  it.each(['sha256', 'sha512'] as const)('%s incremental equals one-shot', (alg) => {
    const data = new Uint8Array(10_000).map((_, i) => (i * 31 + 7) & 0xff);
    const d = Digester.create(alg);
    for (const cut of [[0, 1], [1, 1], [1, 4096], [4096, 9999], [9999, 10_000]] as const) {
      d.update(data.subarray(cut[0], cut[1]));
    }
    expect(d.size).toBe(10_000);
    expect(d.digest()).toBe(digestOf(data, alg));
  });

  it('digest() leaves the digester usable', () => {
    const d = Digester.create();
    d.update(utf8('hel'));
    const partial = d.digest();
    expect(partial).toBe(digestOf(utf8('hel')));
    expect(d.digest()).toBe(partial);
    d.update(utf8('lo'));
    expect(d.digest()).toBe(`sha256:${HEX256}`);
    expect(d.size).toBe(5);
  });

  it('copy() is independent of the original in both directions', () => {
    const original = Digester.create();
    original.update(utf8('hel'));
    const copy = original.copy();
    expect(copy.size).toBe(3);
    expect(copy.algorithm).toBe('sha256');

    original.update(utf8('lo'));
    expect(original.digest()).toBe(`sha256:${HEX256}`);
    expect(original.size).toBe(5);
    expect(copy.digest()).toBe(digestOf(utf8('hel')));
    expect(copy.size).toBe(3);

    copy.update(utf8('p'));
    expect(copy.digest()).toBe(digestOf(utf8('help')));
    expect(copy.size).toBe(4);
    expect(original.digest()).toBe(`sha256:${HEX256}`);
    expect(original.size).toBe(5);
  });

  it('copy() keeps sha512', () => {
    const d = Digester.create('sha512');
    d.update(utf8('hello'));
    const c = d.copy();
    expect(c.algorithm).toBe('sha512');
    expect(c.digest()).toBe(`sha512:${HEX512}`);
  });
});

describe('makeDigest', () => {
  it.each([
    ['sha256', HEX256],
    ['sha512', HEX512],
  ] as const)('builds %s', (alg, hex) => {
    expect(makeDigest(alg, hex)).toBe(`${alg}:${hex}`);
  });

  it.each([
    ['sha256', ''],
    ['sha256', HEX256.toUpperCase()],
    ['sha256', HEX256.slice(1)],
    ['sha256', HEX512],
    ['sha512', HEX256],
    ['sha256', '../../etc/passwd'],
    ['sha256', `${HEX256.slice(0, 32)}/${HEX256.slice(33)}`],
  ] as const)('refuses %s:%s', (alg, hex) => {
    expect(() => makeDigest(alg, hex)).toThrow(`not a digest: ${alg}:${hex}`);
  });
});
