/**
 * Requests to the registry's API (/v2/, /berth/v1/) with the caller's credentials (auth.ts). A Bearer
 * 401 names the scope it wants; the request is retried once with a token for it.
 */
import { apiUrl, authMode, authorizationFor, parseChallenge } from './auth.js';
import type { EmbeddedAnswer } from '../../src/http/ui/boot.js';

/** An API answer that was not a success: its status and the first OCI error code and message. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Every manifest type the pages understand, for `Accept`. */
export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface RequestOptions {
  readonly method?: string;
  readonly accept?: string;
}

/** The scope a request will need, guessed from its path so the first try usually carries a token. */
function scopeOf(method: string, path: string): string | undefined {
  const action = method === 'DELETE' ? 'delete' : method === 'GET' || method === 'HEAD' ? 'pull' : 'pull,push';
  if (path.startsWith('v2/_catalog') || path.startsWith('berth/v1/usage') || path.startsWith('berth/v1/status')) return 'registry:catalog:*';
  const v2 = /^v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//.exec(path);
  if (v2 !== null) return `repository:${v2[1] ?? ''}:${action}`;
  const mine = /^berth\/v1\/repositories\/(.+?)(?:\/(?:usage|tags))?(?:\?.*)?$/.exec(path);
  if (mine !== null) return `repository:${mine[1] ?? ''}:${action}`;
  return undefined;
}

/** GETs sent before the auth mode was known, without credentials, by path (see {@link prefetch}). */
const early = new Map<string, Promise<Response>>();

/**
 * Sends the GETs the first view will make at once, without credentials, while the page still asks the
 * server how it authenticates (`GET /v2/`): on a registry without auth the view then takes these answers
 * and saves a round trip; with auth they are dropped ({@link dropPrefetched}) and asked again with credentials.
 */
export function prefetch(paths: readonly string[]): void {
  for (const path of paths) {
    const res = fetch(apiUrl(path), { credentials: 'omit', cache: 'no-store' });
    res.catch(() => undefined); // a failure is the view's to see, when it takes this answer
    early.set(path, res);
  }
}

/**
 * An answer the page came with, as a Response whose `json()` (or a manifest's `text()`) gives the body
 * at once: reading a body stream waits for a task, and the browser renders the page before that task (a
 * first layout and paint without the rows, tens of ms), where promises alone let the first rows in
 * before the first paint. A manifest's answer carries its media type and `Docker-Content-Digest`.
 */
class EmbeddedResponse extends Response {
  readonly #json: () => unknown;
  readonly #text: string;

  constructor(answer: EmbeddedAnswer) {
    const m = answer.manifest;
    const text = m !== undefined ? m.text : JSON.stringify(answer.body);
    const headers: Record<string, string> = m !== undefined
      ? { 'Content-Type': m.mediaType, 'Docker-Content-Digest': m.digest }
      : { 'Content-Type': 'application/json' };
    if (answer.link !== undefined) headers['Link'] = answer.link;
    super(text, { status: answer.status, headers });
    this.#text = text;
    this.#json = m !== undefined ? () => JSON.parse(text) as unknown : () => answer.body;
  }

  override json(): Promise<unknown> {
    try {
      return Promise.resolve(this.#json());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  override text(): Promise<string> {
    return Promise.resolve(this.#text);
  }
}

/** Answers the server sent with the page for its first view (the boot document, src/http/ui/boot.ts), by path. */
const embedded = new Map<string, EmbeddedAnswer>();

/**
 * Takes the answers the server put in the page: the first view's GETs are answered from them, once,
 * with no request. The server computed them for the page's own caller, which is who the page is
 * until someone signs in (credentials live in memory only, so a page load never carries a sign-in).
 */
export function embed(answers: Readonly<Record<string, EmbeddedAnswer>>): void {
  for (const [path, answer] of Object.entries(answers)) embedded.set(path, answer);
}

/** Whether the answer to GET `path` came with the page (and was not taken yet). */
export function isEmbedded(path: string): boolean {
  return embedded.has(path);
}

/** Forgets the answers {@link prefetch} got, and those the page came with, that no view took. */
export function dropPrefetched(): void {
  early.clear();
  embedded.clear();
}

/** Sends the request; a Bearer 401 asking another scope is retried once with a token for that scope. */
export async function request(path: string, opts: RequestOptions = {}): Promise<Response> {
  const method = opts.method ?? 'GET';
  // A JSON answer stands for a GET without Accept; a manifest's for the manifest GET, which asks every
  // manifest type the pages know, as the server's answer was read.
  const sent = method === 'GET' ? embedded.get(path) : undefined;
  if (sent !== undefined && opts.accept === (sent.manifest !== undefined ? MANIFEST_TYPES : undefined)) {
    embedded.delete(path);
    return new EmbeddedResponse(sent);
  }
  const prefetched = method === 'GET' && opts.accept === undefined && authMode().kind === 'none' ? early.get(path) : undefined;
  if (prefetched !== undefined) {
    early.delete(path);
    return prefetched;
  }
  let scope = scopeOf(method, path);
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = {};
    if (opts.accept !== undefined) headers['Accept'] = opts.accept;
    const authorization = await authorizationFor(scope).catch(() => undefined);
    if (authorization !== undefined) headers['Authorization'] = authorization;
    const res = await fetch(apiUrl(path), { method, headers, credentials: 'omit', cache: 'no-store' });
    if (res.status !== 401 || attempt > 0) return res;
    const challenge = parseChallenge(res.headers.get('WWW-Authenticate'));
    const wanted = challenge?.params['scope'];
    if (challenge?.scheme !== 'bearer' || wanted === undefined || wanted === scope) return res;
    scope = wanted;
  }
}

/** The ApiError of a failed answer (the OCI error body's first entry, when there is one). */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = 'UNKNOWN';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { errors?: { code?: string; message?: string }[] };
    const first = body.errors?.[0];
    if (first?.code !== undefined) code = first.code;
    if (first?.message !== undefined) message = first.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

/** GET a JSON body. @throws ApiError */
export async function getJson<T>(path: string, opts: RequestOptions = {}): Promise<{ body: T; res: Response }> {
  const res = await request(path, opts);
  if (!res.ok) throw await errorOf(res);
  return { body: (await res.json()) as T, res };
}

/** A request whose answer must be a success (DELETE, POST). @throws ApiError */
export async function send(path: string, method: string): Promise<Response> {
  const res = await request(path, { method });
  if (!res.ok) throw await errorOf(res);
  return res;
}

/** The `last` of a `Link: <…?n=…&last=…>; rel="next"` header, when more entries follow. */
export function nextLast(res: Response): string | undefined {
  const next = nextQuery(res);
  return next === undefined ? undefined : new URLSearchParams(next).get('last') ?? undefined;
}

/** The query (without `?`) of a `Link: <…>; rel="next"` header, when more entries follow. */
export function nextQuery(res: Response): string | undefined {
  const link = res.headers.get('Link');
  const m = link === null ? null : /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
  if (m === null) return undefined;
  return new URL(m[1] ?? '', location.href).search.slice(1);
}

/** A repository name or reference in a path: each `/`-separated part URL-encoded. */
export function pathOf(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}
