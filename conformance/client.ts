/**
 * A tiny HTTP client for the suite over node:http and node:https. It never normalises a path: what a
 * check asks for (or what a registry's Location says) is sent byte for byte, because URL parsers drop
 * `..` segments and re-encode queries, and a registry's `_state` token must come back as it was sent.
 *
 * Targets are either a path (`/v2/…`, joined to the base URL's own path prefix) or an absolute URL
 * (a Location that points elsewhere). Credentials go only to the base URL's origin.
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

/** A client for the registry at `opts.baseUrl`. */
export function createClient(opts: ClientOptions): Client {
  const base = splitAbsolute(opts.baseUrl.replace(/\/+$/, ''));
  if (base === undefined) throw new Error(`not an absolute URL: ${opts.baseUrl}`);
  const prefix = base.path === '/' ? '' : base.path;
  const auth = opts.credentials === undefined
    ? undefined
    : `Basic ${Buffer.from(`${opts.credentials.username}:${opts.credentials.password}`).toString('base64')}`;
  return {
    baseUrl: `${base.origin}${prefix}`,
    resolve: resolveLocation,
    request(method, target, ro = {}) {
      const url = target.startsWith('/') ? `${base.origin}${prefix}${target}` : target;
      const headers: OutgoingHttpHeaders = { ...ro.headers };
      const pieces = ro.body === undefined ? [] : Buffer.isBuffer(ro.body) ? [ro.body] : [...ro.body];
      const hasLength = Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h));
      if (!hasLength && ro.body === undefined && /^(POST|PUT|PATCH)$/.test(method)) headers['Content-Length'] = '0';
      if (!hasLength && Buffer.isBuffer(ro.body)) headers['Content-Length'] = String(ro.body.length);
      const sameOrigin = splitAbsolute(url)?.origin === base.origin;
      if (auth !== undefined && sameOrigin && ro.anonymous !== true && !Object.keys(headers).some((h) => /^authorization$/i.test(h))) {
        headers['Authorization'] = auth;
      }
      return send(url, method, headers, pieces, opts.timeoutMs);
    },
  };
}
