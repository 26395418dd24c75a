/**
 * How the mirror authenticates to one upstream registry: the 401 challenge (`WWW-Authenticate`), then
 * either Basic with the configured credentials, or the Bearer token flow of the distribution token spec
 * (GET realm?service=&scope=repository:<name>:pull, with Basic credentials when configured), tokens
 * cached per scope until shortly before they expire, or until the credentials change.
 *
 * A realm is followed only over http(s). Credentials belong to one upstream: they go to that upstream
 * and to the realm it names, never anywhere else (blob redirects are fetched without them, upstream.ts).
 */
import { type UpstreamResponse, readBody } from './upstream-http.js';

/** One parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  readonly scheme: 'basic' | 'bearer';
  readonly params: Readonly<Record<string, string>>;
}

/** A user name and password for one upstream. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** Why an upstream could not be authenticated to (a realm that is not http(s), a token endpoint failing). */
export class UpstreamAuthError extends Error {
  override readonly name = 'UpstreamAuthError';
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/** Parses the first Basic or Bearer challenge of a `WWW-Authenticate` value; undefined for anything else. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const m = /^\s*(basic|bearer)\b\s*(.*)$/i.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    const key = (p[1] ?? '').toLowerCase();
    params[key] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] ?? '').toLowerCase() === 'basic' ? 'basic' : 'bearer', params };
}

/** A token answer is refused past this size. */
const MAX_TOKEN_BYTES = 1024 * 1024;

/** Tokens live this long when the token server names no `expires_in` (the token spec's default). */
const DEFAULT_TOKEN_SECONDS = 60;
/** A cached token is renewed this long before it expires. */
const EXPIRY_MARGIN_MS = 5_000;

/** Fetches with the signal and timeout the caller wants (upstream.ts's fetch without redirects). */
export type Fetcher = (url: string, init: { headers: Record<string, string>; signal: AbortSignal }) => Promise<UpstreamResponse>;

/** The Authorization headers of one upstream: what to send first, and what to send after a 401. */
export interface UpstreamAuth {
  /** The header to send for `scope` before any 401, when a challenge was seen before; undefined otherwise. */
  known(scope: string, signal: AbortSignal): Promise<string | undefined>;
  /** The header to retry with after `challenge`; undefined when there is nothing to retry with. @throws UpstreamAuthError */
  answer(challenge: Challenge, scope: string, signal: AbortSignal): Promise<string | undefined>;
  /** Forgets the cached token of `scope` (the upstream refused it). */
  forget(scope: string): void;
}

/** The authentication state of one upstream (its last challenge and its tokens). */
export function createUpstreamAuth(credentials: () => Promise<Credentials | undefined>, fetcher: Fetcher): UpstreamAuth {
  let last: Challenge | undefined;
  // Each token is kept with the credentials it was got with: new credentials (a credentials file that
  // changed answers a new object) get new tokens at once.
  const tokens = new Map<string, { header: string; expires: number; with: Credentials | undefined }>();

  const basicOf = (c: Credentials | undefined): string | undefined =>
    c === undefined ? undefined : `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  const basic = async (): Promise<string | undefined> => basicOf(await credentials());

  const token = async (challenge: Challenge, scope: string, signal: AbortSignal): Promise<string> => {
    const current = await credentials();
    const cached = tokens.get(scope);
    if (cached !== undefined && cached.expires > Date.now() && cached.with === current) return cached.header;
    const realm = challenge.params['realm'];
    if (realm === undefined) throw new UpstreamAuthError('the upstream sent a Bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UpstreamAuthError(`the upstream's token realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new UpstreamAuthError(`the upstream's token realm ${JSON.stringify(realm)} is not http(s); not followed`);
    }
    const service = challenge.params['service'];
    if (service !== undefined) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const auth = basicOf(current);
    const res = await fetcher(url.href, { headers: auth === undefined ? {} : { Authorization: auth }, signal });
    if (res.status < 200 || res.status >= 300) {
      res.discard();
      throw new UpstreamAuthError(`the upstream's token realm answered ${res.status}`, res.status);
    }
    const body = await tokenAnswer(res);
    const value = typeof body?.token === 'string' ? body.token : typeof body?.access_token === 'string' ? body.access_token : undefined;
    if (value === undefined || value === '') throw new UpstreamAuthError("the upstream's token realm answered no token");
    const seconds = typeof body?.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const entry = { header: `Bearer ${value}`, expires: Date.now() + seconds * 1000 - EXPIRY_MARGIN_MS, with: current };
    tokens.set(scope, entry);
    return entry.header;
  };

  return {
    async known(scope, signal) {
      if (last === undefined) return undefined;
      return last.scheme === 'basic' ? basic() : token(last, scope, signal);
    },
    async answer(challenge, scope, signal) {
      if (challenge.scheme === 'basic') {
        const header = await basic();
        if (header !== undefined) last = challenge;
        return header;
      }
      tokens.delete(scope);
      const header = await token(challenge, scope, signal);
      last = challenge; // only a challenge that gave a token is answered ahead of time
      return header;
    },
    forget(scope) {
      tokens.delete(scope);
    },
  };
}

/** The token server's JSON answer; an unreadable one counts as empty (no token in it). @throws UpstreamAuthError past MAX_TOKEN_BYTES */
async function tokenAnswer(res: UpstreamResponse): Promise<{ token?: unknown; access_token?: unknown; expires_in?: unknown } | undefined> {
  const tooLarge = (): Error => new UpstreamAuthError(`the upstream's token realm answered more than ${MAX_TOKEN_BYTES} bytes`);
  try {
    const parsed = JSON.parse((await readBody(res, MAX_TOKEN_BYTES, tooLarge)).toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
  } catch (err) {
    if (err instanceof UpstreamAuthError) throw err;
    return undefined;
  }
}
