/**
 * The web UI's first view, sent with its page (issue #17): the page's URL names the view (path routes:
 * `/ui/`, `/ui/?q=<prefix>`, `/ui/r/<name>`, `/ui/m/<name>@<reference>`, `/ui/admin`, `/ui/login`), so
 * the server can answer, inside the HTML, the API requests the view's first screen makes, and the page
 * renders its first rows as soon as its script runs instead of a round trip later.
 *
 * What goes in is exactly what the API would answer the page's script for those requests, under the
 * same rules, computed through the same functions as the endpoints:
 * - the caller is whoever the page request is: its `Authorization` header when it has one (checked by
 *   the access controller as the API checks it); without one, with the built-in issuer, the anonymous
 *   token that issuer gives for the request's scope (what the page's script would fetch); without one
 *   and any other auth, nobody, so nothing is embedded (the API would answer 401);
 * - an answer goes in only when it is a 200: a refusal, a missing repository, an index not ready or a
 *   storage failure puts nothing in, and the page asks the API itself and shows what it answers;
 * - a repository the caller may not pull gives nothing of its own (the usage list leaves it out, as the
 *   endpoint does).
 * The web UI keeps credentials in memory only (web/src/auth.ts), so a page load from a browser carries
 * none: in practice the page holds what an anonymous caller may see. Its answer is per request and per
 * caller, hence never cached (serve-ui.ts: `Cache-Control: no-store`).
 *
 * The answers are keyed by the path the page's script asks them by (web/src/pages/repositories.ts,
 * repository.ts and manifest.ts: their first requests and page sizes); a key that drifts from the
 * script's only costs the round trip again, which the browser test catches.
 *
 * The manifest view's manifest goes in as its text with its media type and digest (what the page reads
 * from `GET /v2/<name>/manifests/<reference>`'s body and headers), read as the API reads it for a client
 * that takes every manifest type the page knows, and counted as the API counts a GET: a pull of the
 * revision, and a pull event to the notification endpoints, made by the page's request. A manifest over
 * {@link MAX_EMBEDDED_MANIFEST_BYTES} is left to the page to ask. The config blob, the referrers and
 * the delete right the view also shows are not embedded yet: the page still asks for those after its
 * script runs (a blob is streamed, never held whole, so it stays an API request).
 */
import { type AccessItem, CATALOG_ACCESS, type Grant, formatScope } from '../../auth/access.js';
import type { AccessController } from '../../auth/controller.js';
import { UnauthorizedError } from '../../errors.js';
import { type Reference, type RepoName, parseReference, parseRepoName } from '../../storage/reference.js';
import { requestBaseUrl } from '../base-url.js';
import type { Boot, EmbeddedAnswer } from './boot.js';
import type { Ctx } from '../context.js';
import { notifyManifestPull } from '../notify.js';
import { sortedTagPage } from '../management/tags.js';
import type { ManagementDeps } from '../management/types.js';
import { repositoryUsageBody, usageListAccess, usageListPage } from '../management/usage.js';

/** A view of the web UI, as its URL (relative to `/ui/`) names it. */
export type UiRoute =
  | { readonly kind: 'repositories'; readonly query: string }
  | { readonly kind: 'repository'; readonly name: string }
  | { readonly kind: 'manifest'; readonly name: string; readonly reference: string }
  | { readonly kind: 'admin' | 'login' };

/** Rows of the repository list's first page (web/src/pages/repositories.ts PAGE_SIZE). */
export const LIST_PAGE_SIZE = 50;
/** Tags on a repository's first page (web/src/pages/repository.ts PAGE_SIZE). */
export const TAG_PAGE_SIZE = 20;
/** What the page's script asks a manifest in (web/src/api.ts MANIFEST_TYPES): a mirror asks its upstream for these. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
/** The largest manifest the page carries; a larger one the page asks for itself. */
export const MAX_EMBEDDED_MANIFEST_BYTES = 256 * 1024;

/**
 * The view at `path` (the URL path after `/ui/`, raw) with the URL's `q`; undefined when no view lives
 * there (the server then looks for a file of that name).
 */
export function routeOf(path: string, q: string | undefined): UiRoute | undefined {
  if (path === '' || path === 'index.html') return { kind: 'repositories', query: (q ?? '').trim() };
  if (path === 'admin' || path === 'login') return { kind: path };
  if (path.startsWith('m/') && path.length > 2) {
    // As web/src/main.ts reads it: the path decoded, the reference after the last `@` (else latest).
    let rest = path.slice(2);
    try {
      rest = decodeURIComponent(rest);
    } catch {
      // a bad escape stays as it is: no repository has that name, so nothing is embedded
    }
    const at = rest.lastIndexOf('@');
    return { kind: 'manifest', name: at < 0 ? rest : rest.slice(0, at), reference: at < 0 ? 'latest' : rest.slice(at + 1) };
  }
  if (path.startsWith('r/') && path.length > 2) {
    try {
      return { kind: 'repository', name: decodeURIComponent(path.slice(2)) };
    } catch {
      return { kind: 'repository', name: '' }; // a bad escape: the page says so, with nothing embedded
    }
  }
  return undefined;
}

export interface FirstViewOptions {
  readonly deps: ManagementDeps;
  readonly access: AccessController | undefined;
  /** The built-in issuer's anonymous token for a scope; none without the built-in issuer. */
  readonly anonymousToken: ((scope: string) => Promise<string>) | undefined;
}

/**
 * The boot document of `route` for the caller of `ctx`. An answer that fails is left out; it rejects
 * only when the anonymous challenge itself cannot be worked out (serve-ui.ts then sends the page without
 * a boot document, and the page asks the API).
 */
export async function bootFor(ctx: Ctx, route: UiRoute, o: FirstViewOptions): Promise<Boot> {
  const baseUrl = `${requestBaseUrl(ctx)}${o.deps.prefix}`;
  let challenge: string | null = null;
  if (o.access !== undefined) {
    challenge = await o.access.authorize({ authorization: undefined, baseUrl }, []).then(() => null, (err: unknown) => {
      if (err instanceof UnauthorizedError) return err.challenge;
      throw err;
    });
  }
  const answers: Record<string, EmbeddedAnswer> = {};
  const caller = callerOf(ctx, baseUrl, o);
  const add = async (path: string, answer: () => Promise<EmbeddedAnswer | undefined>): Promise<void> => {
    // Any failure (refused, NAME_UNKNOWN, UNAVAILABLE, storage): nothing embedded; the page asks the API.
    const got = await answer().catch(() => undefined);
    if (got !== undefined) answers[path] = got;
  };
  if (route.kind === 'repositories') {
    const prefix = route.query === '' ? undefined : route.query;
    await add(usageListPath(prefix), async () => {
      const grant = await caller.grant((authorization) => usageListAccess(authorization), [CATALOG_ACCESS]);
      if (grant === 'refused') return undefined;
      const { body, link } = await usageListPage(o.deps, grant, { prefix, after: undefined, limit: LIST_PAGE_SIZE }, undefined);
      return answer(body, link);
    });
  } else if (route.kind === 'repository') {
    let name;
    try {
      name = parseRepoName(route.name);
    } catch {
      name = undefined;
    }
    if (name !== undefined) {
      const repo = name;
      const pull: AccessItem[] = [{ type: 'repository', name: repo, actions: ['pull'] }];
      await Promise.all([
        add(tagPagePath(repo), async () => {
          if ((await caller.grant(() => pull, pull)) === 'refused') return undefined;
          const { body, link } = await sortedTagPage(o.deps, repo, { order: 'version', limit: TAG_PAGE_SIZE }, undefined);
          return answer(body, link);
        }),
        add(repositoryUsagePath(repo), async () => {
          if ((await caller.grant(() => pull, pull)) === 'refused') return undefined;
          return answer(await repositoryUsageBody(o.deps, repo, undefined), undefined);
        }),
      ]);
    }
  } else if (route.kind === 'manifest') {
    const target = manifestTarget(route.name, route.reference);
    if (target !== undefined) {
      const pull: AccessItem[] = [{ type: 'repository', name: target.repo, actions: ['pull'] }];
      await add(manifestPath(route.name, route.reference), async () => {
        if ((await caller.grant(() => pull, pull)) === 'refused') return undefined;
        const m = await o.deps.registry.repository(target.repo).manifests.get(target.ref, { signal: ctx.state.signal, accept: MANIFEST_ACCEPT, pull: true });
        if (m.content.length > MAX_EMBEDDED_MANIFEST_BYTES) return undefined;
        await notifyManifestPull(ctx, o.deps, target.repo, target.ref, m);
        return { status: 200, manifest: { text: m.content.toString('utf8'), mediaType: m.mediaType, digest: m.digest } };
      });
    }
  }
  return { base: `${o.deps.prefix}/ui/`, auth: { challenge, issuer: o.anonymousToken !== undefined }, answers };
}

function answer(body: unknown, link: string | undefined): EmbeddedAnswer {
  return { status: 200, body, ...(link !== undefined && { link }) };
}

/** The page's script's request for the list's first page (web/src/registry.ts usagePath). */
export function usageListPath(prefix: string | undefined): string {
  return `berth/v1/usage?${new URLSearchParams({ n: String(LIST_PAGE_SIZE), ...(prefix !== undefined && { prefix }) })}`;
}

/** The page's script's request for a repository's first tags (web/src/registry.ts tagPagePath). */
export function tagPagePath(name: string): string {
  return `berth/v1/repositories/${pathOf(name)}/tags?${new URLSearchParams({ sort: 'version', n: String(TAG_PAGE_SIZE) })}`;
}

/** The repository and reference of a manifest view; undefined when either is not valid (the page then says what the API says). */
function manifestTarget(name: string, reference: string): { readonly repo: RepoName; readonly ref: Reference } | undefined {
  try {
    return { repo: parseRepoName(name), ref: parseReference(reference) };
  } catch {
    return undefined;
  }
}

/** The page's script's request for a manifest (web/src/registry.ts fetchManifest). */
export function manifestPath(name: string, reference: string): string {
  return `v2/${pathOf(name)}/manifests/${encodeURIComponent(reference)}`;
}

/** The page's script's request for a repository's usage (web/src/registry.ts repositoryUsagePath). */
export function repositoryUsagePath(name: string): string {
  return `berth/v1/repositories/${pathOf(name)}/usage`;
}

function pathOf(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

/** The caller of a page request, as the API would see the page's script. */
interface Caller {
  /**
   * What the caller holds for a request needing `needed(authorization)` (undefined: no auth, everything),
   * or 'refused' where the API would answer 401 or 403. `tokenScope` is the scope the page's script would
   * ask the built-in issuer for (web/src/api.ts scopeOf).
   */
  grant(needed: (authorization: string | undefined) => readonly AccessItem[], tokenScope: readonly AccessItem[]): Promise<Grant | undefined | 'refused'>;
}

function callerOf(ctx: Ctx, baseUrl: string, o: FirstViewOptions): Caller {
  const own = ctx.get('Authorization') || undefined;
  return {
    async grant(needed, tokenScope) {
      const access = o.access;
      if (access === undefined) return undefined;
      const authorization = own ?? (o.anonymousToken && `Bearer ${await o.anonymousToken(formatScope(tokenScope))}`);
      try {
        return await access.authorize({ authorization, baseUrl }, needed(authorization));
      } catch (err) {
        if (err instanceof UnauthorizedError || (err instanceof Error && 'code' in err && err.code === 'DENIED')) return 'refused';
        throw err;
      }
    },
  };
}
