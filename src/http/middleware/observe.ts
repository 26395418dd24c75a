/**
 * The request observer (the metrics): told when each request arrives and once its response is over,
 * streamed bodies included.
 */
import type Koa from 'koa';
import type { RequestState } from '../context.js';
import { matchRoute } from '../routes.js';
import { connectionBytes } from './connection-bytes.js';
import { LIVENESS_PATH, READINESS_PATH } from './probes.js';

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

/** The name a request's path will be routed to, known before routing (for in-flight gauges). */
export function routeOfPath(path: string): string {
  if (path === LIVENESS_PATH || path === READINESS_PATH) return 'probe';
  if (path === '/') return 'root';
  if (path.startsWith('/auth/')) return 'token';
  return matchRoute(path)?.route.name ?? 'unknown';
}

/**
 * Measures each request from arrival to the end of its response (streamed bodies included), with the
 * bytes of connection-bytes.ts.
 */
export function observeRequests(observer: RequestObserver, prefix = ''): Koa.Middleware<RequestState> {
  const bytesOf = connectionBytes();
  return async (ctx, next) => {
    const socket = ctx.req.socket;
    const began = process.hrtime.bigint();
    // Under `http.prefix` the API's paths start with it (it is stripped later, inside the error handler).
    const path = prefix !== '' && ctx.path.startsWith(`${prefix}/`) ? ctx.path.slice(prefix.length) : ctx.path;
    const done = observer.start({ method: ctx.method, route: routeOfPath(path) });
    ctx.res.once('close', () => {
      const { bytesIn, bytesOut } = bytesOf(socket);
      done({
        route: ctx.state.route,
        method: ctx.method,
        status: ctx.res.writableFinished ? ctx.status : 499,
        seconds: Number(process.hrtime.bigint() - began) / 1e9,
        bytesIn,
        bytesOut,
        aborted: !ctx.res.writableFinished,
      });
    });
    await next();
  };
}
