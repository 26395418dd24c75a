/**
 * The built-in issuer's endpoints: `GET /auth/token` (Docker's flow: Basic credentials, repeated
 * `scope`), `POST /auth/token` (OAuth2 form, as containerd and podman send it) and `GET /auth/jwks`.
 * Parse → one issuer call → JSON with `Cache-Control: no-store` (RFC 6749 §5.1: tokens are never cached).
 */
import type { TokenIssuer, TokenResponse } from '../../auth/issuer.js';
import { RegistryError } from '../../errors.js';
import { readSmallBody } from '../body.js';
import type { Ctx } from '../context.js';

/** Largest POST form accepted; larger ones get 413 SIZE_INVALID. */
export const MAX_TOKEN_FORM_BYTES = 64 * 1024;

/** The built-in issuer's endpoints. */
export interface TokenHandlers {
  readonly getToken: (ctx: Ctx) => Promise<void>;
  readonly postToken: (ctx: Ctx) => Promise<void>;
  readonly getJwks: (ctx: Ctx) => Promise<void>;
  /**
   * The access token `GET /auth/token?scope=<scope>` gives a caller without credentials (the anonymous
   * rules): the web UI's page computes its first view's data as the page's own script would get it.
   */
  readonly anonymousToken: (scope: string) => Promise<string>;
}

/**
 * Handlers bound to `issuer`. Errors are thrown for the error middleware: the issuer's
 * UnauthorizedError (401 with its Basic challenge) and RegistryErrors; here NAME_INVALID (400) for a
 * query value given twice, UNSUPPORTED (405) for a POST body that is not
 * application/x-www-form-urlencoded, SIZE_INVALID (413) for one over MAX_TOKEN_FORM_BYTES.
 */
export function createTokenHandlers(issuer: TokenIssuer): TokenHandlers {
  return {
    getToken: async (ctx) => {
      const service = queryOnce(ctx, 'service');
      const account = queryOnce(ctx, 'account');
      const scope = ctx.query.scope;
      const answer = await issuer.tokenFromGet({
        authorization: ctx.get('Authorization') || undefined,
        scopes: scope === undefined ? [] : typeof scope === 'string' ? [scope] : scope,
        offlineToken: queryOnce(ctx, 'offline_token')?.toLowerCase() === 'true',
        ...(service === undefined ? {} : { service }),
        ...(account === undefined ? {} : { account }),
      });
      sendToken(ctx, answer);
    },
    postToken: async (ctx) => {
      if (!ctx.is('application/x-www-form-urlencoded')) {
        throw new RegistryError('UNSUPPORTED', 'token requests by POST must be application/x-www-form-urlencoded');
      }
      const body = await readSmallBody(ctx, MAX_TOKEN_FORM_BYTES);
      sendToken(ctx, await issuer.tokenFromForm(parseForm(body.toString('utf8'))));
    },
    getJwks: async (ctx) => {
      sendJson(ctx, issuer.jwks());
    },
    anonymousToken: async (scope) => (await issuer.tokenFromGet({ authorization: undefined, scopes: [scope], offlineToken: false })).token,
  };
}

/** A form body as field → value, or every value in order when the field repeats. */
export function parseForm(text: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [key, value] of new URLSearchParams(text)) {
    const prev = out[key];
    out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function queryOnce(ctx: Ctx, key: string): string | undefined {
  const v = ctx.query[key];
  if (Array.isArray(v)) {
    if (v.length > 1) throw new RegistryError('NAME_INVALID', `invalid token request: ${key} is given more than once`);
    return v[0];
  }
  return v;
}

function sendToken(ctx: Ctx, answer: TokenResponse): void {
  ctx.set('Pragma', 'no-cache');
  sendJson(ctx, answer);
}

function sendJson(ctx: Ctx, body: object): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.status = 200;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = body;
}
