/**
 * Reading a small request body (a manifest) into memory, refused with 413 above a limit: before it
 * is read when Content-Length says so, and as soon as it passes the limit otherwise.
 *
 * A refused body is still read and dropped, up to a bound, before the answer goes out: closing a
 * socket with unread bytes in it resets the connection, and the client would see a broken pipe
 * instead of the 413. Past the bound the connection is closed after the answer.
 */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { tooLarge } from '../errors.js';
import { isSendable } from '../storage/registry.js';
import type { Ctx } from './context.js';

/** How much of a refused body is read and dropped so the client can read the 413. */
const DISCARD_LIMIT = 64 * 1024 * 1024;

export async function readSmallBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limit) return refuse(ctx, limit, 0);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) return refuse(ctx, limit, total);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Drops the rest of the body (up to DISCARD_LIMIT in all), then throws TOO_LARGE. */
async function refuse(ctx: Ctx, limit: number, alreadyRead: number): Promise<never> {
  let read = alreadyRead;
  if (ctx.request.length === undefined || ctx.request.length <= DISCARD_LIMIT) {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      read += (chunk as Buffer).length;
      if (read > DISCARD_LIMIT) break;
    }
  }
  if (!ctx.req.readableEnded) ctx.set('Connection', 'close'); // gave up reading: don't reuse this socket
  throw tooLarge(limit);
}

/** Ends the response with `status` and no body (Content-Length: 0). */
export function respondEmpty(ctx: Ctx, status: number): void {
  ctx.body = null; // Koa turns a null body into 204; the status set after it wins
  ctx.status = status;
}

/**
 * Answers with `body` as the response body (status and headers, Content-Length included, already set).
 * A stream that can send itself (a driver's SendableReader, the filesystem driver's) writes straight to
 * the socket through reused buffers, and this resolves once it is all sent; any other goes to Koa as
 * `ctx.body`. A failure before the first byte is thrown, for the usual JSON error; after it, as with
 * Koa's own streaming, the connection is cut (the client must not take a short body for the blob) and
 * the failure goes to the app's 'error' listener unless the client went away (its socket is gone).
 */
export async function sendBody(ctx: Ctx, body: Readable): Promise<void> {
  if (!isSendable(body)) {
    ctx.body = body;
    return;
  }
  ctx.respond = false;
  try {
    await body.sendTo(ctx.res);
    ctx.res.end();
    await finished(ctx.res); // the request's duration covers the transfer; rejects if the socket closes first
  } catch (err) {
    body.destroy();
    if (!ctx.res.headersSent) {
      ctx.respond = true;
      throw err;
    }
    // A client that went away shows as a reset socket, sometimes before the request's abort signal fires.
    const clientGone = ctx.state.signal?.aborted === true || ctx.req.socket.destroyed;
    ctx.res.destroy();
    if (!clientGone) ctx.app.emit('error', err, ctx);
  }
}
