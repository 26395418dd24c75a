/**
 * libtrust key IDs: the two published vectors of registry:2's own documentation, and a hand computation
 * (SHA-256 of the SPKI DER, first 240 bits, base32 by way of a bit string) for fresh keys of every type.
 */
import { createHash, createPublicKey, createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { libtrustKeyId } from './libtrust.js';

const FORMAT = /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/;

/** base32 of the first 240 bits, spelled out differently from libtrust.ts: through a string of bits. */
function byHand(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  const bits = [...digest].map((b) => b.toString(2).padStart(8, '0')).join('');
  const chars = (bits.match(/.{5}/g) ?? []).map((five) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[parseInt(five, 2)]);
  return (chars.join('').match(/.{4}/g) ?? []).join(':');
}

describe('libtrustKeyId', () => {
  it.each([
    {
      // docs/spec/manifest-v2-1.md (registry:2 v2.8): a schema1 signature's jwk and its kid
      source: 'schema1 manifest signature',
      jwk: { kty: 'EC', crv: 'P-256', x: '3gAwX48IQ5oaYQAYSxor6rYYc_6yjuLCjtQ9LUakg4A', y: 't72ge6kIA1XOjqjVoEOiPPAURltJFBMGDSQvEGVB010' },
      kid: 'OD6I:6DRK:JXEJ:KBM4:255X:NSAA:MUSF:E4VM:ZI6W:CUN2:L4Z6:LSF4',
    },
    {
      // docs/spec/auth/jwt.md (registry:2 v2.8): the token server key of the token example
      source: 'token spec example key',
      jwk: { kty: 'EC', crv: 'P-256', x: 'm7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q', y: 'dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc' },
      kid: 'PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6',
    },
  ])('matches the published vector of the $source', ({ jwk, kid }) => {
    expect(libtrustKeyId(createPublicKey({ key: jwk, format: 'jwk' }))).toBe(kid);
  });

  it.each([
    ['RSA 2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EC P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['EC P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['EC P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
    ['Ed25519', () => generateKeyPairSync('ed25519')],
  ] as const)('is the truncated SHA-256 of the SPKI DER for %s, in 12 base32 groups', (_name, generate) => {
    const { publicKey, privateKey } = generate();
    const kid = libtrustKeyId(publicKey);
    expect(kid).toMatch(FORMAT);
    expect(kid).toBe(byHand(publicKey));
    expect(libtrustKeyId(privateKey)).toBe(kid);
  });

  it('refuses a secret key', () => {
    expect(() => libtrustKeyId(createSecretKey(Buffer.alloc(32)))).toThrow(TypeError);
  });

  it('differs between keys', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(libtrustKeyId(a)).not.toBe(libtrustKeyId(b));
  });
});
