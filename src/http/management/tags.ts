/**
 * `GET /berth/v1/repositories/<name>/tags?n=&last=` (pull on the repository): the repository's tags in
 * code-unit order, each with the digest, media type and size of the manifest it names and when it was
 * last pushed (`{"tags":[{"tag","digest","mediaType","size","pushed"}]}`, times RFC 3339, null when
 * unknown), paged like the tag list with a `Link` header. One request gives the web UI what it would
 * otherwise ask per tag; a page holds up to 10,000 tags (more than `/v2/`'s list pages, since each
 * entry is answered from the index). With `tag` (repeated, at most 100) it answers those tags (the ones
 * that exist) instead of a range.
 *
 * `sort=version` or `sort=pushed` (newest first; `sort=name` is the default order) sorts on the server
 * and answers one page of that order with `"total"`, the repository's tag count: the web UI's first
 * screen of a 10,000-tag repository is one request for 20 tags. The next page starts after `last` in
 * that order; for `pushed` the `Link` also carries `lastpushed`, the push time `last` was sorted by
 * (`unknown` when it had none), so a tag pushed again meanwhile does not move the cursor.
 */
import { RegistryError, paginationInvalid } from '../../errors.js';
import { type RepoName, type Tag, parseTag } from '../../storage/reference.js';
import type { SortedTagQuery, TagDetail } from '../../storage/registry.js';
import type { Ctx } from '../context.js';
import { nextLink } from '../headers.js';
import { pagination, queryValue, repoName } from '../params.js';
import type { ManagementDeps, ManagementEndpoint } from './types.js';
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
    const order = sortOf(ctx);
    if (order !== 'name') {
      await sortedPage(ctx, deps, { order, after: last, afterPushed: lastPushed(ctx, order), limit });
      return;
    }
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

/** A page in version or push-time order, with the total and a `Link` to the next page. */
async function sortedPage(ctx: Ctx, deps: ManagementDeps, query: SortedTagQuery): Promise<void> {
  const { body, link } = await sortedTagPage(deps, repoName(ctx), query, ctx.state.signal);
  if (link !== undefined) ctx.set('Link', link);
  ctx.status = 200;
  ctx.body = body;
}

/**
 * A page of `GET /berth/v1/repositories/<name>/tags?sort=version|pushed`: its body (the tags and the
 * repository's `total`) and the `Link` to the next page. @throws NAME_UNKNOWN
 */
export async function sortedTagPage(
  deps: ManagementDeps, name: RepoName, query: SortedTagQuery, signal: AbortSignal | undefined,
): Promise<{ body: { tags: Record<string, unknown>[]; total: number }; link: string | undefined }> {
  const page = await managementOf(deps).sortedTagDetails(name, query, signal === undefined ? {} : { signal });
  let link: string | undefined;
  if (page.next !== undefined) {
    const params: Record<string, string> = { sort: query.order, n: String(query.limit), last: page.next.tag };
    if (query.order === 'pushed') params['lastpushed'] = page.next.pushed?.toISOString() ?? UNKNOWN_TIME;
    link = nextLink(`${deps.prefix}/berth/v1/repositories/${name}/tags`, params);
  }
  return { body: { tags: page.tags.map(tagJson), total: page.total }, link };
}

/** How `lastpushed` says the tag it follows had no push time. */
const UNKNOWN_TIME = 'unknown';

/** The `sort` of the query (`name` when absent). @throws NAME_INVALID for another value */
function sortOf(ctx: Ctx): 'name' | 'version' | 'pushed' {
  const raw = queryValue(ctx, 'sort');
  if (raw === undefined || raw === '' || raw === 'name') return 'name';
  if (raw === 'version' || raw === 'pushed') return raw;
  throw new RegistryError('NAME_INVALID', 'invalid request: sort must be name, version or pushed');
}

/** The `lastpushed` of a push-time page (undefined: the `last` tag's push time now). @throws NAME_INVALID */
function lastPushed(ctx: Ctx, order: 'version' | 'pushed'): Date | null | undefined {
  const raw = queryValue(ctx, 'lastpushed');
  if (raw === undefined || order !== 'pushed') return undefined;
  if (raw === UNKNOWN_TIME) return null;
  const t = Date.parse(raw);
  if (!/^\d{4}-\d\d-\d\dT/.test(raw) || Number.isNaN(t)) throw new RegistryError('NAME_INVALID', 'invalid request: lastpushed must be an RFC 3339 time or unknown');
  return new Date(t);
}
