/**
 * Reading a small request body (a manifest, a token form) into memory, refused with 413 above a limit:
 * before it is read when Content-Length says so, and as soon as it passes the limit otherwise
 * (`Transfer-Encoding: chunked`). Either way the answer is the same JSON error.
 *
 * A refused body is still read and dropped, up to a bound, before the answer goes out: closing a
 * socket with unread bytes in it resets the connection, and the client would see a broken pipe
 * instead of the 413. Past the bound the connection is closed after the answer. The body is read
 * through one iterator that does not destroy the request when left, so the socket stays there for the
 * answer (leaving a plain `for await` destroys it, and the 413 with it).
 */
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { tooLarge } from '../errors.js';
import { type BodyPacer, isSendable } from '../storage/registry.js';
import type { Ctx } from './context.js';
import { uploadMayGoNow, whenUploadMayGo } from './upload-pacing.js';
import { uploadStarted } from './uploads-running.js';
import { uploadBytesTaken } from './young-garbage.js';

/** How much of a refused body is read and dropped so the client can read the 413. */
const DISCARD_LIMIT = 64 * 1024 * 1024;

/**
 * The whole body, at most `limit` bytes. @throws TooLargeError (413) with `code`: MANIFEST_INVALID for
 * a manifest, SIZE_INVALID (the default) for anything else.
 */
export async function readSmallBody(ctx: Ctx, limit: number, code: 'MANIFEST_INVALID' | 'SIZE_INVALID' = 'SIZE_INVALID'): Promise<Buffer> {
  const declared = ctx.request.length;
  let over = declared !== undefined && declared > limit;
  if (over && declared !== undefined && declared > DISCARD_LIMIT) return refuse(ctx, limit, code);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
    const bytes: Buffer = chunk;
    total += bytes.length;
    if (total > limit) over = true;
    if (!over) chunks.push(bytes);
    else if (total > DISCARD_LIMIT) break;
  }
  if (over) return refuse(ctx, limit, code);
  return Buffer.concat(chunks, total);
}

/**
 * Runs `op` (an upload write) on the request body, with the pacer that storage tells of each chunk
 * (`AppendOptions.pacer`): it counts the bytes taken, and the upload counts as running until `op`
 * settles (uploads-running.ts), so the young generation holding their dead chunks is collected as
 * they pile up (young-garbage.ts); and it holds chunks back while the loop lags (upload-pacing.ts).
 * Storage reads the request itself, with no stream in between (body-feed.ts, issue #19), and never
 * destroys it: a failure midway (the storage full, say) leaves the request intact, and the rest of the
 * body is then read and dropped, up to DISCARD_LIMIT, so the client reads the JSON error instead of a
 * reset connection. A client that goes away still stops the write: the request's abort signal is
 * `op`'s, and the request's premature close fails the write.
 */
export async function withRequestBody<T>(ctx: Ctx, op: (body: Readable, pacer: BodyPacer) => Promise<T>): Promise<T> {
  // A client going away makes the request emit 'error' (ECONNRESET 'aborted'), often after `op` has
  // already failed on the same abort and let go of the request. This listener stays for the request's
  // life: Node decides whether an aborted request emits 'error' by its listeners when it is destroyed
  // and emits a tick later, and an uncaught 'error' here would take the whole process down. While `op`
  // runs, its own listeners see the error as before.
  ctx.req.on('error', ignoreError);
  const uploadDone = uploadStarted();
  try {
    return await op(ctx.req, uploadPacer);
  } catch (err) {
    uploadDone();
    if (!ctx.state.signal.aborted && !ctx.req.readableEnded && !ctx.req.destroyed) await discardRest(ctx);
    throw err;
  } finally {
    uploadDone();
  }
}

/** Counts each chunk of an upload for young-garbage.ts; holds it while upload-pacing.ts says so. */
const uploadPacer: BodyPacer = {
  admit(bytes: number): boolean {
    uploadBytesTaken(bytes);
    return uploadMayGoNow();
  },
  later: whenUploadMayGo,
};

function ignoreError(): void {}

/** Reads and drops what is left of the body, up to DISCARD_LIMIT; past it, the connection closes after the answer. */
async function discardRest(ctx: Ctx): Promise<void> {
  let read = 0;
  try {
    for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
      const bytes: Buffer = chunk;
      read += bytes.length;
      if (read > DISCARD_LIMIT) break;
    }
  } catch {
    // the client went away while we read: nothing to answer
  }
  if (!ctx.req.readableEnded) ctx.set('Connection', 'close');
}

/** Throws the 413, closing the connection after the answer when part of the body was left unread. */
function refuse(ctx: Ctx, limit: number, code: 'MANIFEST_INVALID' | 'SIZE_INVALID'): never {
  if (!ctx.req.readableEnded) ctx.set('Connection', 'close'); // gave up reading: don't reuse this socket
  throw tooLarge(limit, code);
}

/** Ends the response with `status` and no body (Content-Length: 0). */
export function respondEmpty(ctx: Ctx, status: number): void {
  ctx.body = null; // Koa turns a null body into 204; the status set after it wins
  ctx.status = status;
}

/**
 * Answers with `body` as the response body (status and headers, Content-Length included, already set).
 * A stream that can send itself (a driver's SendableReader, the filesystem driver's) writes straight to
 * the socket through reused buffers; any other is piped to the response. This resolves once it is all
 * sent. A failure before the first byte is thrown, for the usual JSON error; after it, the connection
 * is cut (the client must not take a short body for the blob) and the failure goes to the app's
 * 'error' listener unless the client went away (its socket is gone).
 *
 * Not through Koa's `ctx.body`: Koa 3 sends a stream body with `stream.pipeline`, which puts seven
 * 'close' listeners on the response; with the middleware's own (access log, metrics, abort signal,
 * the server's drain) that passed Node's limit of ten and warned (MaxListenersExceededWarning) on
 * every such response. `pipe` and one `finished` add two.
 */
export async function sendBody(ctx: Ctx, body: Readable): Promise<void> {
  ctx.respond = false;
  try {
    if (isSendable(body)) {
      await body.sendTo(ctx.res);
      ctx.res.end();
      await finished(ctx.res); // the request's duration covers the transfer; rejects if the socket closes first
    } else {
      body.pipe(ctx.res);
      await Promise.all([finished(body, { writable: false }), finished(ctx.res)]);
    }
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
