/**
 * Reading a small request body (a manifest) into memory, refused with 413 above a limit: before it
 * is read when Content-Length says so, and as soon as it passes the limit otherwise.
 *
 * A refused body is still read and dropped, up to a bound, before the answer goes out: closing a
 * socket with unread bytes in it resets the connection, and the client would see a broken pipe
 * instead of the 413. Past the bound the connection is closed after the answer.
 */
import { tooLarge } from '../errors.js';
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
