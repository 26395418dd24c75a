/**
 * Usage endpoints: `GET /berth/v1/repositories/<name>/usage` (pull on the repository) and
 * `GET /berth/v1/usage?prefix=&n=&last=` (every repository with the catalog grant, otherwise those the
 * caller may pull), paged like the catalog with a `Link` header.
 */
import { type AccessItem, CATALOG_ACCESS, allows } from '../../auth/access.js';
import { unavailable } from '../../errors.js';
import type { RegistryManagement, RepoUsage } from '../../storage/registry.js';
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

export const getRepositoryUsage: ManagementEndpoint = {
  access: pullOnName,
  writes: false,
  async handle(ctx, deps) {
    const usage = await managementOf(deps).usage(repoName(ctx), { signal: ctx.state.signal });
    ctx.status = 200;
    ctx.body = usageJson(usage);
  },
};

export const listUsage: ManagementEndpoint = {
  // Without credentials the challenge asks for the catalog, the widest view; a caller with a token that
  // lacks it still gets the repositories the token lets it pull.
  access: (ctx) => (ctx.get('Authorization') === '' ? [CATALOG_ACCESS] : []),
  writes: false,
  async handle(ctx, deps) {
    const { n, last } = pagination(ctx, deps.maxListEntries);
    const limit = n ?? deps.maxListEntries;
    const prefix = queryValue(ctx, 'prefix');
    const grant = ctx.state.grant;
    const include = grant === undefined || allows(grant, CATALOG_ACCESS)
      ? undefined
      : (name: string) => allows(grant, { type: 'repository', name, actions: ['pull'] });
    const page = await managementOf(deps).usages({ prefix, after: last, limit: limit + 1, include }, { signal: ctx.state.signal });
    const items = page.slice(0, limit);
    const lastItem = items.at(-1);
    if (page.length > limit && lastItem !== undefined) {
      const params: Record<string, string> = { n: String(limit), last: lastItem.name, ...(prefix !== undefined && { prefix }) };
      ctx.set('Link', nextLink(`${deps.prefix}/berth/v1/usage`, params));
    }
    ctx.status = 200;
    ctx.body = { repositories: items.map(usageJson) };
  },
};
