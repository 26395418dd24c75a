/**
 * The HTTP server: a Koa app whose middleware runs in this order for every request:
 *   request id, fixed headers → request observer (metrics) → error response → access log →
 *   probes (/healthz, /readyz) → health gate (503 while a check fails) → `/` → abort signal → router
 * and, inside the router for /v2 routes: read-only guard → auth → handler.
 * Handlers do the rest: parse, one storage call, headers and body.
 * `listen()` serves an app over HTTP or HTTPS and drains it gracefully on close.
 */
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureVersion } from 'node:tls';
import Router from '@koa/router';
import Koa from 'koa';
import { requiredAccess } from '../auth/access.js';
import type { AccessController } from '../auth/controller.js';
import { RegistryError, unsupported } from '../errors.js';
import type { HealthState } from '../health/health.js';
import type { Logger } from '../log.js';
import type { EventSink } from '../notifications/event.js';
import type { Registry } from '../storage/registry.js';
import { requestBaseUrl } from './base-url.js';
import type { Ctx, HandlerDeps, NameRouting, RequestState } from './context.js';
import { sendError } from './error-response.js';
import { type Method, ROUTES, type Route, matchRoute } from './routes.js';
import { queryValue, repoName } from './params.js';
import type { TokenHandlers } from './handlers/auth-token.js';
import { createUploadStateCodec } from './upload-state.js';

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

/** What a request observer is told when a request starts and once its response is over. */
export interface RequestObserver {
  /**
   * Called as the request arrives, with the route its path matches (`unknown` if none); the answer is
   * called once the response is finished or aborted.
   */
  start(request: { readonly method: string; readonly route: string }): (sample: RequestSample) => void;
}

/** One finished (or abandoned) request. */
export interface RequestSample {
  /** The route name (`manifest`, `blob-upload`…), or `token`, `probe`, `root`, `unknown`. */
  readonly route: string;
  readonly method: string;
  readonly status: number;
  readonly seconds: number;
  /** Bytes the connection read and wrote while the request was in progress, headers included. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** True when the client went away before the response was complete. */
  readonly aborted: boolean;
}

/** Request ids a proxy may pass in `X-Request-Id` and Berth keeps; anything else gets a fresh id. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function createApp(opts: AppOptions): Koa<RequestState> {
  const app = new Koa<RequestState>();
  app.silent = true; // errors are answered and logged by our own middleware…
  // …except those after the headers went (a blob stream failing midway): Koa cuts the socket; log them.
  // A client going away mid-transfer is ordinary (Koa may report its reset socket before the request's
  // abort signal fires): info. Anything else, a storage read failing say, is a warning.
  app.on('error', (err: unknown, ctx?: Ctx) => {
    if (ctx?.state.signal?.aborted) return;
    const requestId = ctx?.state.requestId;
    const code = disconnectCode(err);
    if (code !== undefined) opts.log.info('client disconnected mid-response', { requestId, code });
    else opts.log.warn('response failed after its headers were sent', { err, requestId });
  });
  const deps: HandlerDeps = {
    registry: opts.registry,
    uploadStates: createUploadStateCodec(opts.secret),
    urlFor: (ctx, path) => (opts.relativeUrls ? path : `${opts.host ?? requestBaseUrl(ctx)}${path}`),
    maxListEntries: opts.maxListEntries ?? 1000,
    ...(opts.events && { events: opts.events }),
  };
  const fixedHeaders = Object.entries(opts.headers ?? {});
  app.use(async (ctx, next) => {
    const incomingId = ctx.get('X-Request-Id');
    ctx.state.requestId = REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    ctx.state.grant = undefined;
    ctx.state.route = 'unknown';
    for (const [name, values] of fixedHeaders) ctx.set(name, [...values]);
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    ctx.set('X-Request-Id', ctx.state.requestId);
    // A draining server answers what it has and lets the client reconnect elsewhere.
    if (opts.health?.draining) ctx.set('Connection', 'close');
    await next();
  });
  if (opts.observe) app.use(observeRequests(opts.observe));
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (ctx.state.signal?.aborted) {
        // The client went away mid-request: nobody to answer, and not a fault of ours.
        opts.log.info('client disconnected', { requestId: ctx.state.requestId, path: ctx.path });
        ctx.req.socket.destroy();
        return;
      }
      sendError(ctx, err, (bug) => opts.log.error('request failed', { err: bug, requestId: ctx.state.requestId }));
    }
    if (opts.accessLog !== false) logAccess(opts.log, ctx);
  });
  app.use(probes(opts.health));
  app.use(async (ctx, next) => {
    // registry:2 answers `/` with 200 for load balancers, behind the health gate.
    if (ctx.path !== '/') return next();
    ctx.state.route = 'root';
    ctx.set('Cache-Control', 'no-cache');
    ctx.status = 200;
    ctx.body = '';
  });
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

/** Checks the caller holds what the route needs (DESIGN.md §5), keeping the grant for the handler. */
async function authorize(ctx: Ctx, access: AccessController, route: Route): Promise<void> {
  const repo = route.scope === 'repository' ? repoName(ctx) : undefined;
  ctx.state.grant = await access.authorize(
    { authorization: ctx.get('Authorization') || undefined, baseUrl: requestBaseUrl(ctx) },
    requiredAccess(route.scope, ctx.method, repo),
  );
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

/** Paths of the Kubernetes-style probes, on the API listener and the debug listener. */
export const LIVENESS_PATH = '/healthz';
export const READINESS_PATH = '/readyz';

/**
 * `/healthz` (alive: 200 while the process answers), `/readyz` (200 when every check passes and no
 * shutdown has begun, else 503 with the reasons), then the gate: while a check fails, every other request
 * gets 503 UNAVAILABLE naming the failing checks, as registry:2 does.
 */
function probes(health: HealthState | undefined): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    if (ctx.path === LIVENESS_PATH || ctx.path === READINESS_PATH) {
      ctx.state.route = 'probe';
      ctx.set('Cache-Control', 'no-cache');
      const readiness = ctx.path === READINESS_PATH ? readinessOf(health) : { ready: true, body: { status: 'ok' } };
      ctx.status = readiness.ready ? 200 : 503;
      ctx.body = readiness.body;
      return;
    }
    const failures = health?.failures() ?? {};
    if (Object.keys(failures).length > 0) throw new RegistryError('UNAVAILABLE', 'service unavailable', failures);
    await next();
  };
}

/** Whether the server should get traffic, and the JSON body that says why. */
export function readinessOf(health: HealthState | undefined): { ready: boolean; body: object } {
  const failures = health?.failures() ?? {};
  const draining = health?.draining ?? false;
  const ready = !draining && Object.keys(failures).length === 0;
  return { ready, body: { status: ready ? 'ok' : 'unavailable', ...(draining && { draining }), ...(!ready && { checks: failures }) } };
}

/** The name a request's path will be routed to, known before routing (for in-flight gauges). */
function routeOfPath(path: string): string {
  if (path === LIVENESS_PATH || path === READINESS_PATH) return 'probe';
  if (path === '/') return 'root';
  if (path.startsWith('/auth/')) return 'token';
  return matchRoute(path)?.route.name ?? 'unknown';
}

/**
 * Measures each request from arrival to the end of its response (streamed bodies included). Bytes are
 * the connection's own counters: each request is charged what its connection read and wrote since the
 * previous request on it ended, so small requests read in one go are counted too.
 */
function observeRequests(observer: RequestObserver): Koa.Middleware<RequestState> {
  const counted = new WeakMap<Socket, { read: number; written: number }>();
  return async (ctx, next) => {
    const socket = ctx.req.socket;
    const began = process.hrtime.bigint();
    const done = observer.start({ method: ctx.method, route: routeOfPath(ctx.path) });
    ctx.res.once('close', () => {
      const previous = counted.get(socket) ?? { read: 0, written: 0 };
      const now = { read: socket.bytesRead, written: socket.bytesWritten };
      counted.set(socket, now);
      done({
        route: ctx.state.route,
        method: ctx.method,
        status: ctx.res.writableFinished ? ctx.status : 499,
        seconds: Number(process.hrtime.bigint() - began) / 1e9,
        bytesIn: now.read - previous.read,
        bytesOut: now.written - previous.written,
        aborted: !ctx.res.writableFinished,
      });
    });
    await next();
  };
}

/** Error codes of a connection the client closed or reset. */
const DISCONNECT_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The error's code when it says the client closed or reset the connection; undefined otherwise. */
function disconnectCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISCONNECT_CODES.has(code) ? code : undefined;
}

/** Gives the request an AbortSignal that fires when the client goes away before the answer is complete. */
async function abortSignal(ctx: Ctx, next: Koa.Next): Promise<void> {
  const controller = new AbortController();
  ctx.state.signal = controller.signal;
  const onClose = (): void => {
    if (!ctx.res.writableFinished) controller.abort(new Error('client disconnected'));
  };
  ctx.res.once('close', onClose);
  await next();
}

function logAccess(log: Logger, ctx: Ctx): void {
  // Probes come every few seconds from a kubelet or a HEALTHCHECK: only at debug level.
  const level = ctx.state.route === 'probe' ? 'debug' : 'info';
  log[level]('request', {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    route: ctx.state.route,
    status: ctx.status,
    remote: ctx.ip,
    userAgent: ctx.get('User-Agent'),
    ...(ctx.state.grant?.subject !== undefined && { user: ctx.state.grant.subject }),
  });
}

export interface RunningServer {
  readonly server: Server;
  /** `http://127.0.0.1:<port>` (or `https://…`) style base URL of the listening socket. */
  readonly url: string;
  /**
   * Stops accepting connections, closes idle ones, and waits up to `drainMs` (default 0) for requests in
   * flight to finish before cutting the connections that remain.
   */
  close(o?: { drainMs?: number }): Promise<void>;
  /** Requests whose responses are not over yet. */
  readonly inFlight: number;
}

/** HTTPS settings: PEM contents, already read. */
export interface TlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA certificates client certificates must chain to; when given, a client certificate is required. */
  readonly clientCas?: readonly Buffer[];
  readonly minVersion: SecureVersion;
}

/** Listens on `host:port` (port 0 picks a free one) and resolves once the socket is bound. */
export async function listen(app: { callback(): RequestListener }, host: string, port: number, tls?: TlsOptions): Promise<RunningServer> {
  const handler = app.callback();
  const server: Server = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          minVersion: tls.minVersion,
          ...(tls.clientCas && tls.clientCas.length > 0 && { ca: [...tls.clientCas], requestCert: true, rejectUnauthorized: true }),
        },
        handler,
      )
    : createHttpServer(handler);
  server.requestTimeout = 0; // uploads may take as long as they take; idle sockets still time out
  const active = new Set<ServerResponse>();
  let drained: (() => void) | undefined;
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    res.once('close', () => {
      active.delete(res);
      if (active.size === 0) drained?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = tls ? 'https' : 'http';
  return {
    server,
    url: `${scheme}://${shownHost === '0.0.0.0' || shownHost === '[::]' ? '127.0.0.1' : shownHost}:${address.port}`,
    get inFlight() {
      return active.size;
    },
    async close(o = {}) {
      const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
      server.closeIdleConnections();
      const drainMs = o.drainMs ?? 0;
      if (drainMs > 0 && active.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, drainMs);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
