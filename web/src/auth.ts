/**
 * Who the page talks to the registry as, learned by asking the server: `GET /v2/` answers 200 (no auth),
 * or 401 with a `Basic` challenge (htpasswd) or a `Bearer` one (token auth). With Bearer, the built-in
 * issuer is the one this server serves (`/auth/token` here); any other realm is an external token server
 * the page cannot reach (same-origin only), and the page says so.
 *
 * Credentials live in this module's memory only (never localStorage or cookies): Basic keeps the
 * Authorization header; the built-in issuer keeps a refresh token from the sign-in (the password is not
 * kept) and trades it for short access tokens per scope, as docker does. Reloading the page signs out.
 * Requests go with `credentials: 'omit'`, so a 401 never pops up the browser's own password dialog.
 */

export type AuthMode =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic'; readonly realm: string }
  | { readonly kind: 'builtin'; readonly tokenUrl: string; readonly service: string }
  | { readonly kind: 'external'; readonly realm: string; readonly service: string };

/** A challenge of a WWW-Authenticate header: its scheme and parameters. */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

interface Token {
  readonly token: string;
  readonly expiresAt: number;
  /** What the issuer granted, in scope syntax. */
  readonly granted: string;
}

import { uiBase } from './nav.js';

let mode: AuthMode = { kind: 'none' };
let user: string | undefined;
let basicHeader: string | undefined;
let refreshToken: string | undefined;
const tokens = new Map<string, Token>();

/** The base of every API path: the page is `<prefix>/ui/…`, the API `<prefix>/v2/`. */
export function apiUrl(path: string): string {
  return new URL(`../${path}`, new URL(uiBase(), location.href)).toString();
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic). */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) params[(p[1] ?? '').toLowerCase()] = (p[2] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

/**
 * Learns how the server authenticates: from `known` (what the server put in the page: the challenge
 * `GET /v2/` answers without credentials, null for none, and whether it serves the built-in issuer's
 * keys), or by asking `GET /v2/` (and `/auth/jwks`) when the page came without it.
 */
export async function detectAuth(known?: { readonly challenge: string | null; readonly issuer: boolean }): Promise<AuthMode> {
  if (known !== undefined) return (mode = await modeOf(known.challenge, async () => known.issuer));
  const res = await fetch(apiUrl('v2/'), { credentials: 'omit' });
  if (res.ok) return (mode = { kind: 'none' });
  const header = res.headers.get('WWW-Authenticate');
  if (header === null) throw new Error(`GET /v2/ answered ${res.status} without a challenge the UI knows`);
  const jwks = async (): Promise<boolean> => (await fetch(apiUrl('auth/jwks'), { credentials: 'omit' }).catch(() => undefined))?.ok === true;
  return (mode = await modeOf(header, jwks));
}

/** The mode a challenge means (null: no auth); `servesIssuer` tells whether this server has the built-in issuer. */
async function modeOf(header: string | null, servesIssuer: () => Promise<boolean>): Promise<AuthMode> {
  if (header === null) return { kind: 'none' };
  const challenge = parseChallenge(header);
  if (challenge?.scheme === 'basic') return { kind: 'basic', realm: challenge.params['realm'] ?? '' };
  if (challenge?.scheme === 'bearer') {
    const realm = challenge.params['realm'] ?? '';
    const service = challenge.params['service'] ?? '';
    if (isTokenPath(realm) && (await servesIssuer())) return { kind: 'builtin', tokenUrl: apiUrl('auth/token'), service };
    return { kind: 'external', realm, service };
  }
  throw new Error(`the server's challenge is not one the UI knows: ${header}`);
}

/** The realm is a `/auth/token` (this server's own built-in issuer, when it serves one, even under another host name). */
function isTokenPath(realm: string): boolean {
  try {
    return new URL(realm, location.href).pathname.endsWith('/auth/token');
  } catch {
    return false;
  }
}

export function authMode(): AuthMode {
  return mode;
}

/** The signed-in user, or undefined (anonymous, or no auth at all). */
export function currentUser(): string | undefined {
  return user;
}

/**
 * Signs in: Basic checks the pair against `GET /v2/`; the built-in issuer trades it for a refresh token.
 * @returns false for wrong credentials. @throws on any other failure.
 */
export async function signIn(name: string, password: string): Promise<boolean> {
  if (mode.kind === 'basic') {
    const header = `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${name}:${password}`)))}`;
    const res = await fetch(apiUrl('v2/'), { credentials: 'omit', headers: { Authorization: header } });
    if (res.status === 401) return false;
    if (!res.ok) throw new Error(`sign-in failed: ${res.status}`);
    basicHeader = header;
    user = name;
    return true;
  }
  if (mode.kind === 'builtin') {
    const form = new URLSearchParams({ grant_type: 'password', username: name, password, service: mode.service, client_id: 'berth-ui', access_type: 'offline' });
    const res = await fetch(mode.tokenUrl, { method: 'POST', credentials: 'omit', body: form });
    if (res.status === 401) return false;
    if (!res.ok) throw new Error(`sign-in failed: ${res.status}`);
    const body = (await res.json()) as { refresh_token?: string };
    if (body.refresh_token === undefined) throw new Error('the token server gave no refresh token');
    refreshToken = body.refresh_token;
    user = name;
    tokens.clear();
    return true;
  }
  throw new Error('this registry has no sign-in the web UI can use');
}

export function signOut(): void {
  user = undefined;
  basicHeader = undefined;
  refreshToken = undefined;
  tokens.clear();
}

/** Whether a sign-in is needed before anything works (htpasswd gives anonymous callers nothing). */
export function needsSignIn(): boolean {
  return mode.kind === 'basic' && basicHeader === undefined;
}

/** A token for `scope` from the built-in issuer (cached until shortly before it expires). */
export async function tokenFor(scope: string): Promise<Token> {
  const cached = tokens.get(scope);
  if (cached !== undefined && cached.expiresAt > Date.now() + 10_000) return cached;
  if (mode.kind !== 'builtin') throw new Error('no token server the web UI can reach');
  const service = mode.service;
  const res = refreshToken === undefined
    ? await fetch(`${mode.tokenUrl}?${new URLSearchParams({ service, scope })}`, { credentials: 'omit' })
    : await fetch(mode.tokenUrl, {
      method: 'POST',
      credentials: 'omit',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, service, scope, client_id: 'berth-ui' }),
    });
  if (!res.ok) throw new Error(`the token server answered ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number; scope?: string };
  const token = body.access_token ?? body.token;
  if (token === undefined) throw new Error('the token server gave no token');
  const got: Token = { token, expiresAt: Date.now() + (body.expires_in ?? 60) * 1000, granted: body.scope ?? '' };
  tokens.set(scope, got);
  return got;
}

/** The Authorization header to send for a request needing `scope` (undefined: none). */
export async function authorizationFor(scope: string | undefined): Promise<string | undefined> {
  if (mode.kind === 'basic') return basicHeader;
  if (mode.kind !== 'builtin' || scope === undefined) return undefined;
  return `Bearer ${(await tokenFor(scope)).token}`;
}

/**
 * Whether the caller may do `action` on repository `name` (or `registry:catalog`, `registry:gc`), as the
 * server would decide: no auth and Basic users may do everything; with tokens, the issuer says what it
 * grants. The server checks every request anyway; this only hides buttons that would be refused.
 */
export async function may(action: 'pull' | 'push' | 'delete' | '*', resource: { repository: string } | 'catalog' | 'gc'): Promise<boolean> {
  if (mode.kind === 'none') return true;
  if (mode.kind === 'basic') return basicHeader !== undefined;
  if (mode.kind !== 'builtin') return false;
  const wanted = typeof resource === 'string' ? ['registry', resource] : ['repository', resource.repository];
  const scope = typeof resource === 'string' ? `registry:${resource}:*` : `repository:${resource.repository}:${action}`;
  try {
    const { granted } = await tokenFor(scope);
    return granted.split(' ').some((g) => {
      const [type, ...rest] = g.split(':');
      const actions = (rest.pop() ?? '').split(',');
      const name = rest.join(':');
      return type === wanted[0] && name === wanted[1] && (actions.includes(action) || actions.includes('*'));
    });
  } catch {
    return false;
  }
}
