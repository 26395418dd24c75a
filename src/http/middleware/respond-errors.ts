/**
 * The one middleware that catches: a thrown error becomes the JSON answer (error-response.ts), a client
 * that went away gets nothing, and the access line is written once the answer is decided. Errors after
 * the headers went (a blob stream failing midway) reach the app's 'error' event: `onLateError` logs them.
 */
import type Koa from 'koa';
import type { Logger } from '../../log.js';
import type { Ctx, RequestState } from '../context.js';
import { sendError } from '../error-response.js';
import { logAccess } from './access-log.js';

/** Catches, answers and logs each request's errors; writes the access line unless `accessLog` is false. */
export function respondErrors(log: Logger, accessLog: boolean): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (ctx.state.signal?.aborted) {
        // The client went away mid-request: nobody to answer, and not a fault of ours.
        log.info('client disconnected', { requestId: ctx.state.requestId, path: ctx.path });
        ctx.req.socket.destroy();
        return;
      }
      sendError(ctx, err, (bug) => log.error('request failed', { err: bug, requestId: ctx.state.requestId }));
    }
    if (accessLog) logAccess(log, ctx);
  };
}

/** Error codes of a connection the client closed or reset. */
const DISCONNECT_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The error's code when it says the client closed or reset the connection; undefined otherwise. */
function disconnectCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISCONNECT_CODES.has(code) ? code : undefined;
}

/**
 * The app's 'error' listener, for failures after the headers went (Koa cuts the socket). A client going
 * away mid-transfer is ordinary (Koa may report its reset socket before the request's abort signal
 * fires): info. Anything else, a storage read failing say, is a warning.
 */
export function onLateError(log: Logger): (err: unknown, ctx?: Ctx) => void {
  return (err, ctx) => {
    if (ctx?.state.signal?.aborted) return;
    const requestId = ctx?.state.requestId;
    const code = disconnectCode(err);
    if (code !== undefined) log.info('client disconnected mid-response', { requestId, code });
    else log.warn('response failed after its headers were sent', { err, requestId });
  };
}
