/**
 * Each request's state (`ctx.state`), made by the first middleware (middleware/request-id.ts).
 *
 * Its `signal` fires when the client goes away before the answer is complete, so storage I/O stops and
 * an upload stays resumable. The AbortController behind it is made the first time `signal` is read,
 * not for every request: Node's costs some 3-4 µs to make and watch (an EventTarget, and a 'close'
 * listener on the response), a few percent of a manifest GET, which never reads it (its reads are small).
 * Read after the response has closed unfinished, it is already aborted.
 */
import type { ServerResponse } from 'node:http';
import type { Grant } from '../auth/access.js';
import type { RequestState } from './context.js';

/** The reason a request's signal gives when its client went away. */
const CLIENT_GONE = 'client disconnected';

/** `ctx.state` of one request, its signal made on first use. */
export class RequestScope implements RequestState {
  requestId = '';
  params: Record<string, string> = {};
  grant: Grant | undefined = undefined;
  route = 'unknown';
  private controller: AbortController | undefined = undefined;

  constructor(private readonly res: ServerResponse) {}

  /** Aborted when the client goes away before the response is done. */
  get signal(): AbortSignal {
    if (this.controller === undefined) this.controller = watch(this.res);
    return this.controller.signal;
  }
}

/** A controller aborted when `res` closes unfinished (at once if it already has). */
function watch(res: ServerResponse): AbortController {
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new Error(CLIENT_GONE));
  };
  if (res.closed) onClose();
  else res.once('close', onClose);
  return controller;
}
