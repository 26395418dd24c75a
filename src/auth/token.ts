/**
 * Bearer token verification, as registry:2's `auth.token` does it, so that a registry:2 deployment's token
 * server works unchanged in front of Berth.
 *
 * A token is a compact JWS (three parts). Its header `alg` must be in the allowed set: by default every
 * asymmetric algorithm jose supports; `none` never; HS256/384/512 only when a shared secret is configured,
 * and then only with that secret (so a token "signed" with a public key as an HMAC secret gets nowhere).
 *
 * The key is found in registry:2's order, and the first of these present in the header decides; a bad one
 * is refused, never skipped for the next:
 * 1. `x5c`: the chain must lead to a certificate of `rootCertBundle` (see x509.ts); the leaf's key verifies.
 * 2. `jwk`: the embedded key must be, by key material, one of the trusted keys, or carry its own `x5c`
 *    chain that leads to the bundle with that key as its leaf (registry:2 v2.8 accepts both).
 * 3. `kid`: a trusted key whose libtrust key ID (v2.8-era token servers), RFC 7638 SHA-256 JWK thumbprint
 *    (registry:2 v3) or jwks entry `kid` equals it. For EC keys registry:2 v3 computes the thumbprint from
 *    coordinates without their leading zero bytes, which differs from RFC 7638 for about one key in 128;
 *    that variant is accepted too.
 * Trusted keys are the public keys of every certificate in the bundle and every key in the jwks.
 *
 * Then the claims: `iss` equals the issuer, `aud` (a string or a list) contains the service, `exp` is
 * required, and `exp` and `nbf` hold within the leeway. `access` must be a list of `{type, name, actions}`;
 * a malformed one refuses the token rather than being dropped. Errors carry a fixed reason and never any
 * part of the token or of a key.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, type X509Certificate } from 'node:crypto';
import {
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import type { AccessItem } from './access.js';
import { libtrustKeyId } from './libtrust.js';
import {
  CertificateChainError,
  parseCertificateBundle,
  parseX5c,
  verifyCertificateChain,
  type ChainCheck,
} from './x509.js';

export { libtrustKeyId } from './libtrust.js';

/** The asymmetric JWS algorithms jose supports on Node 20: the default allowed set. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
];
/** The HMAC algorithms, allowed only with a configured shared secret. */
export const HMAC_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512'];

const DEFAULT_LEEWAY_SECONDS = 60;
/** RFC 7518 §3.2: an HMAC key at least as long as the hash; 256 bits for HS256. */
const MIN_SHARED_SECRET_BYTES = 32;
/** Longer than any real token (an x5c chain of three certificates is about 5 KiB). */
const MAX_TOKEN_LENGTH = 64 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const KEY_TYPES = new Set(['RSA', 'EC', 'OKP']);
const PUBLIC_JWK_MEMBERS = ['kty', 'crv', 'n', 'e', 'x', 'y'] as const;

/** The content of a registry:2 v3 `jwks` file. */
export interface JsonWebKeySet {
  readonly keys: readonly JWK[];
}

export interface TokenVerifierOptions {
  /** `iss` must equal it. */
  readonly issuer: string;
  /** `aud` (a string or a list) must contain it. */
  readonly service: string;
  /** PEM text with one or more CA or signing certificates (registry:2 `rootcertbundle`). */
  readonly rootCertBundle?: string;
  /** The parsed content of registry:2 v3's `jwks` file. */
  readonly jwks?: JsonWebKeySet;
  /**
   * Allowed JWS algorithms (registry:2 `signingalgorithms`); default ASYMMETRIC_ALGORITHMS, plus
   * HMAC_ALGORITHMS when sharedSecret is set. HS* listed without a sharedSecret are never accepted.
   */
  readonly signingAlgorithms?: readonly string[];
  /** When set (at least 32 bytes), HS256/384/512 tokens are accepted if signed with it. */
  readonly sharedSecret?: Uint8Array;
  /** Clock skew allowed for `exp`, `nbf` and certificate validity; default 60. */
  readonly leewaySeconds?: number;
  /** The clock, in ms since the epoch; default Date.now. */
  readonly now?: () => number;
}

export interface VerifiedToken {
  /** `sub`, or undefined when absent or empty. */
  readonly subject: string | undefined;
  /** The `access` claim; empty when absent. */
  readonly access: AccessItem[];
  readonly expiresAt: Date;
}

export interface TokenVerifier {
  /** The claims of a token that passes every check. @throws TokenError otherwise. */
  verify(token: string): Promise<VerifiedToken>;
}

/** A token refused; `reason` is a fixed phrase, safe to log and to show. */
export class TokenError extends Error {
  readonly code = 'INVALID_TOKEN';
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
    this.name = 'TokenError';
  }
}

/** The RFC 7638 SHA-256 thumbprint of `key`'s public half, as registry:2 v3 token servers put in `kid`. */
export async function jwkThumbprintKid(key: KeyObject): Promise<string> {
  return calculateJwkThumbprint(publicKeyOf(key).export({ format: 'jwk' }) as JWK, 'sha256');
}

interface TrustedKeys {
  /** Every key ID (libtrust, thumbprints, jwks `kid`) to the keys it names. */
  readonly byKid: ReadonlyMap<string, readonly KeyObject[]>;
  /** SPKI DER (base64) to the key. */
  readonly bySpki: ReadonlyMap<string, KeyObject>;
}

/** What `verify` works from, fixed when the verifier is made. */
interface Context {
  readonly issuer: string;
  readonly service: string;
  readonly allowed: ReadonlySet<string>;
  readonly sharedSecret: Uint8Array | undefined;
  readonly leewaySeconds: number;
  readonly roots: readonly X509Certificate[];
  readonly now: () => number;
  /** The trusted keys by ID and by material, indexed on first use (thumbprints are async). */
  readonly trusted: () => Promise<TrustedKeys>;
}

/**
 * A verifier for `o`. Certificates and keys are parsed here; key IDs are computed on first use.
 * @throws TypeError for unusable options: no key at all, an unknown algorithm, a short secret, a
 *   certificate or jwks key that does not parse.
 */
export function createTokenVerifier(o: TokenVerifierOptions): TokenVerifier {
  const allowed = allowedAlgorithms(o);
  const leewaySeconds = o.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS;
  if (!Number.isFinite(leewaySeconds) || leewaySeconds < 0) throw new TypeError('leewaySeconds must be >= 0');
  if (o.issuer === '' || o.service === '') throw new TypeError('token auth needs an issuer and a service');
  const roots = o.rootCertBundle === undefined ? [] : parseCertificateBundle(o.rootCertBundle);
  const jwksKeys = (o.jwks?.keys ?? []).map(importJwksKey);
  if (roots.length === 0 && jwksKeys.length === 0 && o.sharedSecret === undefined) {
    throw new TypeError('token auth needs a signing key: certificates in rootCertBundle, a jwks or a sharedSecret');
  }
  let index: Promise<TrustedKeys> | undefined;
  const ctx: Context = {
    issuer: o.issuer,
    service: o.service,
    allowed,
    sharedSecret: o.sharedSecret,
    leewaySeconds,
    roots,
    now: o.now ?? Date.now,
    trusted: () => (index ??= indexTrustedKeys(roots, jwksKeys)),
  };
  return { verify: (token) => verify(ctx, token) };
}

async function verify(ctx: Context, token: string): Promise<VerifiedToken> {
  const header = readHeader(token);
  const alg = header.alg;
  if (typeof alg !== 'string' || !ctx.allowed.has(alg)) throw new TokenError('signing algorithm not allowed');
  const keys = await keysFor(ctx, header, alg);
  const options = {
    algorithms: [alg],
    issuer: ctx.issuer,
    audience: ctx.service,
    requiredClaims: ['exp'],
    clockTolerance: ctx.leewaySeconds,
    currentDate: new Date(ctx.now()),
  };
  for (const [i, key] of keys.entries()) {
    try {
      const { payload } = await jwtVerify(token, key, options);
      return toVerifiedToken(payload);
    } catch (e) {
      // Several keys can share a kid; claims are checked only after a signature verifies.
      if (e instanceof errors.JWSSignatureVerificationFailed && i < keys.length - 1) continue;
      throw asTokenError(e);
    }
  }
  throw new TokenError('untrusted signing key');
}

/** The keys the header names, in registry:2's order: x5c, then jwk, then kid. */
async function keysFor(
  ctx: Context,
  header: ProtectedHeaderParameters,
  alg: string,
): Promise<readonly (KeyObject | Uint8Array)[]> {
  if (HMAC_ALGORITHMS.includes(alg)) {
    if (ctx.sharedSecret === undefined || header.x5c !== undefined || header.jwk !== undefined) {
      throw new TokenError('untrusted signing key');
    }
    return [ctx.sharedSecret];
  }
  const check: ChainCheck = { roots: ctx.roots, now: ctx.now(), leewayMs: ctx.leewaySeconds * 1000 };
  if (header.x5c !== undefined) return [chainLeafKey(header.x5c, check)];
  const trusted = await ctx.trusted();
  if (header.jwk !== undefined) return [embeddedKey(header.jwk, trusted, check)];
  if (typeof header.kid === 'string' && header.kid !== '') {
    const keys = trusted.byKid.get(header.kid);
    if (keys === undefined) throw new TokenError('unknown key ID');
    return keys;
  }
  throw new TokenError('no signing key named in the header');
}

function allowedAlgorithms(o: TokenVerifierOptions): ReadonlySet<string> {
  const requested = o.signingAlgorithms ?? [...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS];
  for (const alg of requested) {
    if (!ASYMMETRIC_ALGORITHMS.includes(alg) && !HMAC_ALGORITHMS.includes(alg)) {
      throw new TypeError(`unsupported signing algorithm ${JSON.stringify(alg)}`);
    }
  }
  if (o.sharedSecret !== undefined && o.sharedSecret.byteLength < MIN_SHARED_SECRET_BYTES) {
    throw new TypeError(`sharedSecret must be at least ${MIN_SHARED_SECRET_BYTES} bytes`);
  }
  // registry:2 lists HS* among its defaults too, but with public keys they can never verify; here they
  // need the secret, and without one they are simply never allowed.
  return new Set(requested.filter((alg) => o.sharedSecret !== undefined || !HMAC_ALGORITHMS.includes(alg)));
}

function readHeader(token: string): ProtectedHeaderParameters {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) {
    throw new TokenError('malformed token');
  }
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new TokenError('malformed token');
  }
}

function chainLeafKey(x5c: unknown, check: ChainCheck): KeyObject {
  try {
    return verifyCertificateChain(parseX5c(x5c), check).publicKey;
  } catch (e) {
    if (e instanceof CertificateChainError) throw new TokenError(`untrusted certificate chain (${e.reason})`);
    throw e;
  }
}

function embeddedKey(
  jwk: unknown,
  trusted: TrustedKeys,
  check: ChainCheck,
): KeyObject {
  if (!isRecord(jwk)) throw new TokenError('malformed token');
  const key = publicKeyFromJwk(jwk);
  if (key === undefined) throw new TokenError('untrusted signing key');
  if (jwk['x5c'] !== undefined) {
    const leafKey = chainLeafKey(jwk['x5c'], check);
    if (spkiOf(leafKey) !== spkiOf(key)) throw new TokenError('embedded key is not the certificate key');
    return leafKey;
  }
  const known = trusted.bySpki.get(spkiOf(key));
  if (known === undefined) throw new TokenError('untrusted signing key');
  return known;
}

function importJwksKey(jwk: JWK, index: number): { readonly key: KeyObject; readonly kid: string | undefined } {
  const key = isRecord(jwk) ? publicKeyFromJwk(jwk) : undefined;
  if (key === undefined) throw new TypeError(`jwks key ${index + 1} is not an RSA, EC or OKP public key`);
  return { key, kid: typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined };
}

/** The public key of a JWK's public members, or undefined if they do not make one. */
function publicKeyFromJwk(jwk: Readonly<Record<string, unknown>>): KeyObject | undefined {
  if (typeof jwk['kty'] !== 'string' || !KEY_TYPES.has(jwk['kty'])) return undefined;
  const members: JsonWebKey = {};
  for (const name of PUBLIC_JWK_MEMBERS) {
    const value = jwk[name];
    if (value !== undefined) {
      if (typeof value !== 'string') return undefined;
      members[name] = value;
    }
  }
  try {
    return createPublicKey({ key: members, format: 'jwk' });
  } catch {
    return undefined;
  }
}

async function indexTrustedKeys(
  roots: readonly X509Certificate[],
  jwksKeys: readonly { readonly key: KeyObject; readonly kid: string | undefined }[],
): Promise<TrustedKeys> {
  const byKid = new Map<string, KeyObject[]>();
  const bySpki = new Map<string, KeyObject>();
  const entries = [...roots.map((cert) => ({ key: cert.publicKey, kid: undefined })), ...jwksKeys];
  for (const { key, kid } of entries) {
    bySpki.set(spkiOf(key), key);
    const ids = new Set([libtrustKeyId(key), ...(await thumbprintKids(key))]);
    if (kid !== undefined) ids.add(kid);
    for (const id of ids) {
      const named = byKid.get(id) ?? [];
      if (!named.some((k) => k.equals(key))) named.push(key);
      byKid.set(id, named);
    }
  }
  return { byKid, bySpki };
}

/** The RFC 7638 thumbprint, plus registry:2 v3's variant for EC keys with a leading zero coordinate byte. */
async function thumbprintKids(key: KeyObject): Promise<string[]> {
  let jwk: JWK;
  try {
    jwk = key.export({ format: 'jwk' }) as JWK;
  } catch {
    return []; // a key type JWK has no form for (e.g. DSA): reachable by libtrust ID only
  }
  const ids = [await calculateJwkThumbprint(jwk, 'sha256')];
  if (jwk.kty === 'EC' && jwk.x !== undefined && jwk.y !== undefined) {
    const goStyle = { ...jwk, x: stripLeadingZeros(jwk.x), y: stripLeadingZeros(jwk.y) };
    ids.push(await calculateJwkThumbprint(goStyle, 'sha256'));
  }
  return ids;
}

/** A base64url big-endian integer without leading zero bytes, as Go's big.Int.Bytes() gives it. */
function stripLeadingZeros(b64url: string): string {
  const bytes = Buffer.from(b64url, 'base64url');
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  return bytes.subarray(start).toString('base64url');
}

function toVerifiedToken(payload: JWTPayload): VerifiedToken {
  const { sub, exp } = payload;
  if (sub !== undefined && typeof sub !== 'string') throw new TokenError('malformed sub claim');
  if (typeof exp !== 'number') throw new TokenError('token has no expiry');
  return {
    subject: sub === undefined || sub === '' ? undefined : sub,
    access: parseAccess(payload['access']),
    expiresAt: new Date(exp * 1000),
  };
}

/**
 * The `access` claim. Absent or null is no access. `actions: null` is an empty list, which is how a Go
 * token server encodes one; any other shape refuses the token.
 */
function parseAccess(claim: unknown): AccessItem[] {
  if (claim === undefined || claim === null) return [];
  if (!Array.isArray(claim)) throw new TokenError('malformed access claim');
  return claim.map((entry: unknown): AccessItem => {
    if (!isRecord(entry)) throw new TokenError('malformed access claim');
    const { type, name, actions } = entry;
    if (typeof type !== 'string' || typeof name !== 'string') throw new TokenError('malformed access claim');
    if (actions === null) return { type, name, actions: [] };
    if (!Array.isArray(actions) || !actions.every((a): a is string => typeof a === 'string')) {
      throw new TokenError('malformed access claim');
    }
    return { type, name, actions: [...actions] };
  });
}

function asTokenError(e: unknown): TokenError {
  if (e instanceof TokenError) return e;
  if (e instanceof errors.JWTExpired) return new TokenError('token expired');
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'exp' && e.reason === 'missing') return new TokenError('token has no expiry');
    if (e.claim === 'nbf') return new TokenError('token not yet valid');
    if (e.claim === 'iss') return new TokenError('issuer not trusted');
    if (e.claim === 'aud') return new TokenError('audience does not include this service');
    return new TokenError('malformed claims');
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return new TokenError('signature verification failed');
  if (e instanceof errors.JOSEAlgNotAllowed) return new TokenError('signing algorithm not allowed');
  if (e instanceof errors.JWTInvalid || e instanceof errors.JWSInvalid) return new TokenError('malformed token');
  return new TokenError('signing key does not fit the algorithm');
}

function publicKeyOf(key: KeyObject): KeyObject {
  if (key.type === 'secret') throw new TypeError('a JWK thumbprint needs an asymmetric key');
  return key.type === 'private' ? createPublicKey(key) : key;
}

function spkiOf(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
