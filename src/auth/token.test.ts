/**
 * Token verification as registry:2 does it (D:registry/auth/token/token.go, accesscontroller.go at v2.8
 * and v3), with every key made here: node:crypto for keys, `openssl` for a root CA, an intermediate and
 * leaves. Each refusal also checks that the error carries a fixed reason and nothing of the token.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, CompactEncrypt, CompactSign, type CompactJWSHeaderParameters, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTokenVerifier,
  jwkThumbprintKid,
  libtrustKeyId,
  TokenError,
  type TokenVerifier,
  type TokenVerifierOptions,
  type VerifiedToken,
} from './token.js';

const ISSUER = 'auth.example.test';
const SERVICE = 'registry.example.test';
const DAY_MS = 86_400_000;
const ACCESS = [{ type: 'repository', name: 'library/app', actions: ['pull', 'push'] }];

type Claims = Record<string, unknown>;
type Header = CompactJWSHeaderParameters;

/** A PKI on disk, made with openssl: keys from node:crypto, certificates valid for 30 days from now. */
class Pki {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-token-'));
  private serial = 1;
  readonly keys = new Map<string, KeyObject>();
  readonly certs = new Map<string, X509Certificate>();

  /** A self-signed certificate for a new key. */
  selfSigned(name: string, key: KeyObject, o: { cn?: string; ca: boolean; keyUsage?: boolean }): X509Certificate {
    this.writeKey(name, key);
    const keyUsage = `keyUsage=critical,${o.ca ? 'keyCertSign,cRLSign,digitalSignature' : 'digitalSignature'}`;
    this.openssl('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${o.cn ?? name}`, '-days', '30',
      '-addext', `basicConstraints=critical,CA:${o.ca ? 'TRUE' : 'FALSE'}`,
      ...(o.keyUsage === false ? [] : ['-addext', keyUsage]),
      '-out', `${name}.pem`);
    return this.load(name);
  }

  /** A certificate for a new key, signed by `issuer`'s key (whatever that certificate says). */
  issued(name: string, key: KeyObject, issuer: string, o: { ca: boolean }): X509Certificate {
    this.writeKey(name, key);
    this.openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    writeFileSync(join(this.dir, `${name}.ext`), [
      `basicConstraints=critical,CA:${o.ca ? 'TRUE' : 'FALSE'}`,
      `keyUsage=critical,${o.ca ? 'keyCertSign,cRLSign,digitalSignature' : 'digitalSignature'}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
    ].join('\n'));
    this.openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`,
      '-set_serial', String(++this.serial), '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    return this.load(name);
  }

  pem(...names: string[]): string {
    return names.map((n) => readFileSync(join(this.dir, `${n}.pem`), 'utf8')).join('\n');
  }

  x5c(...names: string[]): string[] {
    return names.map((n) => this.cert(n).raw.toString('base64'));
  }

  key(name: string): KeyObject {
    const key = this.keys.get(name);
    if (key === undefined) throw new Error(`no key ${name}`);
    return key;
  }

  cert(name: string): X509Certificate {
    const cert = this.certs.get(name);
    if (cert === undefined) throw new Error(`no certificate ${name}`);
    return cert;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private writeKey(name: string, key: KeyObject): void {
    this.keys.set(name, key);
    writeFileSync(join(this.dir, `${name}.key`), key.export({ type: 'pkcs8', format: 'pem' }));
  }

  private load(name: string): X509Certificate {
    const cert = new X509Certificate(readFileSync(join(this.dir, `${name}.pem`)));
    this.certs.set(name, cert);
    return cert;
  }

  private openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' });
  }
}

const ec = (namedCurve = 'P-256'): KeyObject => generateKeyPairSync('ec', { namedCurve }).privateKey;
const rsa = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
let rsaForAlgorithms: KeyObject | undefined;
/** One RSA key for the RS and PS rows: 2048-bit generation is slow. */
const sharedRsa = (): KeyObject => (rsaForAlgorithms ??= rsa());
const ed25519 = (): KeyObject => generateKeyPairSync('ed25519').privateKey;
const pub = (key: KeyObject): KeyObject => createPublicKey(key);
const publicJwk = (key: KeyObject): JWK => pub(key).export({ format: 'jwk' }) as JWK;
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

let pki: Pki;
let now: number;
/** Bundle: the root CA, and two self-signed leaves (RSA and EC) trusted directly. */
let bundle: string;

beforeAll(() => {
  pki = new Pki();
  pki.selfSigned('root', ec(), { cn: 'Berth Test Root', ca: true });
  pki.issued('intermediate', ec('P-384'), 'root', { ca: true });
  pki.issued('chain-leaf', rsa(), 'intermediate', { ca: false });
  pki.issued('ec-chain-leaf', ec(), 'intermediate', { ca: false });
  pki.selfSigned('rsa-leaf', rsa(), { ca: false });
  pki.selfSigned('ec-leaf', ec(), { ca: false });
  // A non-CA certificate with no keyUsage (so nothing but basicConstraints forbids it to sign) and one under it.
  pki.selfSigned('plain-leaf', ec(), { ca: false, keyUsage: false });
  pki.issued('under-non-ca', ec(), 'plain-leaf', { ca: false });
  pki.selfSigned('other-root', ec(), { cn: 'Other Root', ca: true });
  pki.issued('other-leaf', ec(), 'other-root', { ca: false });
  // A forgery: a self-signed "root" with the real root's name, and a leaf under it.
  pki.selfSigned('forged-root', ec(), { cn: 'Berth Test Root', ca: true });
  pki.issued('forged-leaf', ec(), 'forged-root', { ca: false });
  pki.selfSigned('self-signed', ec(), { ca: false });
  bundle = pki.pem('root', 'rsa-leaf', 'ec-leaf');
  now = Date.now() + 1000;
});

afterAll(() => pki.remove());

function claims(at = now, extra: Claims = {}): Claims {
  const s = Math.floor(at / 1000);
  return { iss: ISSUER, sub: 'alice', aud: SERVICE, exp: s + 300, nbf: s - 10, iat: s - 10, jti: 'j1', access: ACCESS, ...extra };
}

/** A compact JWS over any header and payload (CompactSign checks no claims, so bad ones can be made). */
async function sign(key: KeyObject | Uint8Array, header: Header, payload: Claims = claims()): Promise<string> {
  return new CompactSign(utf8(JSON.stringify(payload))).setProtectedHeader(header).sign(key);
}

function verifier(o: Partial<TokenVerifierOptions> = {}): TokenVerifier {
  return createTokenVerifier({ issuer: ISSUER, service: SERVICE, rootCertBundle: bundle, now: () => now, ...o });
}

async function accepted(v: TokenVerifier, token: string): Promise<VerifiedToken> {
  const result = await v.verify(token);
  expect(result.access).toEqual(ACCESS);
  return result;
}

/** Asserts a refusal with `reason` (if given) that leaks nothing of the token. */
async function refused(v: TokenVerifier, token: string, reason?: string | RegExp): Promise<TokenError> {
  const error: unknown = await v.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenError);
  const te = error as TokenError;
  expect(te.code).toBe('INVALID_TOKEN');
  expect(te.message).toBe(`invalid token: ${te.reason}`);
  if (reason !== undefined) expect(te.reason).toMatch(reason);
  for (const part of token.split('.')) {
    for (let i = 0; i + 12 <= part.length; i += 12) expect(te.message).not.toContain(part.slice(i, i + 12));
  }
  expect(te.message).not.toMatch(/[A-Z2-7]{4}:[A-Z2-7]{4}:/);
  return te;
}

describe('accepted tokens', () => {
  it('RS256 by kid = JWK thumbprint of a bundle certificate key', async () => {
    const key = pki.key('rsa-leaf');
    const token = await sign(key, { alg: 'RS256', typ: 'JWT', kid: await jwkThumbprintKid(pub(key)) });
    const result = await accepted(verifier(), token);
    expect(result.subject).toBe('alice');
    expect(result.expiresAt.getTime()).toBe((Math.floor(now / 1000) + 300) * 1000);
  });

  it('ES256 by kid = libtrust key ID of a bundle certificate key', async () => {
    const key = pki.key('ec-leaf');
    await accepted(verifier(), await sign(key, { alg: 'ES256', kid: libtrustKeyId(key) }));
  });

  it('EdDSA by the kid of a jwks entry, and by its thumbprint', async () => {
    const key = ed25519();
    const v = verifier({ jwks: { keys: [{ ...publicJwk(key), kid: 'signing-2024' }] } });
    await accepted(v, await sign(key, { alg: 'EdDSA', kid: 'signing-2024' }));
    await accepted(v, await sign(key, { alg: 'EdDSA', kid: await jwkThumbprintKid(key) }));
    await accepted(v, await sign(key, { alg: 'EdDSA', kid: libtrustKeyId(key) }));
  });

  it.each([
    ['RS256', sharedRsa], ['RS384', sharedRsa], ['RS512', sharedRsa],
    ['PS256', sharedRsa], ['PS384', sharedRsa], ['PS512', sharedRsa],
    ['ES256', () => ec('P-256')], ['ES384', () => ec('P-384')], ['ES512', () => ec('P-521')],
    ['EdDSA', ed25519], ['Ed25519', ed25519],
  ] as const)('%s by default', async (alg, generate) => {
    const key = generate();
    const v = verifier({ jwks: { keys: [publicJwk(key)] } });
    await accepted(v, await sign(key, { alg, kid: await jwkThumbprintKid(key) }));
  });

  it('an embedded jwk that is a trusted key, compared by key material', async () => {
    const key = pki.key('ec-leaf');
    await accepted(verifier(), await sign(key, { alg: 'ES256', jwk: publicJwk(key) }));
    // its own kid member does not matter; the material does
    await accepted(verifier(), await sign(key, { alg: 'ES256', jwk: { ...publicJwk(key), kid: 'whatever' } }));
    const jwksKey = ed25519();
    const v = verifier({ jwks: { keys: [publicJwk(jwksKey)] } });
    await accepted(v, await sign(jwksKey, { alg: 'EdDSA', jwk: publicJwk(jwksKey) }));
  });

  it('an x5c chain leaf → intermediate, whose root is in the bundle', async () => {
    const v = verifier();
    await accepted(v, await sign(pki.key('chain-leaf'), { alg: 'RS256', x5c: pki.x5c('chain-leaf', 'intermediate') }));
    await accepted(v, await sign(pki.key('ec-chain-leaf'), { alg: 'ES256', x5c: pki.x5c('ec-chain-leaf', 'intermediate') }));
    // the root itself may end the chain, and x5c decides before any kid (registry:2's order)
    const header = { alg: 'RS256', kid: 'not-a-key', x5c: pki.x5c('chain-leaf', 'intermediate', 'root') };
    await accepted(v, await sign(pki.key('chain-leaf'), header));
  });

  it('an x5c chain of one leaf that is itself in the bundle', async () => {
    await accepted(verifier(), await sign(pki.key('ec-leaf'), { alg: 'ES256', x5c: pki.x5c('ec-leaf') }));
    await accepted(verifier(), await sign(pki.key('rsa-leaf'), { alg: 'PS256', x5c: pki.x5c('rsa-leaf') }));
  });

  it('an x5c chain whose intermediate is in the bundle', async () => {
    const v = verifier({ rootCertBundle: pki.pem('intermediate') });
    await accepted(v, await sign(pki.key('chain-leaf'), { alg: 'RS256', x5c: pki.x5c('chain-leaf') }));
  });

  it('an embedded jwk carrying its own x5c chain to the bundle (registry:2 v2.8)', async () => {
    const key = pki.key('chain-leaf');
    const jwk = { ...publicJwk(key), x5c: pki.x5c('chain-leaf', 'intermediate') };
    await accepted(verifier(), await sign(key, { alg: 'RS256', jwk }));
  });

  it('HS256/384/512 signed with the configured shared secret', async () => {
    const secret = utf8('a shared secret of at least 32 bytes!');
    const v = verifier({ sharedSecret: secret });
    for (const alg of ['HS256', 'HS384', 'HS512']) await accepted(v, await sign(secret, { alg, kid: 'hmac' }));
  });

  it('aud as a list that contains the service', async () => {
    const key = pki.key('ec-leaf');
    const token = await sign(key, { alg: 'ES256', kid: libtrustKeyId(key) }, claims(now, { aud: ['other', SERVICE] }));
    await accepted(verifier(), token);
  });

  it('exp passed and nbf ahead, both within the 60 s leeway', async () => {
    const key = pki.key('ec-leaf');
    const s = Math.floor(now / 1000);
    const header = { alg: 'ES256', kid: libtrustKeyId(key) };
    await accepted(verifier(), await sign(key, header, claims(now, { exp: s - 50 })));
    await accepted(verifier(), await sign(key, header, claims(now, { nbf: s + 50 })));
    await accepted(verifier({ leewaySeconds: 120 }), await sign(key, header, claims(now, { exp: s - 110 })));
  });

  it('reads sub and access: empty sub is no subject, absent or null access is none, null actions are none', async () => {
    const key = pki.key('ec-leaf');
    const header = { alg: 'ES256', kid: libtrustKeyId(key) };
    const v = verifier();
    const { sub: _sub, access: _access, ...bare } = claims();
    expect(await v.verify(await sign(key, header, bare))).toMatchObject({ subject: undefined, access: [] });
    expect(await v.verify(await sign(key, header, claims(now, { sub: '', access: null })))).toMatchObject({
      subject: undefined,
      access: [],
    });
    const goEmpty = [{ type: 'repository', name: 'a', actions: null }, { type: 'registry', name: 'catalog', actions: ['*'], class: 'x' }];
    expect((await v.verify(await sign(key, header, claims(now, { access: goEmpty })))).access).toEqual([
      { type: 'repository', name: 'a', actions: [] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it("registry:2 v3's thumbprint of an EC key whose coordinate has a leading zero byte", async () => {
    let key = ec();
    for (let i = 0; i < 20_000; i++) {
      const { x, y } = publicJwk(key);
      if (Buffer.from(x ?? '', 'base64url')[0] === 0 || Buffer.from(y ?? '', 'base64url')[0] === 0) break;
      key = ec();
    }
    const { x = '', y = '' } = publicJwk(key);
    const strip = (c: string): string => {
      const bytes = Buffer.from(c, 'base64url');
      const start = bytes.findIndex((b) => b !== 0);
      return bytes.subarray(start).toString('base64url');
    };
    const goKid = await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: strip(x), y: strip(y) });
    expect(goKid).not.toBe(await jwkThumbprintKid(key));
    const v = verifier({ jwks: { keys: [publicJwk(key)] } });
    await accepted(v, await sign(key, { alg: 'ES256', kid: goKid }));
    await accepted(v, await sign(key, { alg: 'ES256', kid: await jwkThumbprintKid(key) }));
  });
});

describe('tokens shaped like real token servers', () => {
  it('registry:2 v2.8 era (docker_auth, GitLab): RS256, x5c chain and libtrust kid, aud a string', async () => {
    const key = pki.key('chain-leaf');
    const s = Math.floor(now / 1000);
    const header = { typ: 'JWT', alg: 'RS256', kid: libtrustKeyId(key), x5c: pki.x5c('chain-leaf', 'intermediate') };
    const payload = {
      iss: ISSUER, sub: 'alice', aud: SERVICE, exp: s + 300, nbf: s - 5, iat: s - 5, jti: '6245311834389066287',
      access: [{ type: 'repository', name: 'library/app', actions: ['pull', 'push'] }],
    };
    const v = createTokenVerifier({ issuer: ISSUER, service: SERVICE, rootCertBundle: pki.pem('root'), now: () => now });
    expect(await v.verify(await sign(key, header, payload))).toEqual({
      subject: 'alice',
      access: ACCESS,
      expiresAt: new Date((s + 300) * 1000),
    });
    // The same server configured the usual docker_auth way: its certificate is the bundle, kid only.
    const direct = createTokenVerifier({ issuer: ISSUER, service: SERVICE, rootCertBundle: pki.pem('rsa-leaf'), now: () => now });
    const rsaKey = pki.key('rsa-leaf');
    await accepted(direct, await sign(rsaKey, { typ: 'JWT', alg: 'RS256', kid: libtrustKeyId(rsaKey) }, payload));
  });

  it('registry:2 v3: kid = JWK thumbprint, keys from a jwks file, aud a list', async () => {
    const key = ec();
    const kid = await jwkThumbprintKid(key);
    const jwksFile = JSON.stringify({ keys: [{ ...publicJwk(key), kid, use: 'sig', alg: 'ES256' }] }, null, 2);
    const v = createTokenVerifier({
      issuer: ISSUER,
      service: SERVICE,
      jwks: JSON.parse(jwksFile) as { keys: JWK[] },
      signingAlgorithms: ['ES256', 'RS256'],
      now: () => now,
    });
    const s = Math.floor(now / 1000);
    const payload = { iss: ISSUER, sub: 'bob', aud: [SERVICE], exp: s + 300, nbf: s, iat: s, jti: 'abc', access: ACCESS };
    expect((await accepted(v, await sign(key, { typ: 'JWT', alg: 'ES256', kid }, payload))).subject).toBe('bob');
  });
});

describe('refused algorithms', () => {
  const rsaKid = async (): Promise<string> => jwkThumbprintKid(pub(pki.key('rsa-leaf')));

  it('alg none, with or without a signature', async () => {
    const body = b64url(claims());
    const kid = await rsaKid();
    for (const alg of ['none', 'None', 'NONE']) {
      await refused(verifier(), `${b64url({ alg, kid })}.${body}.`, 'malformed token');
      await refused(verifier(), `${b64url({ alg, kid })}.${body}.c2lnbmF0dXJl`, 'signing algorithm not allowed');
      await refused(verifier({ sharedSecret: utf8('x'.repeat(32)) }), `${b64url({ alg })}.${body}.AAAA`, 'signing algorithm not allowed');
    }
    await refused(verifier(), `${b64url({ kid })}.${body}.AAAA`, 'signing algorithm not allowed');
  });

  it('HS256 "signed" with the RSA public key (algorithm confusion), with or without a shared secret', async () => {
    const publicPem = pub(pki.key('rsa-leaf')).export({ type: 'spki', format: 'pem' }) as string;
    const forged = await sign(utf8(publicPem), { alg: 'HS256', kid: await rsaKid() });
    await refused(verifier(), forged, 'signing algorithm not allowed');
    await refused(verifier({ sharedSecret: utf8('an entirely different 32+ byte secret') }), forged, 'signature verification failed');
    const der = pub(pki.key('rsa-leaf')).export({ type: 'spki', format: 'der' });
    await refused(verifier(), await sign(new Uint8Array(der), { alg: 'HS256', kid: await rsaKid() }), 'signing algorithm not allowed');
  });

  it('HS256 with no shared secret configured, and HS* when signingAlgorithms leave it out', async () => {
    const secret = utf8('a shared secret of at least 32 bytes!');
    const token = await sign(secret, { alg: 'HS256' });
    await refused(verifier(), token, 'signing algorithm not allowed');
    await refused(verifier({ sharedSecret: secret, signingAlgorithms: ['RS256'] }), token, 'signing algorithm not allowed');
    // a symmetric token naming a certificate is refused even with the secret
    await refused(verifier({ sharedSecret: secret }), await sign(secret, { alg: 'HS256', x5c: pki.x5c('ec-leaf') }), 'untrusted signing key');
  });

  it('an algorithm outside signingAlgorithms', async () => {
    const key = pki.key('ec-leaf');
    await refused(verifier({ signingAlgorithms: ['RS256'] }), await sign(key, { alg: 'ES256', kid: libtrustKeyId(key) }), 'signing algorithm not allowed');
  });

  it('an alg that does not fit the key', async () => {
    const key = pki.key('ec-leaf');
    const es384 = await sign(ec('P-384'), { alg: 'ES384', kid: libtrustKeyId(key) });
    await refused(verifier(), es384, /signing key does not fit|signature verification failed/);
  });
});

describe('refused claims', () => {
  const key = (): KeyObject => pki.key('ec-leaf');
  const signed = async (payload: Claims): Promise<string> => sign(key(), { alg: 'ES256', kid: libtrustKeyId(key()) }, payload);
  const s = (): number => Math.floor(now / 1000);

  it('another issuer, or none', async () => {
    await refused(verifier(), await signed(claims(now, { iss: 'evil.example.test' })), 'issuer not trusted');
    const { iss: _iss, ...noIss } = claims();
    await refused(verifier(), await signed(noIss), 'issuer not trusted');
  });

  it('another audience, a list without the service, or none', async () => {
    await refused(verifier(), await signed(claims(now, { aud: 'other.example.test' })), 'audience does not include this service');
    await refused(verifier(), await signed(claims(now, { aud: ['a', 'b'] })), 'audience does not include this service');
    const { aud: _aud, ...noAud } = claims();
    await refused(verifier(), await signed(noAud), 'audience does not include this service');
  });

  it('expired beyond the leeway', async () => {
    await refused(verifier(), await signed(claims(now, { exp: s() - 61 })), 'token expired');
    await refused(verifier({ leewaySeconds: 0 }), await signed(claims(now, { exp: s() - 1 })), 'token expired');
  });

  it('no exp, or an exp that is not a number', async () => {
    const { exp: _exp, ...noExp } = claims();
    await refused(verifier(), await signed(noExp), 'token has no expiry');
    await refused(verifier(), await signed(claims(now, { exp: String(s() + 300) })), 'malformed claims');
  });

  it('nbf in the future beyond the leeway', async () => {
    await refused(verifier(), await signed(claims(now, { nbf: s() + 61 })), 'token not yet valid');
  });

  it('a sub that is not a string', async () => {
    await refused(verifier(), await signed(claims(now, { sub: 42 })), /malformed/);
  });

  it.each([
    ['an object', { type: 'repository', name: 'a', actions: ['pull'] }],
    ['a string', 'repository:a:pull'],
    ['a list of strings', ['repository:a:pull']],
    ['an entry without actions', [{ type: 'repository', name: 'a' }]],
    ['actions as a string', [{ type: 'repository', name: 'a', actions: 'pull' }]],
    ['a number among actions', [{ type: 'repository', name: 'a', actions: ['pull', 1] }]],
    ['a name that is not a string', [{ type: 'repository', name: 7, actions: ['pull'] }]],
    ['an entry without type', [{ name: 'a', actions: ['pull'] }]],
    ['a null entry', [null]],
    ['one bad entry among good ones', [...ACCESS, { type: 'repository', actions: ['pull'] }]],
  ])('an access claim that is %s', async (_name, access) => {
    await refused(verifier(), await signed(claims(now, { access })), 'malformed access claim');
  });
});

describe('refused keys', () => {
  it('an embedded jwk that is not a trusted key, whatever its kid', async () => {
    const stranger = ec();
    const trustedKid = libtrustKeyId(pki.key('ec-leaf'));
    await refused(verifier(), await sign(stranger, { alg: 'ES256', jwk: publicJwk(stranger) }), 'untrusted signing key');
    await refused(verifier(), await sign(stranger, { alg: 'ES256', jwk: { ...publicJwk(stranger), kid: trustedKid } }), 'untrusted signing key');
    await refused(verifier(), await sign(stranger, { alg: 'ES256', kid: trustedKid, jwk: publicJwk(stranger) }), 'untrusted signing key');
    const octJwk: JWK = { kty: 'oct', k: 'c2VjcmV0' };
    await refused(verifier(), await sign(stranger, { alg: 'ES256', jwk: octJwk }), 'untrusted signing key');
  });

  it('a trusted embedded jwk on a token another key signed', async () => {
    const trusted = publicJwk(pki.key('ec-leaf'));
    await refused(verifier(), await sign(ec(), { alg: 'ES256', jwk: trusted }), 'signature verification failed');
  });

  it('an embedded jwk whose own x5c chain has another key as leaf', async () => {
    const key = ec();
    const jwk = { ...publicJwk(key), x5c: pki.x5c('ec-chain-leaf', 'intermediate') };
    await refused(verifier(), await sign(key, { alg: 'ES256', jwk }), 'embedded key is not the certificate key');
  });

  it('a kid that matches nothing, or no key named at all', async () => {
    const key = pki.key('ec-leaf');
    await refused(verifier(), await sign(key, { alg: 'ES256', kid: 'AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL' }), 'unknown key ID');
    await refused(verifier(), await sign(key, { alg: 'ES256', kid: 'nope' }), 'unknown key ID');
    await refused(verifier(), await sign(key, { alg: 'ES256' }), 'no signing key named in the header');
  });

  it("a trusted key's kid on a token another key signed", async () => {
    await refused(verifier(), await sign(ec(), { alg: 'ES256', kid: libtrustKeyId(pki.key('ec-leaf')) }), 'signature verification failed');
  });
});

describe('refused x5c chains', () => {
  it('a self-signed leaf that is not in the bundle, even with a trusted kid beside it', async () => {
    const key = pki.key('self-signed');
    await refused(verifier(), await sign(key, { alg: 'ES256', x5c: pki.x5c('self-signed') }), /untrusted certificate chain/);
    const kid = libtrustKeyId(pki.key('ec-leaf'));
    await refused(verifier(), await sign(key, { alg: 'ES256', kid, x5c: pki.x5c('self-signed') }), /untrusted certificate chain/);
  });

  it('a forged root with the real root\'s name', async () => {
    const key = pki.key('forged-leaf');
    await refused(verifier(), await sign(key, { alg: 'ES256', x5c: pki.x5c('forged-leaf') }), /untrusted certificate chain/);
    await refused(verifier(), await sign(key, { alg: 'ES256', x5c: pki.x5c('forged-leaf', 'forged-root') }), /untrusted certificate chain/);
  });

  it('a chain to a different root', async () => {
    const key = pki.key('other-leaf');
    await refused(verifier(), await sign(key, { alg: 'ES256', x5c: pki.x5c('other-leaf', 'other-root') }), /untrusted certificate chain/);
  });

  it('a chain that leaves out its intermediate, or is out of order', async () => {
    const key = pki.key('chain-leaf');
    await refused(verifier(), await sign(key, { alg: 'RS256', x5c: pki.x5c('chain-leaf') }), /untrusted certificate chain/);
    await refused(verifier(), await sign(key, { alg: 'RS256', x5c: pki.x5c('chain-leaf', 'root', 'intermediate') }), /untrusted certificate chain/);
  });

  it('a certificate issued by a bundle certificate that is not a CA', async () => {
    const v = verifier({ rootCertBundle: pki.pem('plain-leaf') });
    const plain = pki.key('plain-leaf');
    await accepted(v, await sign(plain, { alg: 'ES256', x5c: pki.x5c('plain-leaf') }));
    const key = pki.key('under-non-ca');
    await refused(v, await sign(key, { alg: 'ES256', x5c: pki.x5c('under-non-ca') }), /untrusted certificate chain/);
    await refused(v, await sign(key, { alg: 'ES256', x5c: pki.x5c('under-non-ca', 'plain-leaf') }), /untrusted certificate chain/);
  });

  it('a tampered certificate', async () => {
    const der = Buffer.from(pki.cert('chain-leaf').raw);
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0xff; // the last byte of the CA's signature
    const x5c = [der.toString('base64'), ...pki.x5c('intermediate')];
    await refused(verifier(), await sign(pki.key('chain-leaf'), { alg: 'RS256', x5c }), /untrusted certificate chain/);
  });

  it('a chain whose leaf did not sign the token', async () => {
    const x5c = pki.x5c('ec-chain-leaf', 'intermediate');
    await refused(verifier(), await sign(ec(), { alg: 'ES256', x5c }), 'signature verification failed');
  });

  it('certificates out of their validity dates (beyond the leeway)', async () => {
    const key = pki.key('chain-leaf');
    const header = { alg: 'RS256', x5c: pki.x5c('chain-leaf', 'intermediate') };
    const later = now + 31 * DAY_MS;
    await refused(verifier({ now: () => later }), await sign(key, header, claims(later)), /untrusted certificate chain \(.*expired\)/);
    const earlier = now - DAY_MS;
    await refused(verifier({ now: () => earlier }), await sign(key, header, claims(earlier)), /untrusted certificate chain \(.*not yet valid\)/);
  });

  it.each([
    ['not a list', 'MIIB'],
    ['an empty list', []],
    ['not base64', ['***']],
    ['base64 of no certificate', [Buffer.from('not a certificate').toString('base64')]],
    ['a number', [42]],
    ['too long', Array.from({ length: 9 }, () => 'MIIB')],
  ])('an x5c that is %s', async (_name, x5c) => {
    await refused(verifier(), await sign(pki.key('ec-leaf'), { alg: 'ES256', x5c: x5c as string[] }), /untrusted certificate chain/);
  });
});

describe('refused token strings', () => {
  it('a bad signature, or a payload changed after signing', async () => {
    const key = pki.key('ec-leaf');
    const token = await sign(key, { alg: 'ES256', kid: libtrustKeyId(key) });
    const [h = '', p = '', sig = ''] = token.split('.');
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    await refused(verifier(), `${h}.${p}.${flipped}`, 'signature verification failed');
    const widened = b64url(claims(now, { access: [{ type: 'repository', name: '*', actions: ['*'] }] }));
    await refused(verifier(), `${h}.${widened}.${sig}`, 'signature verification failed');
  });

  it.each([
    ['empty', ''],
    ['a word', 'token'],
    ['two parts', 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0'],
    ['empty parts', '..'],
    ['dots', 'a.b.c.'],
    ['a Bearer prefix', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.AAAA'],
    ['whitespace', ' eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.AAAA'],
    ['a header that is not JSON', `${Buffer.from('{alg').toString('base64url')}.e30.AAAA`],
    ['a header that is a list', `${b64url(['ES256'])}.e30.AAAA`],
    ['the JSON serialization', JSON.stringify({ payload: 'e30', signatures: [] })],
    ['very long', `${b64url({ alg: 'ES256', pad: 'x'.repeat(70_000) })}.e30.AAAA`],
  ])('garbage: %s', async (_name, token) => {
    await refused(verifier(), token, 'malformed token');
  });

  it('a payload that is not a JSON object', async () => {
    const key = pki.key('ec-leaf');
    const header = { alg: 'ES256', kid: libtrustKeyId(key) };
    const list = await new CompactSign(utf8('[1,2]')).setProtectedHeader(header).sign(key);
    await refused(verifier(), list, /malformed/);
  });

  it('a JWE (five parts)', async () => {
    const secret = utf8('a shared secret of at least 32 bytes!').subarray(0, 32);
    const jwe = await new CompactEncrypt(utf8(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(secret);
    expect(jwe.split('.')).toHaveLength(5);
    await refused(verifier({ sharedSecret: secret }), jwe, 'malformed token');
  });
});

describe('options', () => {
  const base = { issuer: ISSUER, service: SERVICE };

  it('need a key: certificates, a jwks or a shared secret', () => {
    expect(() => createTokenVerifier(base)).toThrow(/needs a signing key/);
    expect(() => createTokenVerifier({ ...base, rootCertBundle: '' })).toThrow(/needs a signing key/);
    expect(() => createTokenVerifier({ ...base, jwks: { keys: [] } })).toThrow(/needs a signing key/);
    expect(() => createTokenVerifier({ ...base, sharedSecret: utf8('x'.repeat(32)) })).not.toThrow();
  });

  it('refuse unknown algorithms, none, short secrets and bad leeway', () => {
    expect(() => createTokenVerifier({ ...base, rootCertBundle: bundle, signingAlgorithms: ['RS256', 'XS1'] })).toThrow(/"XS1"/);
    expect(() => createTokenVerifier({ ...base, rootCertBundle: bundle, signingAlgorithms: ['none'] })).toThrow(/"none"/);
    expect(() => createTokenVerifier({ ...base, sharedSecret: utf8('short') })).toThrow(/32 bytes/);
    expect(() => createTokenVerifier({ ...base, rootCertBundle: bundle, leewaySeconds: -1 })).toThrow(/leeway/);
  });

  it('refuse a certificate that does not parse and a jwks key that is not a public key', () => {
    const bad = '-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n';
    expect(() => createTokenVerifier({ ...base, rootCertBundle: bundle + bad })).toThrow(/certificate 4/);
    expect(() => createTokenVerifier({ ...base, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } })).toThrow(/jwks key 1/);
    expect(() => createTokenVerifier({ ...base, jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] } })).toThrow(/jwks key 1/);
  });

  it('skip PEM blocks other than certificates in the bundle', async () => {
    const keyPem = pki.key('ec-leaf').export({ type: 'pkcs8', format: 'pem' });
    const v = verifier({ rootCertBundle: `${keyPem}\n${pki.pem('ec-leaf')}` });
    const key = pki.key('ec-leaf');
    await accepted(v, await sign(key, { alg: 'ES256', kid: libtrustKeyId(key) }));
  });
});

describe('jwkThumbprintKid', () => {
  it('gives the RFC 7638 §3.1 example thumbprint', async () => {
    const n =
      '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn' +
      '64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91C' +
      'bOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
    const key = createPublicKey({ key: { kty: 'RSA', n, e: 'AQAB' }, format: 'jwk' });
    expect(await jwkThumbprintKid(key)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('is the same for a private key and its public key', async () => {
    const key = ed25519();
    expect(await jwkThumbprintKid(key)).toBe(await jwkThumbprintKid(pub(key)));
  });
});
