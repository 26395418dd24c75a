/**
 * The HTTP server: a Koa app whose middleware runs in this order for every request:
 *   request id → API version header → error response → access log → abort signal → router
 * and, inside the router for /v2 routes: read-only guard → auth → handler.
 * Handlers do the rest: parse, one storage call, headers and body.
 */
import { randomUUID } from 'node:crypto';
import { type RequestListener, type Server, createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { requiredAccess } from '../auth/access.js';
import type { AccessController } from '../auth/controller.js';
import { RegistryError, unsupported } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../storage/registry.js';
import type { Ctx, HandlerDeps, RequestState } from './context.js';
import { sendError } from './error-response.js';
import { type Method, ROUTES, type Route } from './routes.js';
import { repoName } from './params.js';
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
}

const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function createApp(opts: AppOptions): Koa<RequestState> {
  const app = new Koa<RequestState>();
  app.silent = true; // errors are answered and logged by our own middleware…
  // …except those after the headers went (a blob stream failing midway): Koa cuts the socket; log them.
  // Most are a client going away mid-transfer, so they are warnings, not errors.
  app.on('error', (err: unknown, ctx?: Ctx) => {
    if (ctx?.state.signal?.aborted) return;
    opts.log.warn('response failed after its headers were sent', { err, requestId: ctx?.state.requestId });
  });
  const deps: HandlerDeps = {
    registry: opts.registry,
    uploadStates: createUploadStateCodec(opts.secret),
    urlFor: (ctx, path) => (opts.relativeUrls ? path : `${opts.host ?? `${ctx.protocol}://${ctx.host}`}${path}`),
    maxListEntries: opts.maxListEntries ?? 1000,
  };
  app.use(async (ctx, next) => {
    ctx.state.requestId = randomUUID();
    ctx.state.grant = undefined;
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    ctx.set('X-Request-Id', ctx.state.requestId);
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
    logAccess(opts.log, ctx);
  });
  app.use(abortSignal);
  const router = buildRouter(deps, opts.access, opts.readOnly);
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

function buildRouter(deps: HandlerDeps, access: AccessController | undefined, readOnly: boolean): Router<RequestState> {
  const router = new Router<RequestState>();
  for (const route of ROUTES) {
    router.register(route.pattern, Object.keys(route.methods), async (ctx: Ctx) => {
      const handler = route.methods[ctx.method as Method];
      if (!handler) throw unsupported('method not allowed on this endpoint');
      // Read-only refuses writes to the registry API only: token requests (POST /auth/token) still work.
      if (readOnly && WRITE_METHODS.has(ctx.method)) throw unsupported('the registry is in read-only mode');
      ctx.state.params = { ...route.pattern.exec(ctx.path)?.groups };
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
    { authorization: ctx.get('Authorization') || undefined, baseUrl: `${ctx.protocol}://${ctx.host}` },
    requiredAccess(route.scope, ctx.method, repo),
  );
}

function addTokenRoutes(router: Router<RequestState>, handlers: TokenHandlers): void {
  router.get('/auth/token', handlers.getToken);
  router.post('/auth/token', handlers.postToken);
  router.get('/auth/jwks', handlers.getJwks);
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
  log.info('request', {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    status: ctx.status,
    remote: ctx.ip,
  });
}

export interface RunningServer {
  readonly server: Server;
  /** `http://127.0.0.1:<port>` style base URL of the listening socket. */
  readonly url: string;
  close(): Promise<void>;
}

/** Listens on `host:port` (port 0 picks a free one) and resolves once the socket is bound. */
export async function listen(app: { callback(): RequestListener }, host: string, port: number): Promise<RunningServer> {
  const server = createHttpServer(app.callback());
  server.requestTimeout = 0; // uploads may take as long as they take; idle sockets still time out
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shownHost === '0.0.0.0' || shownHost === '[::]' ? '127.0.0.1' : shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
