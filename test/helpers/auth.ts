/**
 * Auth fixtures for end-to-end tests, every key made here:
 *
 * - `writeHtpasswd(dir, users)`: an htpasswd file of bcrypt entries (bcryptjs, cost 5 unless told).
 * - `htpasswdAuth`, `builtinAuth`, `tokenAuth`: AuthConfig objects for `startBerth({ auth })`, shaped as
 *   `loadConfig` would give them.
 * - `createTokenServer()`: a stand-in for an external registry:2-style token server. `openssl` makes an RSA
 *   CA and a leaf certificate under a temporary directory; tokens are signed with jose (RS256) over any
 *   claims and any header, naming the key by an `x5c` chain, a libtrust `kid` (registry:2 v2.8 era) or a
 *   JWK-thumbprint `kid` (registry:2 v3), so a test can forge every kind of token: unsigned, HMAC'd with a
 *   public key, from a look-alike CA, and so on. It writes the files registry:2's `auth.token` reads:
 *   `rootcertbundle` PEMs and a `jwks` file.
 * - Token and Basic helpers against a Berth, a storage tree snapshot (to prove a refused write changed
 *   nothing), and a leak check for error answers.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac, createPublicKey, type KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { CompactSign, calculateJwkThumbprint, type CompactJWSHeaderParameters, type JWK } from 'jose';
import { libtrustKeyId } from '../../src/auth/libtrust.js';
import type { AccessRule } from '../../src/auth/rules.js';
import type { BuiltinAuthConfig, HtpasswdAuthConfig, TokenAuthConfig } from '../../src/config/schema.js';
import { type Image, type RawResponse, raw } from './oci.js';

const execFileAsync = promisify(execFile);

// ---- htpasswd and AuthConfig ----

/** Writes `<dir>/<file>` with one bcrypt entry per user (`user: password`). @returns its path. */
export async function writeHtpasswd(
  dir: string,
  users: Readonly<Record<string, string>>,
  opts: { readonly cost?: number; readonly file?: string } = {},
): Promise<string> {
  const lines = Object.entries(users).map(([user, password]) => `${user}:${bcrypt.hashSync(password, opts.cost ?? 5)}`);
  const path = join(dir, opts.file ?? 'htpasswd');
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** registry:2's `auth.htpasswd`. */
export function htpasswdAuth(path: string, realm = 'berth-test-realm'): HtpasswdAuthConfig {
  return { kind: 'htpasswd', realm, path };
}

export interface BuiltinAuthOptions {
  readonly htpasswd: string;
  readonly rules: readonly AccessRule[];
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  readonly service?: string;
  readonly issuer?: string;
  readonly realm?: string;
  readonly signingkey?: string;
  readonly tokenttlMs?: number;
}

/** Berth's `auth.builtin` (defaults as config/auth.ts: service and issuer `berth`, realm from the request). */
export function builtinAuth(o: BuiltinAuthOptions): BuiltinAuthConfig {
  return {
    kind: 'builtin',
    service: o.service ?? 'berth',
    issuer: o.issuer ?? 'berth',
    realm: o.realm,
    htpasswd: o.htpasswd,
    signingkey: o.signingkey,
    tokenttlMs: o.tokenttlMs ?? 300_000,
    groups: o.groups ?? {},
    rules: o.rules,
  };
}

export interface TokenAuthOptions {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly rootcertbundle?: string;
  readonly jwks?: string;
  readonly autoredirect?: boolean;
  readonly signingalgorithms?: readonly string[];
}

/** registry:2's `auth.token`. */
export function tokenAuth(o: TokenAuthOptions): TokenAuthConfig {
  return {
    kind: 'token',
    realm: o.realm,
    service: o.service,
    issuer: o.issuer,
    rootcertbundle: o.rootcertbundle,
    jwks: o.jwks,
    autoredirect: o.autoredirect ?? false,
    signingalgorithms: o.signingalgorithms,
  };
}

// ---- an external token server ----

/** One `{type, name, actions}` entry of a token's `access` claim. */
export interface AccessClaim {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** `repository:<name>:<actions>` as an access claim entry. */
export const repoAccess = (name: string, ...actions: string[]): AccessClaim => ({ type: 'repository', name, actions });

/** A certificate made by the token server's openssl, with its key. */
export interface Issued {
  readonly name: string;
  readonly key: KeyObject;
  readonly cert: X509Certificate;
  /** Path of the PEM certificate. */
  readonly pemPath: string;
  readonly pem: string;
  /** Standard base64 DER, as an `x5c` entry. */
  readonly x5c: string;
}

/** How a token names its key (what goes into the JWS header besides `alg` and `typ`). */
export type KeyNaming =
  | { readonly by: 'x5c'; readonly chain?: readonly string[] }
  | { readonly by: 'libtrust'; readonly kid?: string }
  | { readonly by: 'thumbprint' }
  | { readonly by: 'x5c+libtrust' }
  | { readonly by: 'kid'; readonly kid: string }
  | { readonly by: 'jwk'; readonly jwk: JWK }
  | { readonly by: 'nothing' };

export interface SignOptions {
  /** How the key is named; default `x5c` with the [leaf, CA] chain. */
  readonly naming?: KeyNaming;
  /** The key that signs; default the leaf's. */
  readonly key?: KeyObject;
  /** Default RS256 (ES256 for an EC key). */
  readonly alg?: string;
  /** More header parameters, merged last. */
  readonly header?: Readonly<Record<string, unknown>>;
}

export interface ExternalTokenServer {
  readonly dir: string;
  readonly issuer: string;
  readonly service: string;
  /** The RSA CA and the RSA leaf it issued (the token signing certificate). */
  readonly ca: Issued;
  readonly leaf: Issued;
  /** A rootcertbundle with the CA only (x5c chains verify against it). */
  readonly caBundlePath: string;
  /** A rootcertbundle with the CA and the leaf (what docker_auth setups hand registry:2: kid lookups find the leaf). */
  readonly fullBundlePath: string;
  /** A registry:2 v3 `jwks` file with the leaf's public key, `kid` = its RFC 7638 thumbprint. */
  readonly jwksPath: string;
  /** The leaf key's libtrust key ID (v2.8 `kid`). */
  readonly libtrustKid: string;
  /** The leaf key's RFC 7638 SHA-256 thumbprint (v3 `kid`). */
  readonly thumbprintKid: string;
  /** Every PEM and base64 text of the keys and certificates, to check nothing of them leaks. */
  readonly keyMaterial: readonly string[];
  /**
   * Claims of a good token for `access`: iss, aud = service, sub, iat, nbf = now - 1 s, exp = now + 300 s, jti.
   * `over` replaces or (with undefined) removes claims.
   */
  claims(access: readonly AccessClaim[], over?: Readonly<Record<string, unknown>>): Record<string, unknown>;
  /** A compact JWS of exactly `claims`, signed with jose. */
  sign(claims: Readonly<Record<string, unknown>>, o?: SignOptions): Promise<string>;
  /** The same with `claims(access)`: a token this server would issue. */
  token(access: readonly AccessClaim[], o?: SignOptions): Promise<string>;
  /** An `alg: none` token (empty signature, or `signature` when given). */
  unsigned(claims: Readonly<Record<string, unknown>>, header?: Readonly<Record<string, unknown>>, signature?: string): string;
  /** An HS256 token whose HMAC secret is `secret` (e.g. the leaf's public key PEM: the key-confusion attack). */
  hmac(claims: Readonly<Record<string, unknown>>, secret: Uint8Array | string, header?: Readonly<Record<string, unknown>>): string;
  /**
   * A new certificate: self-signed, or issued by another one made here. `subject` defaults to `/CN=<name>`.
   * `rsa` keys unless `keyType: 'ec'`.
   */
  makeCert(name: string, o: { readonly ca: boolean; readonly issuer?: Issued; readonly subject?: string; readonly keyType?: 'rsa' | 'ec'; readonly days?: number }): Promise<Issued>;
  close(): Promise<void>;
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A registry:2-style token server's keys and signer (nothing listens: tests hand the tokens straight to
 * Berth). The CA is `/CN=Berth Test Token CA`; the leaf `/CN=berth-test-token-signer`.
 */
export async function createTokenServer(o: { issuer?: string; service?: string } = {}): Promise<ExternalTokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-token-server-'));
  const issuer = o.issuer ?? 'berth-test-token-server';
  const service = o.service ?? 'berth-test-registry';
  let serial = 1;

  const openssl = async (...args: string[]): Promise<void> => {
    await execFileAsync('openssl', args, { cwd: dir, timeout: 60_000 });
  };

  async function makeCert(
    name: string,
    c: { readonly ca: boolean; readonly issuer?: Issued; readonly subject?: string; readonly keyType?: 'rsa' | 'ec'; readonly days?: number },
  ): Promise<Issued> {
    const keyPath = `${name}.key`;
    if (c.keyType === 'ec') await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath);
    else await openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyPath);
    const subject = c.subject ?? `/CN=${name}`;
    const days = String(c.days ?? 30);
    const constraints = `basicConstraints=critical,CA:${c.ca ? 'TRUE' : 'FALSE'}`;
    const usage = `keyUsage=critical,${c.ca ? 'keyCertSign,cRLSign,digitalSignature' : 'digitalSignature'}`;
    if (c.issuer === undefined) {
      await openssl('req', '-x509', '-new', '-key', keyPath, '-subj', subject, '-days', days, '-addext', constraints, '-addext', usage, '-out', `${name}.pem`);
    } else {
      await openssl('req', '-new', '-key', keyPath, '-subj', subject, '-out', `${name}.csr`);
      await writeFile(join(dir, `${name}.ext`), [constraints, usage, 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'].join('\n'));
      await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', c.issuer.pemPath, '-CAkey', `${c.issuer.name}.key`,
        '-set_serial', String(++serial), '-days', days, '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    }
    const pem = await readFile(join(dir, `${name}.pem`), 'utf8');
    const cert = new X509Certificate(pem);
    const key = createPrivateKey(await readFile(join(dir, keyPath), 'utf8'));
    return { name, key, cert, pemPath: join(dir, `${name}.pem`), pem, x5c: cert.raw.toString('base64') };
  }

  try {
    const ca = await makeCert('ca', { ca: true, subject: '/CN=Berth Test Token CA' });
    const leaf = await makeCert('leaf', { ca: false, issuer: ca, subject: '/CN=berth-test-token-signer' });
    const caBundlePath = join(dir, 'ca-bundle.pem');
    const fullBundlePath = join(dir, 'full-bundle.pem');
    await writeFile(caBundlePath, ca.pem);
    await writeFile(fullBundlePath, `${ca.pem}\n${leaf.pem}`);
    const leafPublic = createPublicKey(leaf.key);
    const libtrustKid = libtrustKeyId(leafPublic);
    const publicJwk = leafPublic.export({ format: 'jwk' }) as JWK;
    const thumbprintKid = await calculateJwkThumbprint(publicJwk, 'sha256');
    const jwksPath = join(dir, 'jwks.json');
    await writeFile(jwksPath, JSON.stringify({ keys: [{ ...publicJwk, kid: thumbprintKid, alg: 'RS256', use: 'sig' }] }));
    const keyMaterial = [
      ca.pem, leaf.pem, ca.x5c, leaf.x5c,
      ca.key.export({ type: 'pkcs8', format: 'pem' }).toString(), leaf.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      leafPublic.export({ type: 'spki', format: 'pem' }).toString(), String(publicJwk.n),
    ];

    const headerFor = (key: KeyObject, o: SignOptions): Record<string, unknown> => {
      const alg = o.alg ?? (key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256');
      const naming = o.naming ?? { by: 'x5c' };
      const header: Record<string, unknown> = { typ: 'JWT', alg };
      switch (naming.by) {
        case 'x5c':
          header['x5c'] = [...(naming.chain ?? [leaf.x5c, ca.x5c])];
          break;
        case 'libtrust':
          header['kid'] = naming.kid ?? libtrustKid;
          break;
        case 'thumbprint':
          header['kid'] = thumbprintKid;
          break;
        case 'x5c+libtrust':
          header['kid'] = libtrustKid;
          header['x5c'] = [leaf.x5c, ca.x5c];
          break;
        case 'kid':
          header['kid'] = naming.kid;
          break;
        case 'jwk':
          header['jwk'] = naming.jwk;
          break;
        case 'nothing':
          break;
      }
      return { ...header, ...o.header };
    };

    const server: ExternalTokenServer = {
      dir,
      issuer,
      service,
      ca,
      leaf,
      caBundlePath,
      fullBundlePath,
      jwksPath,
      libtrustKid,
      thumbprintKid,
      keyMaterial,
      claims(access, over = {}) {
        const now = Math.floor(Date.now() / 1000);
        const claims: Record<string, unknown> = {
          iss: issuer,
          sub: 'external-user',
          aud: service,
          exp: now + 300,
          nbf: now - 1,
          iat: now - 1,
          jti: createHash('sha256').update(`${now}${Math.random()}`).digest('hex').slice(0, 24),
          access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions] })),
        };
        for (const [k, v] of Object.entries(over)) {
          if (v === undefined) delete claims[k];
          else claims[k] = v;
        }
        return claims;
      },
      async sign(claims, so = {}) {
        const key = so.key ?? leaf.key;
        const header = headerFor(key, so) as CompactJWSHeaderParameters;
        return new CompactSign(Buffer.from(JSON.stringify(claims))).setProtectedHeader(header).sign(key);
      },
      token(access, so = {}) {
        return server.sign(server.claims(access), so);
      },
      unsigned(claims, header = { typ: 'JWT', kid: libtrustKid }, signature = '') {
        return `${b64url({ ...header, alg: 'none' })}.${b64url(claims)}.${signature}`;
      },
      hmac(claims, secret, header = { typ: 'JWT', kid: libtrustKid }) {
        const input = `${b64url({ ...header, alg: 'HS256' })}.${b64url(claims)}`;
        return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      },
      makeCert,
      close: () => rm(dir, { recursive: true, force: true }),
    };
    return server;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---- talking to a Berth with auth ----

/** `Basic base64(user:password)`. */
export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
export const bearer = (token: string): { Authorization: string } => ({ Authorization: `Bearer ${token}` });

export interface TokenAnswer {
  readonly status: number;
  readonly res: RawResponse;
  /** The parsed body when the answer is 200 JSON. */
  readonly body: { token?: string; access_token?: string; refresh_token?: string; expires_in?: number; issued_at?: string; scope?: string };
  /** `token` of a 200 answer; '' otherwise. */
  readonly token: string;
}

/**
 * `GET /auth/token?service=…&scope=…` (one `scope` parameter per entry, as docker sends them), with Basic
 * credentials when `user` is given.
 */
export async function getToken(
  base: string,
  o: { readonly user?: string; readonly password?: string; readonly scopes?: readonly string[]; readonly service?: string; readonly extra?: Readonly<Record<string, string>>; readonly authorization?: string },
): Promise<TokenAnswer> {
  const q = new URLSearchParams();
  if (o.service !== undefined) q.append('service', o.service);
  for (const s of o.scopes ?? []) q.append('scope', s);
  for (const [k, v] of Object.entries(o.extra ?? {})) q.append(k, v);
  const headers: Record<string, string> = {};
  if (o.authorization !== undefined) headers['Authorization'] = o.authorization;
  else if (o.user !== undefined) headers['Authorization'] = basic(o.user, o.password ?? '');
  const res = await raw(base, 'GET', `/auth/token?${q.toString()}`, { headers });
  return tokenAnswer(res);
}

/** `POST /auth/token` with an OAuth2 form. */
export async function postToken(base: string, form: Readonly<Record<string, string | readonly string[]>>): Promise<TokenAnswer> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const value of typeof v === 'string' ? [v] : v) q.append(k, value);
  const res = await raw(base, 'POST', '/auth/token', {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: q.toString(),
  });
  return tokenAnswer(res);
}

function tokenAnswer(res: RawResponse): TokenAnswer {
  let body: TokenAnswer['body'] = {};
  if (res.status === 200) body = res.json() as TokenAnswer['body'];
  return { status: res.status, res, body, token: res.status === 200 ? (body.token ?? '') : '' };
}

/** Pushes an image's blobs (POST `?digest=`) and manifest with `headers` (an Authorization); throws unless every step is 201. */
export async function pushImageWith(base: string, repo: string, ref: string, image: Image, headers: Readonly<Record<string, string>>): Promise<void> {
  for (const b of [image.config, ...image.layers]) {
    const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
      headers: { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
      body: b.bytes,
    });
    if (res.status !== 201) throw new Error(`push blob ${repo} ${b.digest}: ${res.status} ${res.body.toString()}`);
  }
  const put = await raw(base, 'PUT', `/v2/${repo}/manifests/${ref}`, {
    headers: { ...headers, 'Content-Type': image.mediaType },
    body: image.manifest.bytes,
  });
  if (put.status !== 201) throw new Error(`push manifest ${repo}:${ref}: ${put.status} ${put.body.toString()}`);
}

// ---- what a refusal may not do ----

/** Every file under `dir` (relative path → sha256 of its content) and every directory (→ `dir`). */
export async function snapshotTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    for (const e of entries) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out.set(path, 'dir');
        await walk(path);
      } else {
        out.set(path, createHash('sha256').update(await readFile(join(dir, path))).digest('hex'));
      }
    }
  }
  await walk('');
  return out;
}

/** What differs between two snapshots: `+path`, `-path`, `~path`. Empty when equal. */
export function treeDiff(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): string[] {
  const diff: string[] = [];
  for (const [path, h] of after) {
    if (!before.has(path)) diff.push(`+${path}`);
    else if (before.get(path) !== h) diff.push(`~${path}`);
  }
  for (const path of before.keys()) if (!after.has(path)) diff.push(`-${path}`);
  return diff.sort();
}

/**
 * The secrets (or pieces of them) that appear in a response's body or WWW-Authenticate header. A secret
 * is checked whole and, for a token, segment by segment; PEM texts line by line (each base64 line).
 */
export function leaked(res: RawResponse, secrets: readonly string[]): string[] {
  const text = `${res.body.toString('utf8')}\n${res.header('WWW-Authenticate') ?? ''}`;
  const pieces = new Set<string>();
  for (const s of secrets) {
    if (s.length >= 6) pieces.add(s);
    for (const part of s.split(/[.\n]/)) {
      const p = part.trim();
      if (p.length >= 12 && !p.startsWith('-----')) pieces.add(p);
    }
  }
  return [...pieces].filter((p) => text.includes(p)).map((p) => (p.length > 40 ? `${p.slice(0, 40)}…` : p));
}

/** The response's header names, lower-case and sorted, without those that differ per request. */
export function headerShape(res: RawResponse): string[] {
  return Object.keys(res.headers).map((h) => h.toLowerCase()).filter((h) => !['date', 'x-request-id'].includes(h)).sort();
}
