/**
 * registry:2's access log: one line per request, written when its response is over (streamed bodies
 * included), with the duration in milliseconds and the bytes read and written on the connection for it
 * (connection-bytes.ts, headers included). A client that went away before the response was complete is
 * logged with status 499 (nginx's "client closed request"), at info, without a stack: it is ordinary.
 * Nothing here can throw into the request: every value is read defensively and a failure to write the
 * line is itself logged once, without failing anything.
 */
import type Koa from 'koa';
import type { Fields, Logger } from '../../log.js';
import type { Ctx, RequestState } from '../context.js';
import { type RequestBytes, connectionBytes } from './connection-bytes.js';

/** Status logged for a request whose client went away before the response was complete. */
export const CLIENT_CLOSED_STATUS = 499;

/** Writes one access line per request once its response is over. */
export function accessLog(log: Logger): Koa.Middleware<RequestState> {
  const bytesOf = connectionBytes();
  return async (ctx, next) => {
    const began = performance.now();
    const socket = ctx.req.socket;
    const remote = safely(() => ctx.ip, socket.remoteAddress ?? '');
    ctx.res.once('close', () => {
      try {
        writeLine(log, ctx, ctx.res.writableFinished ? ctx.status : CLIENT_CLOSED_STATUS, Math.round((performance.now() - began) * 100) / 100, bytesOf(socket), remote);
      } catch (err) {
        log.warn('could not write an access line', { error: err instanceof Error ? err.message : String(err) });
      }
    });
    await next();
  };
}

/** The line's fields, in their order: one object literal (no spreads), as this runs for every request. */
function writeLine(log: Logger, ctx: Ctx, status: number, durationMs: number, bytes: RequestBytes, remote: string): void {
  // Probes come every few seconds from a kubelet or a HEALTHCHECK: only at debug level.
  const level = ctx.state.route === 'probe' ? 'debug' : 'info';
  const user = ctx.state.grant?.subject;
  const fields: Fields = {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    route: ctx.state.route,
    status,
    durationMs,
    bytesIn: bytes.bytesIn,
    bytesOut: bytes.bytesOut,
    remote,
    userAgent: ctx.req.headers['user-agent'] ?? '',
  };
  if (user !== undefined) fields['user'] = user;
  log[level]('request', fields);
}

/** `read()`, or `fallback` when it throws (Koa's getters read the socket, which may be gone). */
function safely<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}
