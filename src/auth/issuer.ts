/**
 * The built-in token issuer: Docker token auth (docs/content/spec/auth/token.md) and its OAuth2 form
 * (oauth.md) for the users of an htpasswd file under the configured access rules. Pure logic; the
 * HTTP side is http/handlers/auth-token.ts.
 *
 * Access tokens are ES256 JWTs (header `kid` = the key's JWK thumbprint, `typ: JWT`) with `iss`,
 * `sub` (the user, `''` when anonymous), `aud` = service, `iat`/`nbf`/`exp`, a random `jti` and the
 * `access` claim the rules allow (jwt.md). Refresh tokens are JWTs of the same key with audience
 * `<service>#refresh`, header `typ: berth-refresh+jwt` and no `access`: a registry checking that `aud`
 * holds its service refuses them as access tokens. They carry the subject only and are checked
 * against the htpasswd file on every use, so removing a user stops their refresh tokens; changing a
 * password does not (rotate the signing key for that).
 *
 * Errors, chosen from OciCode:
 * - bad or missing credentials, a bad refresh token → UnauthorizedError (401, `Basic realm="<issuer>"`),
 *   the same whether or not the user exists. RFC 6749 would say 400 `invalid_grant`; Docker clients
 *   (and containerd, which then retries with GET) read 401 as "wrong credentials", so 401 it is.
 * - a malformed request (scope, another `service`, `account` other than the user, a field given twice,
 *   no grant_type) → NAME_INVALID (400), the one 400 code in OciCode that fits a bad parameter.
 * - a grant_type other than password and refresh_token → UNSUPPORTED (405; containerd falls back to GET).
 */
import { randomBytes } from 'node:crypto';
import { importJWK, jwtVerify, SignJWT, type JWK, type JWTPayload } from 'jose';
import type { AccessItem } from './access.js';
import { formatScope } from './access.js';
import type { Htpasswd } from './htpasswd.js';
import { type AccessRule, type Groups, grantFor, parseScopes } from './rules.js';
import type { SigningKey } from './signing-key.js';
import { RegistryError, UnauthorizedError } from '../errors.js';

export interface IssuerOptions {
  /** `iss` of every token, and the Basic realm of 401 answers. */
  readonly issuer: string;
  /** `aud` of access tokens: the registry's `auth.token.service`. */
  readonly service: string;
  readonly users: Htpasswd;
  readonly rules: readonly AccessRule[];
  readonly groups: Groups;
  readonly key: SigningKey;
  /** Access token lifetime; default 300, at least 60 (the token spec's minimum). */
  readonly ttlSeconds?: number;
  /** Refresh token lifetime; default 30 days. */
  readonly refreshTtlSeconds?: number;
  /** Milliseconds since the epoch; default Date.now. */
  readonly now?: () => number;
}

/** `GET /auth/token`'s parameters. */
export interface TokenGetRequest {
  /** The Authorization header (HTTP Basic), or undefined for an anonymous request. */
  readonly authorization: string | undefined;
  readonly service?: string;
  /** Every `scope` value, in order; each may hold several space-separated scopes. */
  readonly scopes: readonly string[];
  readonly account?: string;
  /** `offline_token=true`: also return a refresh token (signed-in callers only). */
  readonly offlineToken: boolean;
}

/** The token endpoint's answer (token.md; oauth.md adds `scope`). `token` === `access_token`. */
export interface TokenResponse {
  readonly token: string;
  readonly access_token: string;
  readonly expires_in: number;
  /** RFC 3339, UTC. */
  readonly issued_at: string;
  /** What the token grants, in scope syntax (space-separated; empty when nothing). */
  readonly scope: string;
  readonly refresh_token?: string;
}

export interface TokenIssuer {
  /**
   * Docker's GET flow. No credentials → an anonymous token (anonymous rules apply).
   * @throws UnauthorizedError for a malformed Authorization header or wrong credentials;
   * RegistryError NAME_INVALID for a bad scope, another service, or an `account` other than the user.
   */
  tokenFromGet(q: TokenGetRequest): Promise<TokenResponse>;
  /**
   * The OAuth2 POST flow: `grant_type` password (`username`, `password`) or refresh_token
   * (`refresh_token`); `scope` (space-separated, may repeat), `service`, `client_id` (accepted, not
   * required), `access_type=offline` for a refresh token (a refresh grant returns the same one).
   * @throws as tokenFromGet, plus UNSUPPORTED for another grant_type and NAME_INVALID when it is missing.
   */
  tokenFromForm(f: Readonly<Record<string, string | readonly string[]>>): Promise<TokenResponse>;
  /** The public key set tokens verify against. */
  jwks(): { keys: JWK[] };
}

const DEFAULT_TTL = 300;
const DEFAULT_REFRESH_TTL = 30 * 24 * 3600;
const REFRESH_TYP = 'berth-refresh+jwt';

/** @throws Error when a lifetime is out of range. */
export function createIssuer(o: IssuerOptions): TokenIssuer {
  const ttl = o.ttlSeconds ?? DEFAULT_TTL;
  const refreshTtl = o.refreshTtlSeconds ?? DEFAULT_REFRESH_TTL;
  if (!Number.isInteger(ttl) || ttl < 60) throw new Error('token issuer: ttlSeconds must be an integer of at least 60');
  if (!Number.isInteger(refreshTtl) || refreshTtl < ttl) throw new Error('token issuer: refreshTtlSeconds must be an integer ≥ ttlSeconds');
  const now = o.now ?? Date.now;
  const refreshAudience = `${o.service}#refresh`;
  const verifyKey = importJWK(o.key.publicJwk, 'ES256');
  const challenge = `Basic realm="${o.issuer.replace(/["\\]/g, '\\$&')}"`;
  const denied = (message: string): UnauthorizedError => new UnauthorizedError(challenge, message);

  function checkService(service: string | undefined): void {
    if (service !== undefined && service !== o.service) throw badRequest('the token was asked for another service');
  }

  async function sign(claims: JWTPayload, typ: string, audience: string, lifetime: number, iat: number): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: o.key.kid, typ })
      .setIssuer(o.issuer)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + lifetime)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(o.key.privateKey);
  }

  async function respond(subject: string | undefined, requested: readonly AccessItem[], refreshToken?: string): Promise<TokenResponse> {
    const access = grantFor({ subject }, requested, o.rules, o.groups);
    const iat = Math.floor(now() / 1000);
    const token = await sign({ sub: subject ?? '', access: access.map((a) => ({ ...a })) }, 'JWT', o.service, ttl, iat);
    const answer = {
      token,
      access_token: token,
      expires_in: ttl,
      issued_at: new Date(iat * 1000).toISOString().replace('.000Z', 'Z'),
      scope: formatScope(access),
    };
    return refreshToken === undefined ? answer : { ...answer, refresh_token: refreshToken };
  }

  async function newRefreshToken(subject: string): Promise<string> {
    return sign({ sub: subject }, REFRESH_TYP, refreshAudience, refreshTtl, Math.floor(now() / 1000));
  }

  async function login(user: string | undefined, password: string | undefined): Promise<string> {
    // Always run one bcrypt check, so a missing field or unknown user answers as slowly as a wrong password.
    const ok = await o.users.verify(user ?? '', password ?? '');
    if (!ok || user === undefined || user === '' || password === undefined) throw denied('invalid username or password');
    return user;
  }

  async function subjectOfRefreshToken(token: string | undefined): Promise<string> {
    if (token === undefined || token === '') throw denied('invalid or expired refresh token');
    let sub: string | undefined;
    try {
      const { payload } = await jwtVerify(token, await verifyKey, {
        issuer: o.issuer,
        audience: refreshAudience,
        algorithms: ['ES256'],
        typ: REFRESH_TYP,
        currentDate: new Date(now()),
        requiredClaims: ['exp', 'sub'],
      });
      sub = payload.sub;
    } catch {
      sub = undefined;
    }
    if (sub === undefined || sub === '' || !o.users.has(sub)) throw denied('invalid or expired refresh token');
    return sub;
  }

  return {
    async tokenFromGet(q) {
      checkService(q.service);
      const requested = parseScopes(q.scopes);
      const basic = q.authorization === undefined || q.authorization === '' ? undefined : parseBasic(q.authorization);
      if (basic === null) throw denied('malformed Authorization header: expected Basic credentials');
      const subject = basic === undefined ? undefined : await login(basic.user, basic.password);
      if (q.account !== undefined && q.account !== '' && q.account !== subject) {
        throw badRequest('account does not match the credentials');
      }
      const refresh = q.offlineToken && subject !== undefined ? await newRefreshToken(subject) : undefined;
      return respond(subject, requested, refresh);
    },

    async tokenFromForm(f) {
      const field = (name: string): string | undefined => single(f, name);
      checkService(field('service'));
      const scope = f.scope;
      const requested = parseScopes(scope === undefined ? [] : typeof scope === 'string' ? [scope] : scope);
      const offline = field('access_type') === 'offline';
      const grant = field('grant_type');
      if (grant === 'password') {
        const subject = await login(field('username'), field('password'));
        return respond(subject, requested, offline ? await newRefreshToken(subject) : undefined);
      }
      if (grant === 'refresh_token') {
        const token = field('refresh_token');
        const subject = await subjectOfRefreshToken(token);
        return respond(subject, requested, offline ? token : undefined);
      }
      if (grant === undefined || grant === '') throw badRequest('grant_type is required');
      throw new RegistryError('UNSUPPORTED', 'unsupported grant_type: use password or refresh_token');
    },

    jwks: () => ({ keys: [{ ...o.key.publicJwk }] }),
  };
}

/** `Basic base64(user:password)` → its parts; null when the header is not well-formed Basic. */
function parseBasic(header: string): { user: string; password: string } | null {
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (m?.[1] === undefined) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function single(f: Readonly<Record<string, string | readonly string[]>>, name: string): string | undefined {
  const v = Object.hasOwn(f, name) ? f[name] : undefined;
  if (v === undefined || typeof v === 'string') return v;
  if (v.length === 1) return v[0];
  throw badRequest(`${name} is given more than once`);
}

function badRequest(message: string): RegistryError {
  return new RegistryError('NAME_INVALID', `invalid token request: ${message}`);
}
