/**
 * libtrust key IDs: the `kid` that registry:2 v2.8 and the token servers of its generation (docker_auth,
 * GitLab, Harbor) put in token headers. The ID is the SHA-256 of the key's DER SubjectPublicKeyInfo,
 * truncated to 240 bits, base32-encoded (RFC 4648 alphabet; 240 bits need no padding) and split into 12
 * groups of 4 characters joined by `:`, e.g. `PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6`.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The libtrust key ID of `key`'s public half (a private key is reduced to its public key first). */
export function libtrustKeyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.type !== 'public') throw new TypeError('a libtrust key ID needs an asymmetric key');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const truncated = createHash('sha256').update(spki).digest().subarray(0, 30);
  return (base32(truncated).match(/.{4}/g) ?? []).join(':');
}

/** RFC 4648 base32 without padding; exact for inputs whose bit length is a multiple of 5. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(buffer >> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}
