/**
 * Access control for a matched route (DESIGN.md §5): the caller must hold what the route needs for its
 * method and repository; the grant is kept on the request for the handler (and the access log).
 */
import { requiredAccess } from '../../auth/access.js';
import type { AccessController } from '../../auth/controller.js';
import type { Ctx } from '../context.js';
import { requestBaseUrl } from '../base-url.js';
import { repoName } from '../params.js';
import type { Route } from '../routes.js';

/**
 * Checks the caller holds what `route` needs; `prefix` (`http.prefix`) is part of the base URL a
 * challenge's realm is built on. @throws UnauthorizedError, DENIED, NAME_INVALID
 */
export async function authorize(ctx: Ctx, access: AccessController, route: Route, prefix = ''): Promise<void> {
  const repo = route.scope === 'repository' ? repoName(ctx) : undefined;
  ctx.state.grant = await access.authorize(
    { authorization: ctx.get('Authorization') || undefined, baseUrl: `${requestBaseUrl(ctx)}${prefix}` },
    requiredAccess(route.scope, ctx.method, repo),
  );
}
