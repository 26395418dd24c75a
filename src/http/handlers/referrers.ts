/**
 * `GET /v2/<name>/referrers/<digest>[?artifactType=]` (OCI v1.1): always 200 with an OCI image index
 * of the manifests whose subject is `<digest>`; `OCI-Filters-Applied: artifactType` when filtered.
 */
import { MEDIA_TYPES } from '../../storage/registry.js';
import type { Handler } from '../context.js';
import { digestParam, queryValue, repoName } from '../params.js';

/** `GET /v2/<name>/referrers/<digest>?artifactType=`. */
export const getReferrers: Handler = async (ctx, deps) => {
  const repo = deps.registry.repository(repoName(ctx));
  const subject = digestParam(ctx);
  const artifactType = queryValue(ctx, 'artifactType');
  const manifests = await repo.referrers(subject, { artifactType }, { signal: ctx.state.signal });
  if (artifactType !== undefined) ctx.set('OCI-Filters-Applied', 'artifactType');
  ctx.status = 200;
  ctx.type = MEDIA_TYPES.ociIndex;
  ctx.body = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests });
};
