/**
 * Discovery: `GET /v2/_catalog` and `GET /v2/<name>/tags/list`, sorted, with `n`/`last` paging and a
 * `Link: <…>; rel="next"` header when more entries follow.
 */
import type { Ctx, Handler } from '../context.js';
import { nextLink } from '../headers.js';
import { pagination, repoName } from '../params.js';

interface PageRequest {
  readonly n: number | undefined;
  readonly last: string | undefined;
}

/**
 * JSON bodies of whole tag lists, by the list they were made from. The index hands out one array per
 * repository until its tags change (indexdb/tag-lists.ts), so a repeated whole listing is answered
 * without serializing 10,000 names again; a list read from storage is new each time and is not kept.
 */
const wholeTagBodies = new WeakMap<readonly string[], { readonly name: string; readonly body: Buffer }>();

/** `listed` is what storage answered for `rangeOf(request)`: the entries after `last`, one more than a page. */
function sendPage(ctx: Ctx, path: string, listed: readonly string[], request: PageRequest, body: (items: readonly string[]) => object): void {
  const items = request.n === undefined ? listed : listed.slice(0, request.n);
  const more = request.n !== undefined && listed.length > request.n;
  const lastItem = items.at(-1);
  if (more && request.n !== undefined && lastItem !== undefined) {
    ctx.set('Link', nextLink(path, { n: String(request.n), last: lastItem }));
  }
  ctx.status = 200;
  ctx.body = body(items);
}

/**
 * Catalog pages as sent (body and `Link`), by the listing they were made from. The index in Redis
 * hands out the same array for a page until the catalog changes (indexdb/redis-index.ts), so a
 * repeated page is answered without building its body again; other listings are new arrays each time.
 */
const catalogPages = new WeakMap<readonly string[], { readonly request: string; readonly body: Buffer; readonly link: string | undefined }>();

/** `GET /v2/_catalog?n=&last=`. */
export const getCatalog: Handler = async (ctx, deps) => {
  const { n, last } = pagination(ctx, deps.maxListEntries);
  // Without `n` the catalog is still cut into pages of the maximum size, as registry:2 does.
  const request = { n: n ?? deps.maxListEntries, last };
  const repos = await deps.registry.repositories({ signal: ctx.state.signal, ...rangeOf(request) });
  const path = `${deps.prefix}/v2/_catalog`;
  const asked = `${path}\n${request.n}\n${request.last ?? ''}`;
  let made = catalogPages.get(repos);
  if (made?.request !== asked) {
    sendPage(ctx, path, repos, request, (repositories) => ({ repositories }));
    made = { request: asked, body: Buffer.from(JSON.stringify(ctx.body)), link: ctx.response.get('Link') || undefined };
    catalogPages.set(repos, made);
  }
  if (made.link !== undefined) ctx.set('Link', made.link);
  ctx.status = 200;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = made.body;
};

/** `GET /v2/<name>/tags/list?n=&last=`. */
export const getTags: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const request = pagination(ctx, deps.maxListEntries);
  const tags = await deps.registry.repository(name).tags({ signal: ctx.state.signal, ...rangeOf(request) });
  if (request.n === undefined && request.last === undefined) {
    sendWholeTags(ctx, name, tags);
    return;
  }
  sendPage(ctx, `${deps.prefix}/v2/${name}/tags/list`, tags, request, (items) => ({ name, tags: items }));
};

/** Every tag of `name`: the same bytes as `sendPage` would send, serialized once per list. */
function sendWholeTags(ctx: Ctx, name: string, tags: readonly string[]): void {
  let made = wholeTagBodies.get(tags);
  if (made?.name !== name) {
    made = { name, body: Buffer.from(JSON.stringify({ name, tags })) };
    wholeTagBodies.set(tags, made);
  }
  ctx.status = 200;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = made.body;
}

/** What storage must list for a page: the entries after `last`, and one more than the page to learn whether more follow. */
function rangeOf(request: PageRequest): { after: string | undefined; limit: number | undefined } {
  return { after: request.last, limit: request.n === undefined ? undefined : request.n + 1 };
}
