/**
 * A tiny HTTP client for the suite over node:http and node:https. It never normalises a path: what a
 * check asks for (or what a registry's Location says) is sent byte for byte, because URL parsers drop
 * `..` segments and re-encode queries, and a registry's `_state` token must come back as it was sent.
 *
 * Targets are either a path (`/v2/…`, joined to the base URL's own path prefix) or an absolute URL
 * (a Location that points elsewhere). Credentials go only to the base URL's origin, and to the token
 * realm that origin names.
 *
 * Credentials work with both schemes registries use, as real clients (docker, containerd, c/image) do:
 * - Basic: sent as `Authorization: Basic …` with every request, from the first one on.
 * - Bearer (Docker token auth): once the registry answers 401 with `WWW-Authenticate: Bearer realm=…,
 *   service=…,scope=…`, the client stops sending Basic to the registry. For that request and every later
 *   one it GETs the realm with the Basic credentials and `service` and one `scope` parameter per scope
 *   (the challenge's, plus `repository:<from>:pull` for a mount with `from=`, as docker asks), retries the
 *   request once with `Authorization: Bearer <token>`, and caches the token per scope set until shortly
 *   before it expires. Later requests send the cached token for the scope they are expected to need
 *   (`pull` for GET and HEAD, `pull,push` for POST, PUT and PATCH, `delete` for DELETE, as registry:2
 *   asks), so the challenge round trip happens once per scope. A token endpoint that refuses leaves the
 *   registry's 401 as the answer.
 */
import { type ClientRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A whole HTTP answer, body read to the end. */
export interface Response {
  readonly method: string;
  /** The absolute URL the request went to. */
  readonly url: string;
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** One header, repeated values joined with `, `; undefined when absent. */
  header(name: string): string | undefined;
}

/** What to send besides method and target. A `body` array is sent in that many pieces, chunked, with no Content-Length. */
export interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | readonly Buffer[];
  /** Send no credentials even to the registry's origin. */
  readonly anonymous?: boolean;
}

/** Where requests go and how long each may take. */
export interface ClientOptions {
  readonly baseUrl: string;
  readonly credentials?: { readonly username: string; readonly password: string };
  readonly timeoutMs: number;
}

/** Sends requests to one registry. */
export interface Client {
  readonly baseUrl: string;
  /** Sends one request; rejects only when no HTTP answer came (connection error, timeout). */
  request(method: string, target: string, opts?: RequestOptions): Promise<Response>;
  /** The absolute URL a Location (absolute, or relative to the URL it was answered from) points at. */
  resolve(location: string, from: string): string;
}

interface Target {
  readonly origin: string;
  readonly path: string;
}

const ABSOLUTE = /^([a-z][a-z0-9+.-]*:)\/\/([^/?#]*)([^#]*)/i;

/** Splits an absolute URL into origin and raw path+query, without parsing (so without normalising) the path. */
function splitAbsolute(url: string): Target | undefined {
  const m = ABSOLUTE.exec(url);
  if (m === null) return undefined;
  const path = m[3] === undefined || m[3] === '' ? '/' : m[3];
  return { origin: `${(m[1] ?? '').toLowerCase()}//${(m[2] ?? '').toLowerCase()}`, path: path.startsWith('?') ? `/${path}` : path };
}

function resolveLocation(location: string, from: string): string {
  if (ABSOLUTE.test(location)) return location;
  const base = splitAbsolute(from);
  if (base === undefined) throw new Error(`cannot resolve ${location} against ${from}`);
  if (location.startsWith('//')) return `${base.origin.split('//')[0] ?? 'http:'}${location}`;
  if (location.startsWith('/')) return `${base.origin}${location}`;
  // A relative reference like `uploads/x`: the only case that needs full URL resolution.
  return new URL(location, from).toString();
}

function responseOf(method: string, url: string, status: number, headers: IncomingHttpHeaders, body: Buffer): Response {
  return {
    method,
    url,
    status,
    headers,
    body,
    header(name) {
      const v = headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
  };
}

function cutShort(status: number, headers: IncomingHttpHeaders, received: number): string {
  const length = headers['content-length'];
  const announced = length === undefined ? 'its end' : `the ${length} bytes of its Content-Length`;
  return `a ${status} answer whose body ended after ${received} bytes, before ${announced}`;
}

function send(url: string, method: string, headers: OutgoingHttpHeaders, body: readonly Buffer[], timeoutMs: number): Promise<Response> {
  const target = splitAbsolute(url);
  if (target === undefined) return Promise.reject(new Error(`not an absolute URL: ${url}`));
  const host = new URL(target.origin);
  const request = host.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    let settled = false;
    let answered = false;
    const settle = (fn: () => void): void => {
      if (!settled) {
        settled = true;
        fn();
      }
    };
    const req = request(
      { protocol: host.protocol, hostname: host.hostname, port: host.port, method, path: target.path, headers, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const received = (): Buffer => Buffer.concat(chunks);
        res.on('end', () => {
          settle(() => resolve(responseOf(method, url, res.statusCode ?? 0, res.headers, received())));
          if (!req.writableEnded) req.destroy(); // answered before the body was all sent: send no more
        });
        // An answer cut short (the connection closed before the body its headers announced) is no answer.
        const cut = (): void => settle(() => reject(new Error(cutShort(res.statusCode ?? 0, res.headers, received().length))));
        res.on('close', () => (res.complete ? undefined : cut()));
        res.on('error', cut);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // Once an answer has begun, a write error (the server closed its end) does not hide it.
    req.on('error', (err) => (answered ? undefined : settle(() => reject(err))));
    writeBody(req, body);
  });
}

/** Writes the request body in one go, as most clients do: a server must still let the client read an early 413. */
function writeBody(req: ClientRequest, pieces: readonly Buffer[]): void {
  for (const piece of pieces.slice(0, -1)) req.write(piece);
  req.end(pieces.at(-1));
}

// ---- Bearer tokens (Docker token auth) ----

/** A challenge's scheme and its auth-params (names lower-cased). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * The challenges of a WWW-Authenticate value (RFC 9110 §11.6.1): `Bearer realm="…",service="…"`, possibly
 * several, separated by commas. Quoted strings may hold commas and `\"`.
 */
export function parseChallenges(header: string | undefined): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  if (header === undefined) return out;
  const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
  let rest = header;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    const param = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/.exec(rest);
    const current = out.at(-1);
    if (param !== null && current !== undefined) {
      current.params[(param[1] ?? '').toLowerCase()] = param[2] === undefined ? (param[3] ?? '') : param[2].replace(/\\(.)/g, '$1');
      rest = rest.slice(param[0].length);
      continue;
    }
    const scheme = token.exec(rest);
    if (scheme === null) break;
    out.push({ scheme: scheme[0].toLowerCase(), params: {} });
    rest = rest.slice(scheme[0].length);
  }
  return out;
}

const REPO_ROUTE = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//;

/** The scopes registry:2 asks of a request (its `appendAccessRecords`), to find a cached token before asking. */
function expectedScopes(method: string, path: string): string[] {
  if (/^\/v2\/_catalog(?:\?|$)/.test(path)) return ['registry:catalog:*'];
  const repo = REPO_ROUTE.exec(path)?.[1];
  if (repo === undefined) return [];
  const actions = method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : 'pull,push';
  return [`repository:${repo}:${actions}`];
}

/** The `from` of a mount request (`POST …/uploads/?mount=…&from=<repo>`), whose pull a token must include. */
function mountSource(method: string, path: string): string | undefined {
  if (method !== 'POST') return undefined;
  const query = path.indexOf('?') === -1 ? '' : path.slice(path.indexOf('?') + 1);
  const params = new URLSearchParams(query);
  return params.has('mount') ? (params.get('from') ?? undefined) : undefined;
}

/** Scopes as one cache key: deduplicated, sorted, space-separated. */
const scopeKey = (scopes: readonly string[]): string => [...new Set(scopes.filter((s) => s !== ''))].sort().join(' ');

/** Cached tokens are dropped this long before they expire. */
const EXPIRY_MARGIN_MS = 10_000;
/** The token spec's default lifetime when the answer names none. */
const DEFAULT_TOKEN_SECONDS = 60;

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/** A client for the registry at `opts.baseUrl`. */
export function createClient(opts: ClientOptions): Client {
  const base = splitAbsolute(opts.baseUrl.replace(/\/+$/, ''));
  if (base === undefined) throw new Error(`not an absolute URL: ${opts.baseUrl}`);
  const prefix = base.path === '/' ? '' : base.path;
  const auth = opts.credentials === undefined
    ? undefined
    : `Basic ${Buffer.from(`${opts.credentials.username}:${opts.credentials.password}`).toString('base64')}`;
  /** Set once the registry has asked for Bearer tokens: from then on no Basic goes to it. */
  let bearerMode = false;
  const tokens = new Map<string, CachedToken>();

  const cached = (key: string): string | undefined => {
    const entry = tokens.get(key);
    if (entry === undefined || entry.expiresAt - EXPIRY_MARGIN_MS <= Date.now()) return undefined;
    return entry.token;
  };

  /** A token for `scopes` from the challenge's realm, or undefined when the token endpoint does not give one. */
  async function fetchToken(challenge: Challenge, scopes: readonly string[]): Promise<string | undefined> {
    const realm = challenge.params['realm'];
    if (realm === undefined || splitAbsolute(realm) === undefined) return undefined;
    const query = new URLSearchParams();
    if (challenge.params['service'] !== undefined) query.append('service', challenge.params['service']);
    for (const s of scopes) query.append('scope', s);
    const url = `${realm}${realm.includes('?') ? '&' : '?'}${query.toString()}`;
    const headers: OutgoingHttpHeaders = auth === undefined ? {} : { Authorization: auth };
    const started = Date.now();
    const res = await send(url, 'GET', headers, [], opts.timeoutMs);
    if (res.status !== 200) return undefined;
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(res.body.toString('utf8')) as typeof body;
    } catch {
      return undefined;
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') return undefined;
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    tokens.set(scopeKey(scopes), { token, expiresAt: started + seconds * 1000 });
    return token;
  }

  return {
    baseUrl: `${base.origin}${prefix}`,
    resolve: resolveLocation,
    async request(method, target, ro = {}) {
      const url = target.startsWith('/') ? `${base.origin}${prefix}${target}` : target;
      const headers: OutgoingHttpHeaders = { ...ro.headers };
      const pieces = ro.body === undefined ? [] : Buffer.isBuffer(ro.body) ? [ro.body] : [...ro.body];
      const hasLength = Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h));
      if (!hasLength && ro.body === undefined && /^(POST|PUT|PATCH)$/.test(method)) headers['Content-Length'] = '0';
      if (!hasLength && Buffer.isBuffer(ro.body)) headers['Content-Length'] = String(ro.body.length);
      const sameOrigin = splitAbsolute(url)?.origin === base.origin;
      const authorize = auth !== undefined && sameOrigin && ro.anonymous !== true && !Object.keys(headers).some((h) => /^authorization$/i.test(h));
      if (!authorize) return send(url, method, headers, pieces, opts.timeoutMs);

      const path = splitAbsolute(url)?.path.slice(prefix.length) ?? '/';
      const from = mountSource(method, path);
      const extra = from === undefined ? [] : [`repository:${from}:pull`];
      let usedKey: string | undefined;
      if (bearerMode) {
        const key = scopeKey([...expectedScopes(method, path), ...extra]);
        const token = cached(key);
        if (token !== undefined) {
          headers['Authorization'] = `Bearer ${token}`;
          usedKey = key;
        }
      } else {
        headers['Authorization'] = auth;
      }
      const first = await send(url, method, headers, pieces, opts.timeoutMs);
      if (first.status !== 401) return first;
      const challenge = parseChallenges(first.header('WWW-Authenticate')).find((c) => c.scheme === 'bearer');
      if (challenge === undefined) return first;
      bearerMode = true;
      const scopes = [...(challenge.params['scope'] ?? '').split(' '), ...extra].filter((s) => s !== '');
      const key = scopeKey(scopes);
      // The token just sent was not enough (expired, revoked): ask once more rather than reuse it.
      if (usedKey === key) tokens.delete(key);
      const token = cached(key) ?? (await fetchToken(challenge, [...new Set(scopes)]));
      if (token === undefined) return first;
      return send(url, method, { ...headers, Authorization: `Bearer ${token}` }, pieces, opts.timeoutMs);
    },
  };
}
