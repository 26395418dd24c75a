/**
 * The Content Discovery workflow (spec "Listing Tags", end-8a, end-8b; "Listing Referrers", end-12a,
 * end-12b in referrers.ts): the tag list, its order, `n`, `last`, `n=0` and the Link header, and the 404
 * of a repository that does not exist.
 *
 * The repository may hold tags other workflows (or earlier runs) pushed, so paging is checked against
 * the whole list the registry answers, which must contain this workflow's tags.
 */
import type { CheckHandle, CheckRunner } from './check.js';
import type { Response } from './client.js';
import { imageOf } from './content.js';
import { expectError, expectEqual, expectStatus, fail, jsonBody, summarize } from './expect.js';
import { type SuiteContext, nextLink, pushImage, pushManifest, tagsPath, withQuery } from './ops.js';
import { runReferrers } from './referrers.js';

/** Pushed in this order, which is not their lexical order. */
const TAGS = ['disc-e', 'disc-a', 'disc-d', 'disc-b', 'disc-c'];
const MAX_PAGES = 1000;

/** Runs the Content Discovery workflow's checks. */
export async function runDiscovery(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const image = imageOf('discovery/image');
  const setup = await runner.check(`setup push an image under ${TAGS.length} tags`, async () => {
    await pushImage(ctx, repo, TAGS[0] ?? 'disc', image);
    for (const tag of TAGS.slice(1)) await pushManifest(ctx, repo, tag, image.manifest);
  });
  let all: string[] = [];
  const list = await runner.check('GET tags/list answers 200 with the repository name and every pushed tag', async () => {
    const page = tagPage(await ctx.client.request('GET', tagsPath(repo)));
    expectEqual('name', repo, page.name);
    const missing = TAGS.filter((t) => !page.tags.includes(t));
    if (missing.length > 0) fail(`tags including ${TAGS.join(',')}`, `tags ${page.tags.join(',')}`);
    all = page.tags;
  }, { needs: [setup] });
  await runner.check('GET tags/list answers the tags in lexical order', async () => {
    const bytes = [...all].sort();
    const folded = [...all].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
    if (JSON.stringify(all) !== JSON.stringify(bytes) && JSON.stringify(all) !== JSON.stringify(folded)) fail(`tags ${bytes.join(',')}`, `tags ${all.join(',')}`);
  }, { needs: [list] });
  await paging(ctx, runner, () => all, list);
  await runner.check('GET tags/list of a repository that does not exist answers 404 NAME_UNKNOWN', async () => {
    expectError(await ctx.client.request('GET', tagsPath(`${repo}/never-pushed`)), [404], ['NAME_UNKNOWN']);
  });
  await runReferrers(ctx, runner);
}

/** A tags/list answer: 200 with `{name, tags}`; `tags` may be null or absent when empty. */
function tagPage(res: Response): { name: unknown; tags: string[] } {
  expectStatus(res, 200);
  const doc = jsonBody(res);
  if (typeof doc !== 'object' || doc === null || !('name' in doc)) return fail('{"name","tags"}', summarize(res));
  const tags = 'tags' in doc ? doc.tags : undefined;
  if (tags !== undefined && tags !== null && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string'))) {
    return fail('"tags" as an array of strings', summarize(res));
  }
  return { name: doc.name, tags: Array.isArray(tags) ? (tags as string[]) : [] };
}

async function paging(ctx: SuiteContext, runner: CheckRunner, all: () => string[], list: CheckHandle): Promise<void> {
  const repo = ctx.settings.namespace;
  const get = (query: string): Promise<Response> => ctx.client.request('GET', `${tagsPath(repo)}?${query}`);
  const opts = { needs: [list] };
  await runner.check('GET tags/list?n=2 answers the first 2 tags (fewer only with a Link header)', async () => {
    const res = await get('n=2');
    const { tags } = tagPage(res);
    expectEqual('tags', all().slice(0, tags.length), tags);
    if (tags.length > 2 || (tags.length < 2 && res.header('Link') === undefined)) fail(`tags ${all().slice(0, 2).join(',')}`, `tags ${tags.join(',')}`);
  }, opts);
  await runner.check('GET tags/list?n=2 with more tags to come answers Link rel="next"', async () => {
    if (nextLink(ctx, await get('n=2')) === undefined) fail('a Link header', 'none');
  }, opts);
  await runner.check('following Link rel="next" from n=2 lists every tag once, in order', async () => {
    const seen: string[] = [];
    let url: string | undefined = withQuery(`${ctx.client.baseUrl}${tagsPath(repo)}`, 'n', '2');
    for (let pages = 0; url !== undefined && pages < MAX_PAGES; pages++) {
      const res = await ctx.client.request('GET', url);
      seen.push(...tagPage(res).tags);
      url = nextLink(ctx, res);
    }
    expectEqual('tags', all(), seen);
  }, opts);
  await runner.check('GET tags/list?n=0 answers an empty list and no Link', async () => {
    const res = await get('n=0');
    expectEqual('tags', [], tagPage(res).tags);
    if (res.header('Link') !== undefined) fail('no Link header', `Link: ${res.header('Link') ?? ''}`);
  }, opts);
  await afterLast(ctx, runner, all, opts);
}

async function afterLast(ctx: SuiteContext, runner: CheckRunner, all: () => string[], opts: { needs: CheckHandle[] }): Promise<void> {
  const repo = ctx.settings.namespace;
  const last = 'disc-b';
  await runner.check(`GET tags/list?last=${last} answers the tags after it`, async () => {
    const { tags } = tagPage(await ctx.client.request('GET', `${tagsPath(repo)}?last=${last}`));
    expectEqual('tags', all().slice(all().indexOf(last) + 1), tags);
  }, opts);
  await runner.check(`GET tags/list?n=2&last=${last} answers the 2 tags after it`, async () => {
    const { tags } = tagPage(await ctx.client.request('GET', `${tagsPath(repo)}?n=2&last=${last}`));
    const from = all().indexOf(last) + 1;
    expectEqual('tags', all().slice(from, from + 2), tags);
  }, opts);
}
