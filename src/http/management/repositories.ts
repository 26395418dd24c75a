/**
 * `DELETE /berth/v1/repositories/<name>` (delete on the repository): removes the repository's links
 * (tags, revisions, layers, uploads) so it leaves the catalog and the index at once; the collector frees
 * the bytes no other repository links. 202, because the bytes go later. A registry:2 `delete` event is
 * sent for each manifest revision it had (the tags go with them, as a manifest delete by digest).
 * A repository holding a tag that an immutable-tag rule covers is refused (403 DENIED naming the tag
 * and the rule) and left whole.
 */
import type { AccessItem } from '../../auth/access.js';
import type { Ctx } from '../context.js';
import { notify } from '../notify.js';
import { repoName } from '../params.js';
import type { ManagementEndpoint } from './types.js';
import { managementOf } from './usage.js';

function deleteOnName(ctx: Ctx): AccessItem[] {
  return [{ type: 'repository', name: repoName(ctx), actions: ['delete'] }];
}

export const deleteRepository: ManagementEndpoint = {
  access: deleteOnName,
  writes: true,
  async handle(ctx, deps) {
    const name = repoName(ctx);
    const deleted = await managementOf(deps).deleteRepository(name, { signal: ctx.state.signal });
    for (const digest of deleted.manifests) await notify(ctx, deps, { kind: 'delete', repository: name, digest });
    ctx.status = 202;
    ctx.body = { name, manifests: deleted.manifests.length, tags: deleted.tags.length };
  },
};
