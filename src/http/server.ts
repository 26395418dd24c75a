/**
 * The HTTP app: a Koa app whose middleware (middleware/) runs in this order for every request:
 *   request id, fixed headers → request observer (metrics) → error response and access log →
 *   probes (/healthz, /readyz) → health gate (503 while a check fails) → `/` → abort signal → router
 * and, inside the router for /v2 routes: read-only guard → auth → handler.
 * Handlers do the rest: parse, one storage call, headers and body. Serving it is listen.ts's.
 */
import Router from '@koa/router';
import Koa from 'koa';
import type { AccessController } from '../auth/controller.js';
import { RegistryError, unsupported } from '../errors.js';
import type { HealthState } from '../health/health.js';
import type { Logger } from '../log.js';
import type { EventSink } from '../notifications/event.js';
import type { Registry } from '../storage/registry.js';
import { requestBaseUrl } from './base-url.js';
import type { Ctx, HandlerDeps, NameRouting, RequestState } from './context.js';
import { queryValue } from './params.js';
import type { TokenHandlers } from './handlers/auth-token.js';
import { abortSignal } from './middleware/abort-signal.js';
import { authorize } from './middleware/auth.js';
import { type RequestObserver, observeRequests } from './middleware/observe.js';
import { probes } from './middleware/probes.js';
import { requestId } from './middleware/request-id.js';
import { onLateError, respondErrors } from './middleware/respond-errors.js';
import { type Method, ROUTES } from './routes.js';
import { createUploadStateCodec } from './upload-state.js';

export { type RunningServer, type TlsOptions, listen } from './listen.js';
export { type RequestObserver, type RequestSample } from './middleware/observe.js';
export { LIVENESS_PATH, READINESS_PATH, readinessOf } from './middleware/probes.js';

export interface AppOptions {
  readonly registry: Registry;
  readonly log: Logger;
  /** http.secret: signs upload `_state` tokens. */
  readonly secret: string;
  /** http.relativeurls */
  readonly relativeUrls: boolean;
  /** http.host: base URL for absolute Locations; otherwise taken from the request. */
  readonly host: string | undefined;
  /** storage.maintenance.readonly.enabled: every write answers UNSUPPORTED. */
  readonly readOnly: boolean;
  /** Largest page a list request gets (registry:2's catalog.maxentries, 1000). */
  readonly maxListEntries?: number;
  /** Who may do what; undefined serves everyone everything (no `auth` configured). */
  readonly access?: AccessController;
  /** The built-in token issuer's endpoints (`auth.builtin`), served at /auth/token and /auth/jwks. */
  readonly tokenHandlers?: TokenHandlers;
  /** `http.headers`: added to every response. */
  readonly headers?: Readonly<Record<string, readonly string[]>>;
  /** Health checks and the draining flag; without it the registry is always healthy and ready. */
  readonly health?: HealthState;
  /** Told about every finished request (the metrics). */
  readonly observe?: RequestObserver;
  /** One info line per request (registry:2's access log); default true. */
  readonly accessLog?: boolean;
  /** Receives the registry events handlers report (`notifications`); none: no events are built. */
  readonly events?: EventSink;
  /** Which repository a request's name means (the mirror's prefixes, `?ns=`, default upstream); none: the name itself. */
  readonly names?: NameRouting;
}

const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The registry's Koa app, every middleware in place; serve it with `listen()`. */
export function createApp(opts: AppOptions): Koa<RequestState> {
  const app = new Koa<RequestState>();
  app.silent = true; // errors are answered and logged by our own middleware…
  app.on('error', onLateError(opts.log)); // …except those after the headers went
  const deps: HandlerDeps = {
    registry: opts.registry,
    uploadStates: createUploadStateCodec(opts.secret),
    urlFor: (ctx, path) => (opts.relativeUrls ? path : `${opts.host ?? requestBaseUrl(ctx)}${path}`),
    maxListEntries: opts.maxListEntries ?? 1000,
    ...(opts.events && { events: opts.events }),
  };
  app.use(requestId({ ...(opts.headers && { headers: opts.headers }), ...(opts.health && { health: opts.health }) }));
  if (opts.observe) app.use(observeRequests(opts.observe));
  app.use(respondErrors(opts.log, opts.accessLog !== false));
  app.use(probes(opts.health));
  app.use(rootPath);
  app.use(abortSignal);
  const router = buildRouter(deps, opts.access, opts.readOnly, opts.names);
  if (opts.tokenHandlers) addTokenRoutes(router, opts.tokenHandlers);
  app.use(router.routes());
  app.use(
    router.allowedMethods({
      throw: true,
      methodNotAllowed: () => unsupported('method not allowed on this endpoint'),
      notImplemented: () => unsupported('method not implemented'),
    }),
  );
  app.use(async () => {
    throw new RegistryError('NOT_FOUND', 'page not found');
  });
  return app;
}

/** registry:2 answers `/` with 200 for load balancers, behind the health gate. */
async function rootPath(ctx: Ctx, next: Koa.Next): Promise<void> {
  if (ctx.path !== '/') return next();
  ctx.state.route = 'root';
  ctx.set('Cache-Control', 'no-cache');
  ctx.status = 200;
  ctx.body = '';
}

function buildRouter(deps: HandlerDeps, access: AccessController | undefined, readOnly: boolean, names: NameRouting | undefined): Router<RequestState> {
  const router = new Router<RequestState>();
  for (const route of ROUTES) {
    router.register(route.pattern, Object.keys(route.methods), async (ctx: Ctx) => {
      const handler = route.methods[ctx.method as Method];
      if (!handler) throw unsupported('method not allowed on this endpoint');
      // Read-only refuses writes to the registry API only: token requests (POST /auth/token) still work.
      if (readOnly && WRITE_METHODS.has(ctx.method)) throw unsupported('the registry is in read-only mode');
      ctx.state.params = { ...route.pattern.exec(ctx.path)?.groups };
      ctx.state.route = route.name;
      // Decided once, before access control: a mirror's users need pull on the mirrored name.
      const name = ctx.state.params['name'];
      if (names && name !== undefined) {
        ctx.state.params['name'] = await names.route(name, { ns: queryValue(ctx, 'ns'), write: WRITE_METHODS.has(ctx.method) });
      }
      if (access) await authorize(ctx, access, route);
      await handler(ctx, deps);
    }, { name: route.name, pathAsRegExp: true });
  }
  return router;
}

function addTokenRoutes(router: Router<RequestState>, handlers: TokenHandlers): void {
  const named = (handler: (ctx: Ctx) => Promise<void>) => async (ctx: Ctx): Promise<void> => {
    ctx.state.route = 'token';
    await handler(ctx);
  };
  router.get('/auth/token', named(handlers.getToken));
  router.post('/auth/token', named(handlers.postToken));
  router.get('/auth/jwks', named(handlers.getJwks));
}
