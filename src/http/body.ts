/**
 * Reading a small request body (a manifest) into memory, refused above a limit before it is read
 * when Content-Length says so, and as soon as it passes the limit otherwise.
 */
import { tooLarge } from '../errors.js';
import type { Ctx } from './context.js';

export async function readSmallBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Ends the response with `status` and no body (Content-Length: 0). */
export function respondEmpty(ctx: Ctx, status: number): void {
  ctx.body = null; // Koa turns a null body into 204; the status set after it wins
  ctx.status = status;
}
