/**
 * What the pages read from the registry, in OCI terms: repositories (with usage figures when the
 * management API has them), tags, manifests, image configs and referrers.
 */
import { ApiError, MANIFEST_TYPES, getJson, nextLast, nextQuery, pathOf, request, errorOf } from './api.js';

export interface Platform {
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface Manifest {
  readonly schemaVersion?: number;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
  readonly manifests?: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface FetchedManifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly manifest: Manifest;
  readonly raw: string;
}

/** An image config's parts the pages show. */
export interface ImageConfig {
  readonly created?: string;
  readonly architecture?: string;
  readonly os?: string;
  readonly config?: { readonly Labels?: Readonly<Record<string, string>> | null; readonly Cmd?: readonly string[]; readonly Entrypoint?: readonly string[] };
  readonly history?: readonly { readonly created?: string; readonly created_by?: string; readonly empty_layer?: boolean; readonly comment?: string }[];
}

/** A repository in the list: usage figures when `/berth/v1/usage` gives them. */
export interface RepoRow {
  readonly name: string;
  readonly tags?: number;
  readonly logicalBytes?: number;
  readonly exclusiveBytes?: number;
  readonly lastPush?: string | null;
}

/** A tag of a repository: the management API gives digest, size and push time in one request. */
export interface TagRow {
  readonly tag: string;
  readonly digest?: string;
  readonly mediaType?: string;
  readonly size?: number;
  readonly pushed?: string | null;
}

export interface RepoPage {
  readonly repos: readonly RepoRow[];
  /** The `last` of the next page, when there is one. */
  readonly next: string | undefined;
  /** Where the list came from: the usage API, or only the catalog (no figures). */
  readonly source: 'usage' | 'catalog';
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export function isIndex(m: FetchedManifest | Manifest): boolean {
  const manifest = 'manifest' in m ? m.manifest : m;
  const type = 'manifest' in m ? m.mediaType : m.mediaType ?? '';
  return INDEX_TYPES.has(type) || manifest.manifests !== undefined;
}

let usageAvailable: boolean | undefined;

/** Configs and referrer lists read for the page on screen, by repository and digest (content-addressed). */
const configs = new Map<string, Promise<ImageConfig | undefined>>();
const referrerLists = new Map<string, Promise<Descriptor[]>>();

/** Forgets what the page read (a new page reads afresh: referrers may have come or gone). */
export function clearCache(): void {
  configs.clear();
  referrerLists.clear();
}

function remember<T>(memo: Map<string, Promise<T>>, key: string, read: () => Promise<T>): Promise<T> {
  let got = memo.get(key);
  if (got === undefined) {
    got = read();
    memo.set(key, got);
    got.catch(() => memo.delete(key));
  }
  return got;
}

/**
 * A page of repositories with usage figures (tag count, size, last push) from `/berth/v1/usage`: names
 * starting with `prefix`, after `last`. Undefined when the server cannot give figures: it has no usage
 * API (404, not asked again) or its index is not ready (503, asked again next time).
 * @throws ApiError for any other failure
 */
export async function usagePage(prefix: string, last: string | undefined, n: number): Promise<RepoPage | undefined> {
  if (usageAvailable === false) return undefined;
  const res = await request(usagePath(prefix, last, n));
  if (res.ok) {
    usageAvailable = true;
    const body = (await res.json()) as { repositories: RepoRow[] };
    return { repos: body.repositories, next: nextLast(res), source: 'usage' };
  }
  if (res.status !== 404 && res.status !== 503) throw await errorOf(res);
  if (res.status === 404) usageAvailable = false;
  return undefined;
}

/**
 * A page of repository names from `/v2/_catalog` (answered from the listing index): names starting with
 * `prefix`, after `last`. The catalog's sorted order lets a prefix be found by starting just before it.
 * @throws ApiError
 */
export async function catalogPage(prefix: string, last: string | undefined, n: number): Promise<RepoPage> {
  const { body, res } = await getJson<{ repositories: string[] }>(catalogPath(prefix, last, n));
  const matching = body.repositories.filter((r) => r.startsWith(prefix));
  const more = matching.length === body.repositories.length ? nextLast(res) : undefined;
  return { repos: matching.map((name) => ({ name })), next: more, source: 'catalog' };
}

/** The request of {@link usagePage}. */
export function usagePath(prefix: string, last: string | undefined, n: number): string {
  return `berth/v1/usage?${new URLSearchParams({ n: String(n), ...(prefix !== '' && { prefix }), ...(last !== undefined && { last }) })}`;
}

/** The request of {@link catalogPage}. */
export function catalogPath(prefix: string, last: string | undefined, n: number): string {
  const start = last ?? beforePrefix(prefix);
  return `v2/_catalog?${new URLSearchParams({ n: String(n), ...(start !== undefined && { last: start }) })}`;
}

/** A string just before every name starting with `prefix` in code-unit order (undefined: from the start). */
function beforePrefix(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  const lastChar = prefix.charCodeAt(prefix.length - 1);
  return `${prefix.slice(0, -1)}${String.fromCharCode(lastChar - 1)}\u007f`;
}

/** One repository's usage (`/berth/v1/repositories/<name>/usage`); undefined when the API is missing. */
export async function repositoryUsage(name: string): Promise<(RepoRow & { sharedBytes?: number; manifests?: number; lastPull?: string | null }) | undefined> {
  const res = await request(repositoryUsagePath(name));
  if (res.status === 404 && (await errorOf(res)).code === 'UNSUPPORTED') return undefined;
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as RepoRow;
}

/** The request of {@link repositoryUsage}. */
export function repositoryUsagePath(name: string): string {
  return `berth/v1/repositories/${pathOf(name)}/usage`;
}

/** The orders the tags endpoint sorts a page in (newest first), on the server. */
export type TagOrder = 'version' | 'pushed';

/** A page of a repository's tags in an order, with the repository's tag count and where the next page starts. */
export interface TagPage {
  readonly tags: readonly TagRow[];
  readonly total: number;
  /** The query of the next page (the `Link` header's), when there is one. */
  readonly next: string | undefined;
}

/**
 * The request of {@link tagPage}: the first `n` tags of `name` in `order`, or the page `next` names
 * (the query of a page's `Link`).
 */
export function tagPagePath(name: string, order: TagOrder, n: number, next?: string): string {
  return `berth/v1/repositories/${pathOf(name)}/tags?${next ?? new URLSearchParams({ sort: order, n: String(n) }).toString()}`;
}

/**
 * A page of the tags of `name` sorted by the server (`/berth/v1/repositories/<name>/tags?sort=`), each
 * with digest, size and push time: what the repository page shows first, in one request whatever the
 * number of tags. @throws ApiError
 */
export async function tagPage(name: string, order: TagOrder, n: number, next?: string): Promise<TagPage> {
  const { body, res } = await getJson<{ tags: TagRow[]; total: number }>(tagPagePath(name, order, n, next));
  return { tags: body.tags, total: body.total, next: nextQuery(res) };
}

/** The manifest `reference` (tag or digest) of `name`, in whatever type it was pushed as. @throws ApiError */
export async function fetchManifest(name: string, reference: string): Promise<FetchedManifest> {
  const res = await request(`v2/${pathOf(name)}/manifests/${encodeURIComponent(reference)}`, { accept: MANIFEST_TYPES });
  if (!res.ok) throw await errorOf(res);
  const raw = await res.text();
  const manifest = JSON.parse(raw) as Manifest;
  return {
    digest: res.headers.get('Docker-Content-Digest') ?? reference,
    mediaType: manifest.mediaType ?? (res.headers.get('Content-Type') ?? '').split(';')[0] ?? '',
    manifest,
    raw,
  };
}

/** The image config a manifest names, when it is a JSON config small enough to show. */
export function fetchConfig(name: string, m: Manifest): Promise<ImageConfig | undefined> {
  const c = m.config;
  if (c === undefined || c.size > 4_000_000 || !/json/.test(c.mediaType) || c.size <= 2) return Promise.resolve(undefined);
  return remember(configs, `${name}@${c.digest}`, () => readConfig(name, c));
}

async function readConfig(name: string, c: Descriptor): Promise<ImageConfig | undefined> {
  const res = await request(`v2/${pathOf(name)}/blobs/${c.digest}`);
  if (!res.ok) return undefined;
  try {
    return (await res.json()) as ImageConfig;
  } catch {
    return undefined;
  }
}

/** The compressed size of an image: its config and layers (an index: undefined, see its children). */
export function imageSize(m: Manifest): number | undefined {
  if (m.layers === undefined) return undefined;
  return (m.config?.size ?? 0) + m.layers.reduce((sum, l) => sum + l.size, 0);
}

/** The referrers of `digest` in `name` (the referrers API). */
export function fetchReferrers(name: string, digest: string): Promise<Descriptor[]> {
  return remember(referrerLists, `${name}@${digest}`, () => readReferrers(name, digest));
}

async function readReferrers(name: string, digest: string): Promise<Descriptor[]> {
  try {
    const { body } = await getJson<Manifest>(`v2/${pathOf(name)}/referrers/${digest}`);
    return [...(body.manifests ?? [])];
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return [];
    throw err;
  }
}
