/**
 * Gives each request an AbortSignal (`ctx.state.signal`) that fires when the client goes away before
 * the answer is complete, so storage I/O stops and an upload stays resumable.
 */
import type Koa from 'koa';
import type { Ctx } from '../context.js';

/** Sets `ctx.state.signal`, aborted when the response closes unfinished. */
export async function abortSignal(ctx: Ctx, next: Koa.Next): Promise<void> {
  const controller = new AbortController();
  ctx.state.signal = controller.signal;
  const onClose = (): void => {
    if (!ctx.res.writableFinished) controller.abort(new Error('client disconnected'));
  };
  ctx.res.once('close', onClose);
  await next();
}
