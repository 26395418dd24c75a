/**
 * The one middleware that catches: a thrown error becomes the JSON answer (error-response.ts), a client
 * that went away gets nothing (its access line says 499, access-log.ts). Errors after
 * the headers went (a blob stream failing midway) reach the app's 'error' event: `onLateError` logs them.
 */
import type Koa from 'koa';
import { StorageFullError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Ctx, RequestState } from '../context.js';
import { sendError } from '../error-response.js';

/** Catches, answers and logs each request's errors. */
export function respondErrors(log: Logger): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (ctx.state.signal?.aborted) {
        // The client went away mid-request: nobody to answer, and not a fault of ours.
        log.info('client disconnected', { requestId: ctx.state.requestId, path: ctx.path });
        ctx.res.destroy(); // the socket with it (ctx.req.socket may already be gone)
        return;
      }
      // A full storage is no bug (no stack) but needs an operator: logged once, with where it happened.
      if (err instanceof StorageFullError) log.error('storage full', { where: err.where, requestId: ctx.state.requestId, path: ctx.path });
      sendError(ctx, err, (bug) => log.error('request failed', { err: bug, requestId: ctx.state.requestId }));
    }
  };
}

/** Error codes of a connection the client closed or reset. */
const DISCONNECT_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * The error's code when it says the client closed or reset the connection; undefined otherwise.
 * Node's HTTP parser errors (`HPE_*`, e.g. a chunked body cut off by the client closing) count too:
 * they come from what the client sent, not from a fault of ours.
 */
function disconnectCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (DISCONNECT_CODES.has(code) || code.startsWith('HPE_')) ? code : undefined;
}

/**
 * The app's 'error' listener, for failures after the headers went (Koa cuts the socket) and for the
 * connection failing under a request (Koa reports those too). A client going away mid-transfer is
 * ordinary (Koa may report its reset socket before the request's abort signal fires): info, without a
 * stack; its access line says 499. Anything else, a storage read failing say, is a warning.
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
