/**
 * The `_state` token: registry:2's format (D:registry/handlers/hmac.go): base64url with padding of
 * HMAC-SHA256(secret, json) || json, JSON keys Name, UUID, Offset, StartedAt. Checked here by hand with
 * node:crypto, independently of the codec.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import type { UploadState } from './upload-state.js';
import { createUploadStateCodec } from './upload-state.js';

const SECRET = 'berth-test-secret';
const STATE: UploadState = {
  name: 'library/tiny',
  uuid: '41f2948d-9757-48f7-bc4c-fb6d86687a4f',
  offset: 100_000,
  startedAt: new Date('2026-11-22T11:02:49.123Z'),
};

/** base64url with padding, as Go's base64.URLEncoding. */
function b64url(buf: Buffer): string {
  return buf.toString('base64').replaceAll('+', '-').replaceAll('/', '_');
}

function fromB64url(s: string): Buffer {
  return Buffer.from(s.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
}

/** A token built the way registry:2's packUploadState builds it, from raw JSON text. */
function goToken(secret: string, json: string): string {
  const message = Buffer.from(json, 'utf8');
  return b64url(Buffer.concat([createHmac('sha256', secret).update(message).digest(), message]));
}

function decodeError(token: string, secret = SECRET): RegistryError {
  try {
    createUploadStateCodec(secret).decode(token);
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw new Error(`expected a RegistryError, got ${String(err)}`);
  }
  throw new Error('expected a RegistryError, the token was accepted');
}

describe('upload state codec', () => {
  const codec = createUploadStateCodec(SECRET);

  it('round-trips a state', () => {
    expect(codec.decode(codec.encode(STATE))).toEqual(STATE);
  });

  it.each([
    ['offset 0', { ...STATE, offset: 0 }],
    ['large offset', { ...STATE, offset: 2 ** 40 }],
    ['single-component name', { ...STATE, name: 'busybox' }],
    ['deeply nested name', { ...STATE, name: 'a/b/c/d-e_f.g' }],
    ['whole-second start', { ...STATE, startedAt: new Date('2026-11-22T11:02:49Z') }],
  ])('round-trips %s', (_what, state) => {
    expect(codec.decode(codec.encode(state))).toEqual(state);
  });

  it("is registry:2's format: base64url with padding of HMAC-SHA256 || JSON", () => {
    const token = codec.encode(STATE);
    expect(token).toMatch(/^[A-Za-z0-9_-]+={0,2}$/);
    expect(token.length % 4).toBe(0);

    const raw = fromB64url(token);
    expect(b64url(raw)).toBe(token);
    const mac = raw.subarray(0, 32);
    const message = raw.subarray(32);
    expect(mac.equals(createHmac('sha256', SECRET).update(message).digest())).toBe(true);

    const text = message.toString('utf8');
    expect(text).toBe(
      '{"Name":"library/tiny","UUID":"41f2948d-9757-48f7-bc4c-fb6d86687a4f","Offset":100000,"StartedAt":"2026-11-22T11:02:49.123Z"}',
    );
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['Name', 'UUID', 'Offset', 'StartedAt']);
  });

  it('pads the token when the length needs it', () => {
    // 32 + JSON length is not a multiple of 3 for at least one of these, so '=' must appear.
    const tokens = ['a', 'ab', 'abc'].map((name) => codec.encode({ ...STATE, name }));
    expect(tokens.some((t) => t.endsWith('='))).toBe(true);
    for (const t of tokens) expect(t.length % 4).toBe(0);
  });

  it('decodes a token registry:2 made (Go time with nanoseconds)', () => {
    const token = goToken(
      SECRET,
      '{"Name":"library/tiny","UUID":"41f2948d-9757-48f7-bc4c-fb6d86687a4f","Offset":100000,"StartedAt":"2026-11-22T11:02:49.123456789Z"}',
    );
    expect(codec.decode(token)).toEqual(STATE);
  });

  it('decodes a registry:2 token with a local-time offset', () => {
    const token = goToken(
      SECRET,
      '{"Name":"library/tiny","UUID":"41f2948d-9757-48f7-bc4c-fb6d86687a4f","Offset":100000,"StartedAt":"2026-11-22T12:02:49.123+01:00"}',
    );
    expect(codec.decode(token).startedAt.toISOString()).toBe('2026-11-22T11:02:49.123Z');
  });

  it('is deterministic for one secret and differs across secrets', () => {
    expect(codec.encode(STATE)).toBe(createUploadStateCodec(SECRET).encode(STATE));
    expect(createUploadStateCodec('other').encode(STATE)).not.toBe(codec.encode(STATE));
  });
});

describe('upload state codec refuses with BLOB_UPLOAD_INVALID', () => {
  const codec = createUploadStateCodec(SECRET);
  const token = codec.encode(STATE);
  const raw = fromB64url(token);
  const json = raw.subarray(32).toString('utf8');
  const altered = json.replace('"Offset":100000', '"Offset":0');

  const cases: readonly (readonly [string, string])[] = [
    ['signed with another secret', createUploadStateCodec('another-secret').encode(STATE)],
    ['truncated by one data character', token.replace(/=+$/, '').slice(0, -1)],
    ['truncated by one byte', b64url(raw.subarray(0, -1))],
    ['truncated to half', token.slice(0, Math.floor(token.length / 2))],
    ['truncated to the MAC', b64url(raw.subarray(0, 32))],
    ['shorter than the MAC', b64url(raw.subarray(0, 16))],
    ['JSON altered, MAC kept', b64url(Buffer.concat([raw.subarray(0, 32), Buffer.from(altered)]))],
    ['JSON altered and re-signed with the wrong key', goToken('wrong-key', altered)],
    ['MAC flipped', b64url(Buffer.concat([Buffer.from(raw.subarray(0, 32)).map((b) => b ^ 1), raw.subarray(32)]))],
    ['empty', ''],
    ['padding stripped or added (only the canonical spelling counts)', token.endsWith('=') ? token.replace(/=+$/, '') : `${token}=`],
    ['a junk character inside', `${token.slice(0, 10)}.${token.slice(10)}`],
    ['standard alphabet instead of URL alphabet', raw.toString('base64') === token ? `${token}==` : raw.toString('base64')],
    ['garbage', 'not a token!'],
    ['long garbage', 'x'.repeat(200)],
    ['unsigned JSON', b64url(Buffer.from(json))],
    ['signed, not JSON', goToken(SECRET, 'not json at all')],
    ['signed JSON null', goToken(SECRET, 'null')],
    ['signed JSON number', goToken(SECRET, '42')],
    ['signed, lower-case keys', goToken(SECRET, JSON.stringify({ name: 'a', uuid: 'b', offset: 0, startedAt: '2026-11-22T11:02:49Z' }))],
    ['signed, Offset a string', goToken(SECRET, json.replace('"Offset":100000', '"Offset":"100000"'))],
    ['signed, Offset fractional', goToken(SECRET, json.replace('"Offset":100000', '"Offset":1.5'))],
    ['signed, Name missing', goToken(SECRET, JSON.stringify({ UUID: STATE.uuid, Offset: 0, StartedAt: '2026-11-22T11:02:49Z' }))],
    ['signed, StartedAt not a date', goToken(SECRET, json.replace('2026-11-22T11:02:49.123Z', 'yesterday'))],
    ['signed, StartedAt missing', goToken(SECRET, JSON.stringify({ Name: 'a', UUID: STATE.uuid, Offset: 0 }))],
  ];

  it.each(cases)('%s', (_what, bad) => {
    expect(decodeError(bad).code).toBe('BLOB_UPLOAD_INVALID');
  });

  it('is the MAC check, not the parse, that refuses another secret', () => {
    const err = decodeError(createUploadStateCodec('another-secret').encode(STATE));
    expect(err.message).toContain('not signed by this registry');
  });
});
