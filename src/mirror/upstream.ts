/**
 * The client of one upstream registry (distribution-spec v1.1 over node:http(s), upstream-http.ts):
 * manifest HEAD and GET, blob GET, tag lists and referrers, each authenticated as upstream-auth.ts
 * says. Redirects are followed by hand, at most MAX_REDIRECTS times, only to http(s), and without
 * credentials once they leave the upstream's origin (a CDN never sees them). Every request has a
 * deadline for its answer's headers; a blob body then flows for as long as its reader wants (the
 * caller's signal stops it).
 */
import type { Readable } from 'node:stream';
import { type Credentials, UpstreamAuthError, createUpstreamAuth, parseChallenge } from './upstream-auth.js';
import { type UpstreamResponse, UpstreamError, readBody, sendUpstream } from './upstream-http.js';

export { UpstreamError, type UpstreamFailure } from './upstream-http.js';

/** A manifest is refused above this many bytes, as storage refuses one pushed (4 MiB). */
export const MAX_UPSTREAM_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const DEFAULT_TIMEOUT_MS = 15_000;

/** What a manifest HEAD or GET told. */
export interface UpstreamManifestHead {
  /** `Docker-Content-Digest`, when the upstream sent one. */
  readonly digest: string | undefined;
  readonly mediaType: string;
}

export interface UpstreamManifest extends UpstreamManifestHead {
  readonly content: Buffer;
}

/** A blob answer: its size when the upstream said (Content-Length) and its bytes. */
export interface UpstreamBlob {
  readonly size: number | undefined;
  readonly body: Readable;
}

/** How to reach and authenticate to one upstream. */
export interface UpstreamOptions {
  /** Its name in logs and metrics (the prefix, or the URL's host). */
  readonly name: string;
  /** `http(s)://host[:port][/path]`, without a trailing slash. */
  readonly url: string;
  /** The credentials for this upstream, asked for at each token or Basic request (a file may change). */
  readonly credentials: () => Promise<Credentials | undefined>;
  /** How long an answer's headers may take. */
  readonly timeoutMs?: number;
}

/** One upstream registry. Every method throws UpstreamError. */
export interface UpstreamClient {
  readonly name: string;
  headManifest(repo: string, ref: string, accept: string, signal: AbortSignal): Promise<UpstreamManifestHead>;
  getManifest(repo: string, ref: string, accept: string, signal: AbortSignal): Promise<UpstreamManifest>;
  /** The blob's bytes; `signal` aborts the transfer too, not only the wait for headers. */
  getBlob(repo: string, digest: string, signal: AbortSignal): Promise<UpstreamBlob>;
  /** The blob's size; undefined when the upstream does not have it. */
  headBlob(repo: string, digest: string, signal: AbortSignal): Promise<number | undefined>;
  /** The upstream's tag list page (`n`, `last` passed on). */
  tags(repo: string, page: { n?: number | undefined; last?: string | undefined }, signal: AbortSignal): Promise<string[]>;
  /** The referrers index's descriptors; undefined when the upstream has no referrers API (404 with no OCI error). */
  referrers(repo: string, digest: string, artifactType: string | undefined, signal: AbortSignal): Promise<unknown[] | undefined>;
}

interface RequestOptions {
  readonly method: 'GET' | 'HEAD';
  readonly accept?: string;
  readonly signal: AbortSignal;
}

/** Authenticated requests to one upstream (`request`), and the check that turns an error status into an UpstreamError (`ok`). */
function requester(o: UpstreamOptions): {
  request(repo: string, path: string, r: RequestOptions): Promise<UpstreamResponse>;
  ok(res: UpstreamResponse, what: string): UpstreamResponse;
} {
  const origin = new URL(o.url).origin;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const auth = createUpstreamAuth(o.credentials, (url, init) => sendUpstream(new URL(url), { method: 'GET', ...init, timeoutMs }));
  const send = (url: string, r: RequestOptions, headers: Record<string, string>, authorization: string | undefined): Promise<UpstreamResponse> =>
    follow(url, origin, { method: r.method, headers: withAuth(headers, authorization), signal: r.signal }, timeoutMs);
  return {
    async request(repo, path, r) {
      const scope = `repository:${repo}:pull`;
      const url = `${o.url}/v2/${repo}/${path}`;
      const headers: Record<string, string> = { 'User-Agent': 'berth-mirror' };
      if (r.accept !== undefined) headers['Accept'] = r.accept;
      try {
        let res = await send(url, r, headers, await auth.known(scope, r.signal));
        if (res.status !== 401) return res;
        const challenge = parseChallenge(res.header('WWW-Authenticate') ?? null);
        res.discard();
        const answer = challenge === undefined ? undefined : await auth.answer(challenge, scope, r.signal);
        if (answer === undefined) return res;
        res = await send(url, r, headers, answer);
        if (res.status === 401) auth.forget(scope);
        return res;
      } catch (err) {
        throw asUpstreamError(err, o.name);
      }
    },
    ok(res, what) {
      if (res.status >= 200 && res.status < 300) return res;
      res.discard();
      throw new UpstreamError('status', `upstream ${o.name} answered ${res.status} for ${what}`, res.status);
    },
  };
}

/** A client of the upstream `o.url`. */
export function createUpstreamClient(o: UpstreamOptions): UpstreamClient {
  const { request, ok } = requester(o);
  return {
    name: o.name,
    async headManifest(repo, ref, accept, signal) {
      const res = ok(await request(repo, `manifests/${ref}`, { method: 'HEAD', accept, signal }), `${repo}:${ref}`);
      res.discard();
      return { digest: res.header('Docker-Content-Digest'), mediaType: mediaTypeOf(res) };
    },
    async getManifest(repo, ref, accept, signal) {
      const res = ok(await request(repo, `manifests/${ref}`, { method: 'GET', accept, signal }), `${repo}:${ref}`);
      const content = await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES, o.name);
      return { digest: res.header('Docker-Content-Digest'), mediaType: mediaTypeOf(res), content };
    },
    async getBlob(repo, digest, signal) {
      const res = ok(await request(repo, `blobs/${digest}`, { method: 'GET', signal }), digest);
      const length = res.header('Content-Length');
      const size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
      return { size, body: res.body };
    },
    async headBlob(repo, digest, signal) {
      const res = await request(repo, `blobs/${digest}`, { method: 'HEAD', signal });
      res.discard();
      if (res.status === 404) return undefined;
      ok(res, digest);
      const length = Number(res.header('Content-Length') ?? Number.NaN);
      return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    },
    async tags(repo, page, signal) {
      const query = new URLSearchParams();
      if (page.n !== undefined) query.set('n', String(page.n));
      if (page.last !== undefined) query.set('last', page.last);
      const qs = query.size > 0 ? `?${query.toString()}` : '';
      const res = ok(await request(repo, `tags/list${qs}`, { method: 'GET', signal }), `${repo} tags`);
      const body = JSON.parse((await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES * 4, o.name)).toString('utf8')) as { tags?: unknown };
      return Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === 'string') : [];
    },
    async referrers(repo, digest, artifactType, signal) {
      const qs = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
      const res = await request(repo, `referrers/${digest}${qs}`, { method: 'GET', signal });
      if (res.status === 404) {
        res.discard();
        return undefined;
      }
      ok(res, `${repo} referrers of ${digest}`);
      const body = JSON.parse((await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES, o.name)).toString('utf8')) as { manifests?: unknown };
      return Array.isArray(body.manifests) ? body.manifests : [];
    },
  };
}

function withAuth(headers: Record<string, string>, authorization: string | undefined): Record<string, string> {
  return authorization === undefined ? headers : { ...headers, Authorization: authorization };
}

function mediaTypeOf(res: UpstreamResponse): string {
  return (res.header('Content-Type') ?? 'application/octet-stream').split(';')[0]?.trim() ?? 'application/octet-stream';
}

/** Sends a request to `url`, following redirects by hand; Authorization is dropped once a hop leaves `origin`. */
async function follow(url: string, origin: string, init: { method: 'GET' | 'HEAD'; headers: Record<string, string>; signal: AbortSignal }, timeoutMs: number): Promise<UpstreamResponse> {
  let target = new URL(url);
  let headers = init.headers;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await sendUpstream(target, { ...init, headers, timeoutMs });
    if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
    const location = res.header('Location');
    res.discard();
    if (location === undefined) throw new UpstreamError('invalid', `redirect ${res.status} without a Location from ${target.host}`);
    const next = new URL(location, target);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new UpstreamError('invalid', `redirect to a non-http(s) URL (${next.protocol})`);
    if (next.origin !== origin) {
      const { Authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    target = next;
  }
  throw new UpstreamError('invalid', `more than ${MAX_REDIRECTS} redirects from ${new URL(url).host}`);
}

/** The whole body, refused past `max` bytes. */
async function readCapped(res: UpstreamResponse, max: number, name: string): Promise<Buffer> {
  try {
    return await readBody(res, max, () => new UpstreamError('invalid', `upstream ${name} sent more than ${max} bytes for a manifest or list`));
  } catch (err) {
    throw asUpstreamError(err, name);
  }
}

/** Any failure of a request as an UpstreamError. */
export function asUpstreamError(err: unknown, name: string): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof UpstreamAuthError) {
    return new UpstreamError(err.status === undefined ? 'invalid' : 'status', `upstream ${name}: ${err.message}`, err.status, { cause: err });
  }
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof UpstreamError) return cause;
  const message = err instanceof Error ? `${err.message}${cause instanceof Error ? `: ${cause.message}` : ''}` : String(err);
  return new UpstreamError('unreachable', `upstream ${name} unreachable: ${message}`, undefined, { cause: err });
}
