/**
 * The first middleware: gives each request its id (a proxy's `X-Request-Id` when it is well formed, else
 * a fresh UUID), gives it its state (request-state.ts) and sets the headers every response carries.
 */
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { HealthState } from '../../health/health.js';
import type { RequestState } from '../context.js';
import { RequestScope } from '../request-state.js';

/** Request ids a proxy may pass in `X-Request-Id` and Berth keeps; anything else gets a fresh id. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface RequestIdOptions {
  /** `http.headers`: added to every response. */
  readonly headers?: Readonly<Record<string, readonly string[]>>;
  /** While draining, responses carry `Connection: close`. */
  readonly health?: HealthState;
}

/** Request id, fresh state, fixed headers (`http.headers`, the API version, `X-Request-Id`). */
export function requestId(opts: RequestIdOptions): Koa.Middleware<RequestState> {
  const fixedHeaders = Object.entries(opts.headers ?? {});
  return async (ctx, next) => {
    const state = new RequestScope(ctx.res);
    const incomingId = ctx.get('X-Request-Id');
    state.requestId = REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    ctx.state = state;
    for (const [name, values] of fixedHeaders) ctx.set(name, [...values]);
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    ctx.set('X-Request-Id', ctx.state.requestId);
    // A draining server answers what it has and lets the client reconnect elsewhere.
    if (opts.health?.draining) ctx.set('Connection', 'close');
    await next();
  };
}
