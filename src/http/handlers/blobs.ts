/**
 * `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`: streamed, with single byte ranges (206/416) and
 * long-lived caching (a blob never changes under its digest).
 */
import { respondEmpty, sendBody } from '../body.js';
import type { Handler } from '../context.js';
import { notify } from '../notify.js';
import { parseRange } from '../headers.js';
import { digestParam, repoName } from '../params.js';

const IMMUTABLE_CACHE = 'max-age=31536000';

/** `GET|HEAD /v2/<name>/blobs/<digest>`. */
export const getBlob: Handler = async (ctx, deps) => {
  const repo = deps.registry.repository(repoName(ctx));
  const digest = digestParam(ctx);
  const header = ctx.get('Range') || undefined;
  const served = await repo.blobs.serve(digest, {
    method: ctx.method === 'HEAD' ? 'HEAD' : 'GET',
    range: (size) => parseRange(header, size),
    signal: ctx.state.signal,
  });
  const { size } = served.info;
  if (served.kind === 'unsatisfiable') {
    ctx.set('Content-Range', `bytes */${size}`);
    respondEmpty(ctx, 416);
    return;
  }
  await notify(ctx, deps, { kind: 'blob', action: 'pull', repository: repo.name, digest, size });
  ctx.set('Docker-Content-Digest', digest);
  if (served.kind === 'redirect') {
    ctx.status = 307;
    ctx.redirect(served.redirect);
    return;
  }
  const { range, stream } = served;
  ctx.set('ETag', `"${digest}"`);
  ctx.set('Cache-Control', IMMUTABLE_CACHE);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.status = range ? 206 : 200;
  if (range) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  ctx.type = 'application/octet-stream';
  ctx.length = range ? range.end - range.start + 1 : size;
  if (stream) await sendBody(ctx, stream);
};

/** `DELETE /v2/<name>/blobs/<digest>`: unlinks; the bytes stay until garbage collection. */
export const deleteBlob: Handler = async (ctx, deps) => {
  const repo = deps.registry.repository(repoName(ctx));
  const digest = digestParam(ctx);
  await repo.blobs.delete(digest, { signal: ctx.state.signal });
  await notify(ctx, deps, { kind: 'delete', repository: repo.name, digest });
  respondEmpty(ctx, 202);
};
