/**
 * Bearer token auth as registry:2 does it: no token → 401 with a challenge naming the realm, the
 * service and the scope this request needs; a token that does not verify → the same with
 * `error="invalid_token"`; a valid token without the needed access → `error="insufficient_scope"`.
 * The answer never says more than that: no claim, key or token text is echoed.
 */
import { UnauthorizedError } from '../errors.js';
import { type AccessItem, type Grant, allowsAll, formatScope } from './access.js';
import type { AccessController, AuthRequest } from './controller.js';
import { TokenError, type TokenVerifier } from './token.js';

export interface TokenControllerOptions {
  /** The token endpoint clients are sent to; undefined derives `<request base URL><realmPath>` per request. */
  readonly realm: string | undefined;
  readonly realmPath: string;
  readonly service: string;
  readonly verifier: TokenVerifier;
  /**
   * What the holder of a verified token may pull beyond its scopes, when this server knows (the built-in
   * issuer, which signs every token this controller accepts); see `Grant.mayPull`.
   */
  readonly mayPull?: (subject: string | undefined, repository: string) => boolean;
}

const BEARER = /^Bearer\s+([A-Za-z0-9._~+/-]+=*)\s*$/i;

export function createTokenController(o: TokenControllerOptions): AccessController {
  const challenge = (req: AuthRequest, needed: readonly AccessItem[], error?: 'invalid_token' | 'insufficient_scope'): string => {
    const realm = o.realm ?? `${req.baseUrl}${o.realmPath}`;
    const parts = [`realm=${quote(realm)}`, `service=${quote(o.service)}`];
    if (needed.length > 0) parts.push(`scope=${quote(formatScope(needed))}`);
    if (error !== undefined) parts.push(`error=${quote(error)}`);
    return `Bearer ${parts.join(',')}`;
  };
  return {
    async authorize(req, needed): Promise<Grant> {
      if (req.authorization === undefined || req.authorization === '') throw new UnauthorizedError(challenge(req, needed));
      const token = BEARER.exec(req.authorization)?.[1];
      // Another scheme, or `Bearer` with nothing after it, is no token at all: the plain challenge (RFC 6750 §3.1).
      if (token === undefined) throw new UnauthorizedError(challenge(req, needed));
      let grant: Grant;
      try {
        const verified = await o.verifier.verify(token);
        const { subject } = verified;
        const mayPull = o.mayPull;
        grant = { subject, access: verified.access, ...(mayPull !== undefined && { mayPull: (repository: string) => mayPull(subject, repository) }) };
      } catch (err) {
        if (err instanceof TokenError) throw new UnauthorizedError(challenge(req, needed, 'invalid_token'), 'invalid token');
        throw err;
      }
      if (!allowsAll(grant, needed)) {
        throw new UnauthorizedError(challenge(req, needed, 'insufficient_scope'), 'insufficient scope');
      }
      return grant;
    },
  };
}

/** A quoted-string of RFC 9110 (realms and scopes never hold quotes, but a configured value might). */
export function quote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}
