/**
 * The HTTP app: a Koa app whose middleware (middleware/) runs in this order for every request:
 *   request id, fixed headers → access log → request observer (metrics) → error response → web UI
 *   (`/ui/`, ui/serve-ui.ts) → probes (/healthz, /readyz) → health gate (503 while a check fails) → `/` → router
 * → token endpoints → management API (`/berth/v1/`, dispatch.ts) → registry API (dispatch.ts: method check → read-only guard → auth → handler) → 404
 * (unrouted.ts).
 * Handlers do the rest: parse, one storage call, headers and body. Serving it is listen.ts's.
 */
import Koa from 'koa';
import type { AccessController } from '../auth/controller.js';
import { NoRouteError } from '../errors.js';
import type { HealthState } from '../health/health.js';
import type { Logger } from '../log.js';
import type { EventSink } from '../notifications/event.js';
import type { Registry, RegistryManagement } from '../storage/registry.js';
import { requestBaseUrl } from './base-url.js';
import type { Ctx, HandlerDeps, NameRouting, RequestState } from './context.js';
import { managementApi, registryApi, tokenApi } from './dispatch.js';
import type { TokenHandlers } from './handlers/auth-token.js';
import { accessLog } from './middleware/access-log.js';
import { type RequestObserver, observeRequests } from './middleware/observe.js';
import { probes } from './middleware/probes.js';
import { requestId } from './middleware/request-id.js';
import { onLateError, respondErrors } from './middleware/respond-errors.js';
import { unroutedError } from './unrouted.js';
import { createUploadStateCodec } from './upload-state.js';
import type { UiAssets } from './ui/assets.js';
import { serveUi } from './ui/serve-ui.js';
import type { ServerStatusSource } from './management/status.js';

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
  /** `http.prefix`: serve the API under this path (no trailing slash); default '' (the root). */
  readonly prefix?: string;
  /** `storage.automaticcrossmount`: a mount without `from` may link a blob found elsewhere; default true. */
  readonly automaticCrossMount?: boolean;
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
  /** The web UI at `<prefix>/ui/` (`ui.enabled`); none: no UI. `assets` undefined: enabled but not built. */
  readonly ui?: { readonly assets: UiAssets | undefined };
  /** Repository delete and usage for the management API (`/berth/v1/`); none: those endpoints answer 503. */
  readonly management?: RegistryManagement;
  /** The status document and the collector for `/berth/v1/status` and `/berth/v1/gc`; none: they answer 503. */
  readonly status?: ServerStatusSource;
}

/** The registry's Koa app, every middleware in place; serve it with `listen()`. */
export function createApp(opts: AppOptions): Koa<RequestState> {
  const app = new Koa<RequestState>();
  app.silent = true; // errors are answered and logged by our own middleware…
  app.on('error', onLateError(opts.log)); // …except those after the headers went
  const prefix = opts.prefix ?? '';
  const deps: HandlerDeps = {
    registry: opts.registry,
    uploadStates: createUploadStateCodec(opts.secret),
    urlFor: (ctx, path) => (opts.relativeUrls ? `${prefix}${path}` : `${opts.host ?? requestBaseUrl(ctx)}${prefix}${path}`),
    prefix,
    automaticCrossMount: opts.automaticCrossMount ?? true,
    maxListEntries: opts.maxListEntries ?? 1000,
    ...(opts.events && { events: opts.events }),
  };
  app.use(requestId({ ...(opts.headers && { headers: opts.headers }), ...(opts.health && { health: opts.health }) }));
  if (opts.accessLog !== false) app.use(accessLog(opts.log));
  if (opts.observe) app.use(observeRequests(opts.observe, prefix));
  app.use(respondErrors(opts.log));
  // Before the health gate: the page loads, and shows the API's 503s, while storage fails.
  if (opts.ui) {
    const firstView = { deps: { ...deps, management: opts.management, status: opts.status }, access: opts.access, anonymousToken: opts.tokenHandlers?.anonymousToken };
    app.use(serveUi({ assets: opts.ui.assets, prefix, firstView }));
  }
  app.use(probes(opts.health));
  app.use(rootPath);
  if (prefix !== '') app.use(stripPrefix(prefix));
  if (opts.tokenHandlers) app.use(tokenApi(opts.tokenHandlers));
  app.use(managementApi({ deps: { ...deps, management: opts.management, status: opts.status }, access: opts.access, readOnly: opts.readOnly, prefix }));
  app.use(registryApi({ deps, access: opts.access, readOnly: opts.readOnly, prefix, names: opts.names }));
  app.use(async (ctx) => {
    throw unroutedError(ctx.path);
  });
  return app;
}

/**
 * `http.prefix`: the API lives under `prefix`; the rest of the path is routed as usual. A path outside
 * the prefix is no endpoint (the 404 of unrouted.ts).
 */
function stripPrefix(prefix: string): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    if (!ctx.path.startsWith(`${prefix}/`)) {
      throw new NoRouteError('UNSUPPORTED', `page not found: the registry API is served under ${prefix}/v2/`, { path: ctx.path });
    }
    ctx.path = ctx.path.slice(prefix.length);
    await next();
  };
}

/** registry:2 answers `/` with 200 for load balancers, behind the health gate. */
async function rootPath(ctx: Ctx, next: Koa.Next): Promise<void> {
  if (ctx.path !== '/') return next();
  ctx.state.route = 'root';
  ctx.set('Cache-Control', 'no-cache');
  ctx.status = 200;
  ctx.body = '';
}
