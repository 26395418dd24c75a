/**
 * registry:2's access log: one line per request, written when its response is over (streamed bodies
 * included), with the duration in milliseconds and the bytes read and written on the connection for it
 * (connection-bytes.ts, headers included). A client that went away before the response was complete is
 * logged with status 499 (nginx's "client closed request"), at info, without a stack: it is ordinary.
 * Nothing here can throw into the request: every value is read defensively and a failure to write the
 * line is itself logged once, without failing anything.
 */
import type Koa from 'koa';
import type { Logger } from '../../log.js';
import type { Ctx, RequestState } from '../context.js';
import { connectionBytes } from './connection-bytes.js';

/** Status logged for a request whose client went away before the response was complete. */
export const CLIENT_CLOSED_STATUS = 499;

/** Writes one access line per request once its response is over. */
export function accessLog(log: Logger): Koa.Middleware<RequestState> {
  const bytesOf = connectionBytes();
  return async (ctx, next) => {
    const began = process.hrtime.bigint();
    const socket = ctx.req.socket;
    const remote = safely(() => ctx.ip, socket.remoteAddress ?? '');
    ctx.res.once('close', () => {
      try {
        const finished = ctx.res.writableFinished;
        writeLine(log, ctx, {
          status: finished ? ctx.status : CLIENT_CLOSED_STATUS,
          durationMs: Math.round(Number(process.hrtime.bigint() - began) / 1e4) / 100,
          ...bytesOf(socket),
          remote,
        });
      } catch (err) {
        log.warn('could not write an access line', { error: err instanceof Error ? err.message : String(err) });
      }
    });
    await next();
  };
}

interface Measured {
  readonly status: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly remote: string;
}

function writeLine(log: Logger, ctx: Ctx, m: Measured): void {
  // Probes come every few seconds from a kubelet or a HEALTHCHECK: only at debug level.
  const level = ctx.state.route === 'probe' ? 'debug' : 'info';
  log[level]('request', {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    route: ctx.state.route,
    ...m,
    userAgent: safely(() => ctx.get('User-Agent'), ''),
    ...(ctx.state.grant?.subject !== undefined && { user: ctx.state.grant.subject }),
  });
}

/** `read()`, or `fallback` when it throws (Koa's getters read the socket, which may be gone). */
function safely<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}
