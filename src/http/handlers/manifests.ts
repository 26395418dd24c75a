/**
 * `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.
 */
import { isRegistryError, manifestUnknown } from '../../errors.js';
import { MAX_MANIFEST_BYTES } from '../../storage/registry.js';
import type { Reference } from '../../storage/reference.js';
import { readSmallBody, respondEmpty } from '../body.js';
import type { Ctx, Handler } from '../context.js';
import { notify, notifyManifestPull } from '../notify.js';
import { reference, repoName } from '../params.js';

/**
 * The reference of a read or delete: a string that cannot be a tag names no manifest, so it is 404
 * MANIFEST_UNKNOWN as the spec's endpoint table says (a PUT still refuses it with TAG_INVALID).
 */
function existingReference(ctx: Ctx): Reference {
  try {
    return reference(ctx);
  } catch (err) {
    if (isRegistryError(err, 'TAG_INVALID')) throw manifestUnknown(ctx.state.params['reference'] ?? '');
    throw err;
  }
}

/** Answers 304 when the client's If-None-Match already names `etag`. */
function notModified(ctx: Ctx, etag: string): boolean {
  const header = ctx.get('If-None-Match');
  if (header === '' || !header.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return false;
  ctx.status = 304;
  ctx.set('ETag', etag);
  return true;
}

/** `GET|HEAD /v2/<name>/manifests/<reference>`. */
export const getManifest: Handler = async (ctx, deps) => {
  const repo = deps.registry.repository(repoName(ctx));
  const ref = existingReference(ctx);
  // No abort signal: the reads are small (links and the manifest), and a request that never reads
  // `ctx.state.signal` costs no AbortController (request-state.ts).
  const manifest = await repo.manifests.get(ref, { accept: ctx.get('Accept') || undefined, pull: ctx.method === 'GET' });
  const etag = `"${manifest.digest}"`;
  ctx.set('Docker-Content-Digest', manifest.digest);
  if (manifest.stale !== undefined) ctx.set('Warning', manifest.stale);
  if (notModified(ctx, etag)) return;
  await notifyManifestPull(ctx, deps, repo.name, ref, manifest);
  ctx.status = 200;
  ctx.set('ETag', etag);
  ctx.type = manifest.mediaType;
  ctx.body = manifest.content;
};

/** `PUT /v2/<name>/manifests/<reference>`. */
export const putManifest: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const ref = reference(ctx);
  const body = await readSmallBody(ctx, MAX_MANIFEST_BYTES, 'MANIFEST_INVALID');
  const result = await deps.registry
    .repository(name)
    .manifests.put(ref, body, ctx.get('Content-Type') || undefined, { signal: ctx.state.signal });
  await notify(ctx, deps, { kind: 'manifest', action: 'push', repository: name, digest: result.digest, content: body, ...('tag' in ref && { tag: ref.tag }) });
  ctx.set('Location', deps.urlFor(ctx, `/v2/${name}/manifests/${result.digest}`));
  ctx.set('Docker-Content-Digest', result.digest);
  if (result.subject !== undefined) ctx.set('OCI-Subject', result.subject);
  respondEmpty(ctx, 201);
};

/** `DELETE /v2/<name>/manifests/<reference>`. */
export const deleteManifest: Handler = async (ctx, deps) => {
  const repo = deps.registry.repository(repoName(ctx));
  const ref = existingReference(ctx);
  const { untagged } = await repo.manifests.delete(ref, { signal: ctx.state.signal });
  if ('tag' in ref) {
    await notify(ctx, deps, { kind: 'delete', repository: repo.name, tag: ref.tag });
  } else {
    // As registry:2: each tag the deletion removed, then the manifest.
    for (const tag of untagged) await notify(ctx, deps, { kind: 'delete', repository: repo.name, tag });
    await notify(ctx, deps, { kind: 'delete', repository: repo.name, digest: ref.digest });
  }
  respondEmpty(ctx, 202);
};
