/**
 * The client of one upstream registry (distribution-spec v1.1 over Node's fetch): manifest HEAD and
 * GET, blob GET, tag lists and referrers, each authenticated as upstream-auth.ts says. Redirects are
 * followed by hand, at most MAX_REDIRECTS times, only to http(s), and without credentials once they
 * leave the upstream's origin (a CDN never sees them). Every request has a deadline for its answer's
 * headers; a blob body then flows for as long as its reader wants (the caller's signal stops it).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type Credentials, UpstreamAuthError, createUpstreamAuth, parseChallenge } from './upstream-auth.js';

/** A manifest is refused above this many bytes, as storage refuses one pushed (4 MiB). */
export const MAX_UPSTREAM_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const DEFAULT_TIMEOUT_MS = 15_000;

/** Why an upstream request failed: no answer, too slow, an error status, or an answer that cannot be used. */
export type UpstreamFailure = 'unreachable' | 'timeout' | 'status' | 'invalid';

/** An upstream request that failed; `status` is the upstream's HTTP status for `status` failures. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(readonly kind: UpstreamFailure, message: string, readonly status?: number, options?: ErrorOptions) {
    super(message, options);
  }
}

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
  request(repo: string, path: string, r: RequestOptions): Promise<Response>;
  ok(res: Response, what: string): Promise<Response>;
} {
  const origin = new URL(o.url).origin;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const auth = createUpstreamAuth(o.credentials, (url, init) => fetchWithDeadline(url, { method: 'GET', ...init }, timeoutMs));
  const send = (url: string, r: RequestOptions, headers: Record<string, string>, authorization: string | undefined): Promise<Response> =>
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
        const challenge = parseChallenge(res.headers.get('WWW-Authenticate'));
        await res.body?.cancel();
        const answer = challenge === undefined ? undefined : await auth.answer(challenge, scope, r.signal);
        if (answer === undefined) return res;
        res = await send(url, r, headers, answer);
        if (res.status === 401) auth.forget(scope);
        return res;
      } catch (err) {
        throw asUpstreamError(err, o.name);
      }
    },
    async ok(res, what) {
      if (res.ok) return res;
      await res.body?.cancel().catch(() => undefined);
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
      const res = await ok(await request(repo, `manifests/${ref}`, { method: 'HEAD', accept, signal }), `${repo}:${ref}`);
      return { digest: res.headers.get('Docker-Content-Digest') ?? undefined, mediaType: mediaTypeOf(res) };
    },
    async getManifest(repo, ref, accept, signal) {
      const res = await ok(await request(repo, `manifests/${ref}`, { method: 'GET', accept, signal }), `${repo}:${ref}`);
      const content = await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES, o.name);
      return { digest: res.headers.get('Docker-Content-Digest') ?? undefined, mediaType: mediaTypeOf(res), content };
    },
    async getBlob(repo, digest, signal) {
      const res = await ok(await request(repo, `blobs/${digest}`, { method: 'GET', signal }), digest);
      if (res.body === null) throw new UpstreamError('invalid', `upstream ${o.name} sent no body for ${digest}`);
      const length = res.headers.get('Content-Length');
      const size = length !== null && /^\d+$/.test(length) ? Number(length) : undefined;
      return { size, body: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) };
    },
    async headBlob(repo, digest, signal) {
      const res = await request(repo, `blobs/${digest}`, { method: 'HEAD', signal });
      if (res.status === 404) return undefined;
      await ok(res, digest);
      const length = Number(res.headers.get('Content-Length') ?? Number.NaN);
      return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
    },
    async tags(repo, page, signal) {
      const query = new URLSearchParams();
      if (page.n !== undefined) query.set('n', String(page.n));
      if (page.last !== undefined) query.set('last', page.last);
      const qs = query.size > 0 ? `?${query.toString()}` : '';
      const res = await ok(await request(repo, `tags/list${qs}`, { method: 'GET', signal }), `${repo} tags`);
      const body = JSON.parse((await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES * 4, o.name)).toString('utf8')) as { tags?: unknown };
      return Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === 'string') : [];
    },
    async referrers(repo, digest, artifactType, signal) {
      const qs = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
      const res = await request(repo, `referrers/${digest}${qs}`, { method: 'GET', signal });
      if (res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      await ok(res, `${repo} referrers of ${digest}`);
      const body = JSON.parse((await readCapped(res, MAX_UPSTREAM_MANIFEST_BYTES, o.name)).toString('utf8')) as { manifests?: unknown };
      return Array.isArray(body.manifests) ? body.manifests : [];
    },
  };
}

function withAuth(headers: Record<string, string>, authorization: string | undefined): Record<string, string> {
  return authorization === undefined ? headers : { ...headers, Authorization: authorization };
}

function mediaTypeOf(res: Response): string {
  return (res.headers.get('Content-Type') ?? 'application/octet-stream').split(';')[0]?.trim() ?? 'application/octet-stream';
}

/** Fetches `url`, following redirects by hand; Authorization is dropped once a hop leaves `origin`. */
async function follow(url: string, origin: string, init: { method: string; headers: Record<string, string>; signal: AbortSignal }, timeoutMs: number): Promise<Response> {
  let target = url;
  let headers = init.headers;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetchWithDeadline(target, { ...init, headers }, timeoutMs);
    if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
    const location = res.headers.get('Location');
    await res.body?.cancel();
    if (location === null) throw new UpstreamError('invalid', `redirect ${res.status} without a Location from ${new URL(target).host}`);
    const next = new URL(location, target);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new UpstreamError('invalid', `redirect to a non-http(s) URL (${next.protocol})`);
    if (next.origin !== origin) {
      const { Authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    target = next.href;
  }
  throw new UpstreamError('invalid', `more than ${MAX_REDIRECTS} redirects from ${new URL(url).host}`);
}

/** fetch() whose wait for the answer's headers is bounded; the body then follows only `init.signal`. */
async function fetchWithDeadline(url: string, init: { method: string; headers: Record<string, string>; signal: AbortSignal }, timeoutMs: number): Promise<Response> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(init.signal.reason);
  if (init.signal.aborted) onAbort();
  init.signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new UpstreamError('timeout', `no answer from ${new URL(url).host} within ${timeoutMs} ms`)), timeoutMs);
  try {
    // The caller's signal stays linked: aborting it later stops the body too.
    return await fetch(url, { method: init.method, headers: init.headers, redirect: 'manual', signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** The whole body, refused past `max` bytes. */
async function readCapped(res: Response, max: number, name: string): Promise<Buffer> {
  const length = Number(res.headers.get('Content-Length') ?? 0);
  const tooLarge = (): UpstreamError => new UpstreamError('invalid', `upstream ${name} sent more than ${max} bytes for a manifest or list`);
  if (length > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body === null) return Buffer.alloc(0);
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > max) throw tooLarge();
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    await res.body.cancel().catch(() => undefined);
    throw asUpstreamError(err, name);
  }
  return Buffer.concat(chunks);
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
