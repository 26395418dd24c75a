/**
 * `GET /berth/v1/repositories/<name>/tags?n=&last=` (pull on the repository): the repository's tags in
 * code-unit order, each with the digest, media type and size of the manifest it names and when it was
 * last pushed (`{"tags":[{"tag","digest","mediaType","size","pushed"}]}`, times RFC 3339, null when
 * unknown), paged like the tag list with a `Link` header. One request gives the web UI what it would
 * otherwise ask per tag; a page holds up to 10,000 tags (more than `/v2/`'s list pages, since each
 * entry is answered from the index). With `tag` (repeated, at most 100) it answers those tags (the ones
 * that exist) instead of a range: the web UI's page of 20 in version order asks just those.
 */
import { paginationInvalid } from '../../errors.js';
import { type Tag, parseTag } from '../../storage/reference.js';
import type { TagDetail } from '../../storage/registry.js';
import type { Ctx } from '../context.js';
import { nextLink } from '../headers.js';
import { pagination, repoName } from '../params.js';
import type { ManagementEndpoint } from './types.js';
import { managementOf, pullOnName } from './usage.js';

/** The largest page, and the page size when `n` is not given. */
export const MAX_TAG_PAGE = 10_000;

/** The most tags one request may name with `tag`. */
export const MAX_NAMED_TAGS = 100;

function tagJson(t: TagDetail): Record<string, unknown> {
  return { tag: t.tag, digest: t.digest ?? null, mediaType: t.mediaType ?? null, size: t.size ?? null, pushed: t.pushed?.toISOString() ?? null };
}

export const listTagDetails: ManagementEndpoint = {
  access: pullOnName,
  writes: false,
  async handle(ctx, deps) {
    const name = repoName(ctx);
    const named = namedTags(ctx);
    if (named !== undefined) {
      const details = await managementOf(deps).namedTagDetails(name, named, { signal: ctx.state.signal });
      ctx.status = 200;
      ctx.body = { tags: details.map(tagJson) };
      return;
    }
    const { n, last } = pagination(ctx, MAX_TAG_PAGE);
    const limit = n ?? MAX_TAG_PAGE;
    const page = await managementOf(deps).tagDetails(name, { after: last, limit: limit + 1 }, { signal: ctx.state.signal });
    const items = page.slice(0, limit);
    const lastItem = items.at(-1);
    if (page.length > limit && lastItem !== undefined) {
      ctx.set('Link', nextLink(`${deps.prefix}/berth/v1/repositories/${name}/tags`, { n: String(limit), last: lastItem.tag }));
    }
    ctx.status = 200;
    ctx.body = { tags: items.map(tagJson) };
  },
};

/** The tags named by `tag` query values, or undefined when there are none. @throws TAG_INVALID, PAGINATION_NUMBER_INVALID */
function namedTags(ctx: Ctx): Tag[] | undefined {
  const raw = ctx.query['tag'];
  if (raw === undefined) return undefined;
  const values = Array.isArray(raw) ? raw : [raw];
  if (values.length > MAX_NAMED_TAGS) throw paginationInvalid(`${values.length} tags named; at most ${MAX_NAMED_TAGS} in one request`);
  return values.map(parseTag);
}
