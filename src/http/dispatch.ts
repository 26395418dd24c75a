/**
 * Dispatch of the registry API (routes.ts's table) and the token endpoints: the first route whose
 * pattern matches the raw path takes the request. A known endpoint asked with a method it does not
 * serve answers 405 UNSUPPORTED with `Allow`, as registry:2 does; inside a route: read-only guard → auth
 * → handler. A path no route matches goes on to the next middleware (the 404 of unrouted.ts).
 * The management API (`/berth/v1/`, management/routes.ts) is dispatched the same way, through the same
 * access controller, with a 404 of its own for a path under it that no route matches.
 */
import type Koa from 'koa';
import type { AccessController } from '../auth/controller.js';
import { NoRouteError, unsupported } from '../errors.js';
import type { Ctx, Handler, HandlerDeps, NameRouting, RequestState } from './context.js';
import type { TokenHandlers } from './handlers/auth-token.js';
import { authorize } from './middleware/auth.js';
import { queryValue } from './params.js';
import { type Route, matchRoute } from './routes.js';
import { MANAGEMENT_PREFIX, matchManagementRoutes } from './management/routes.js';
import type { ManagementDeps, ManagementEndpoint } from './management/types.js';
import { requestBaseUrl } from './base-url.js';

const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The handler `methods` has for `method`; HEAD falls back to GET (Koa sends no body for a HEAD). */
function handlerFor<H>(methods: Readonly<Partial<Record<string, H>>>, method: string): H | undefined {
  return methods[method] ?? (method === 'HEAD' ? methods['GET'] : undefined);
}

/** 405 UNSUPPORTED naming the methods the endpoint serves. */
function methodNotAllowed(ctx: Ctx, methods: object): never {
  const allowed = Object.keys(methods);
  if (allowed.includes('GET') && !allowed.includes('HEAD')) allowed.push('HEAD');
  ctx.set('Allow', allowed.join(', '));
  throw unsupported(`method ${ctx.method} not allowed on this endpoint`);
}

export interface RegistryApiOptions {
  readonly deps: HandlerDeps;
  readonly access: AccessController | undefined;
  readonly readOnly: boolean;
  /** `http.prefix`, for the realm of auth challenges. */
  readonly prefix: string;
  /** Which repository a request's name means (the mirror's prefixes, `?ns=`, default upstream); none: the name itself. */
  readonly names?: NameRouting | undefined;
}

/** The `/v2/` API: route, method check, read-only guard, auth, handler. */
export function registryApi(opts: RegistryApiOptions): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    const match = matchRoute(ctx.path);
    if (match === undefined) return next();
    const route: Route = match.route;
    ctx.state.route = route.name;
    const handler = handlerFor<Handler>(route.methods, ctx.method);
    if (handler === undefined) methodNotAllowed(ctx, route.methods);
    // Read-only refuses writes to the registry API only: token requests (POST /auth/token) still work.
    if (opts.readOnly && WRITE_METHODS.has(ctx.method)) throw unsupported('the registry is in read-only mode');
    ctx.state.params = match.params;
    // Decided once, before access control: a mirror's users need pull on the mirrored name.
    const name = match.params['name'];
    if (opts.names && name !== undefined) {
      ctx.state.params['name'] = await opts.names.route(name, { ns: queryValue(ctx, 'ns'), write: WRITE_METHODS.has(ctx.method) });
    }
    if (opts.access) await authorize(ctx, opts.access, route, opts.prefix);
    await handler(ctx, opts.deps);
  };
}

/** The built-in issuer's endpoints: `GET|POST /auth/token`, `GET /auth/jwks`. */
export function tokenApi(handlers: TokenHandlers): Koa.Middleware<RequestState> {
  const table: ReadonlyMap<string, Readonly<Record<string, (ctx: Ctx) => Promise<void>>>> = new Map([
    ['/auth/token', { GET: handlers.getToken, POST: handlers.postToken }],
    ['/auth/jwks', { GET: handlers.getJwks }],
  ]);
  return async (ctx, next) => {
    const methods = table.get(ctx.path);
    if (methods === undefined) return next();
    ctx.state.route = 'token';
    const handler = handlerFor(methods, ctx.method);
    if (handler === undefined) methodNotAllowed(ctx, methods);
    await handler(ctx);
  };
}

export interface ManagementApiOptions {
  readonly deps: ManagementDeps;
  readonly access: AccessController | undefined;
  readonly readOnly: boolean;
  /** `http.prefix`, for the realm of auth challenges. */
  readonly prefix: string;
}

/**
 * The management API under `/berth/v1/`: route (the first matching route that serves the method), 405
 * when none does, read-only guard for writes, the endpoint's access through the same controller as
 * `/v2/`, handler. Any other path under `/berth/v1/` is 404.
 */
export function managementApi(opts: ManagementApiOptions): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    if (ctx.path !== MANAGEMENT_PREFIX && !ctx.path.startsWith(`${MANAGEMENT_PREFIX}/`)) return next();
    const matches = matchManagementRoutes(ctx.path);
    if (matches.length === 0) {
      ctx.state.route = 'berth-unknown';
      throw new NoRouteError('UNSUPPORTED', `no endpoint at this path: the management API is documented in the README`, { path: ctx.path });
    }
    const chosen = matches.find((m) => handlerFor(m.route.methods, ctx.method) !== undefined);
    const first = matches[0];
    if (chosen === undefined && first !== undefined) {
      ctx.state.route = `berth-${first.route.name}`;
      methodNotAllowed(ctx, Object.assign({}, ...matches.map((m) => m.route.methods)) as object);
    }
    const endpoint = chosen && handlerFor<ManagementEndpoint>(chosen.route.methods, ctx.method);
    if (chosen === undefined || endpoint === undefined) return next();
    ctx.state.route = `berth-${chosen.route.name}`;
    if (opts.readOnly && endpoint.writes) throw unsupported('the registry is in read-only mode');
    ctx.state.params = chosen.params;
    if (opts.access) {
      ctx.state.grant = await opts.access.authorize(
        { authorization: ctx.get('Authorization') || undefined, baseUrl: `${requestBaseUrl(ctx)}${opts.prefix}` },
        endpoint.access(ctx),
      );
    }
    await endpoint.handle(ctx, opts.deps);
  };
}
