/**
 * Usage endpoints: `GET /berth/v1/repositories/<name>/usage` (pull on the repository) and
 * `GET /berth/v1/usage?prefix=&n=&last=` (every repository with the catalog grant, otherwise those the
 * caller may pull: those its token grants pull on, and with the built-in issuer those its rules let it
 * pull), paged like the catalog with a `Link` header.
 */
import { type AccessItem, CATALOG_ACCESS, type Grant, allows } from '../../auth/access.js';
import { unavailable } from '../../errors.js';
import type { RegistryManagement, RepoUsage } from '../../storage/registry.js';
import type { RepoName } from '../../storage/reference.js';
import type { Ctx } from '../context.js';
import { nextLink } from '../headers.js';
import { pagination, queryValue, repoName } from '../params.js';
import type { ManagementDeps, ManagementEndpoint } from './types.js';

/** The JSON form of a RepoUsage (times as RFC 3339, null when unknown). */
export function usageJson(u: RepoUsage): Record<string, unknown> {
  return {
    name: u.name,
    logicalBytes: u.logicalBytes,
    sharedBytes: u.sharedBytes,
    exclusiveBytes: u.exclusiveBytes,
    tags: u.tags,
    manifests: u.manifests,
    lastPush: u.lastPush?.toISOString() ?? null,
    lastPull: u.lastPull?.toISOString() ?? null,
  };
}

/** The management face, or 503 when the app was built without one. */
export function managementOf(deps: ManagementDeps): RegistryManagement {
  if (deps.management === undefined) throw unavailable('the management API is not available on this server');
  return deps.management;
}

/** Pull on the named repository. */
export function pullOnName(ctx: Ctx): AccessItem[] {
  return [{ type: 'repository', name: repoName(ctx), actions: ['pull'] }];
}

/** The body of `GET /berth/v1/repositories/<name>/usage`. @throws NAME_UNKNOWN, UNAVAILABLE */
export async function repositoryUsageBody(deps: ManagementDeps, name: RepoName, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
  return usageJson(await managementOf(deps).usage(name, signal === undefined ? {} : { signal }));
}

export const getRepositoryUsage: ManagementEndpoint = {
  access: pullOnName,
  writes: false,
  async handle(ctx, deps) {
    const body = await repositoryUsageBody(deps, repoName(ctx), ctx.state.signal);
    ctx.status = 200;
    ctx.body = body;
  },
};

/**
 * What `GET /berth/v1/usage` needs: without credentials the challenge asks for the catalog, the widest
 * view; a caller with a token that lacks it still gets the repositories the token lets it pull.
 */
export function usageListAccess(authorization: string | undefined): AccessItem[] {
  return authorization === undefined || authorization === '' ? [CATALOG_ACCESS] : [];
}

/** A query of `GET /berth/v1/usage`. */
export interface UsageListQuery {
  readonly prefix: string | undefined;
  readonly after: string | undefined;
  readonly limit: number;
}

/**
 * A page of `GET /berth/v1/usage` for the holder of `grant` (undefined: no auth, everything): its body
 * and the `Link` to the next page. @throws UNAVAILABLE
 */
export async function usageListPage(
  deps: ManagementDeps, grant: Grant | undefined, q: UsageListQuery, signal: AbortSignal | undefined,
): Promise<{ body: { repositories: Record<string, unknown>[] }; link: string | undefined }> {
  // "May pull": what the token grants, or, with the built-in issuer, what its rules let the holder pull
  // (anonymous visitors of the web UI see the repositories anonymous may pull).
  const include = grant === undefined || allows(grant, CATALOG_ACCESS)
    ? undefined
    : (name: string) => allows(grant, { type: 'repository', name, actions: ['pull'] }) || grant.mayPull?.(name) === true;
  const page = await managementOf(deps).usages({ prefix: q.prefix, after: q.after, limit: q.limit + 1, include }, signal === undefined ? {} : { signal });
  const items = page.slice(0, q.limit);
  const lastItem = items.at(-1);
  let link: string | undefined;
  if (page.length > q.limit && lastItem !== undefined) {
    const params: Record<string, string> = { n: String(q.limit), last: lastItem.name, ...(q.prefix !== undefined && { prefix: q.prefix }) };
    link = nextLink(`${deps.prefix}/berth/v1/usage`, params);
  }
  return { body: { repositories: items.map(usageJson) }, link };
}

export const listUsage: ManagementEndpoint = {
  access: (ctx) => usageListAccess(ctx.get('Authorization')),
  writes: false,
  async handle(ctx, deps) {
    const { n, last } = pagination(ctx, deps.maxListEntries);
    const query = { prefix: queryValue(ctx, 'prefix'), after: last, limit: n ?? deps.maxListEntries };
    const { body, link } = await usageListPage(deps, ctx.state.grant, query, ctx.state.signal);
    if (link !== undefined) ctx.set('Link', link);
    ctx.status = 200;
    ctx.body = body;
  },
};
