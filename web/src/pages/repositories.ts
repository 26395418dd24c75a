/**
 * The repository list: a search box that filters by name prefix as you type, pages of 50 in name order,
 * and for each repository its tag count, size and last push (from the usage API; the catalog alone
 * gives names only). Both are asked at once: the names show as soon as the catalog answers, and the
 * figures take their place when they come.
 */
import { isEmbedded, pathOf } from '../api.js';
import { hrefOf, replaceRoute } from '../nav.js';
import { h, replace, table } from '../dom.js';
import { bytes, when } from '../format.js';
import { type RepoPage, catalogPage, catalogPath, usagePage, usagePath } from '../registry.js';
import { errorBox, pager } from './common.js';

const PAGE_SIZE = 50;

/** The requests of the list's first page (what main.ts may send before the auth mode is known). */
export function repositoriesFirstRequests(query: string): string[] {
  return [usagePath(query.trim(), undefined, PAGE_SIZE), catalogPath(query.trim(), undefined, PAGE_SIZE)];
}

/** Renders the list; `query` is the search's starting text (the `?q=` of the URL). */
export async function repositoriesPage(root: HTMLElement, query: string, current: () => boolean): Promise<void> {
  const search = h('input', {
    id: 'repo-search', type: 'search', value: query, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'library/', 'aria-describedby': 'repo-search-help', 'aria-controls': 'repo-results',
  });
  const results = h('div', { id: 'repo-results', 'aria-live': 'polite' });
  root.append(
    h('h1', {}, 'Repositories'),
    h('div', { class: 'search' },
      h('label', { for: 'repo-search' }, 'Search repositories'),
      search,
      h('p', { id: 'repo-search-help', class: 'muted' }, 'Names starting with what you type.')),
    results,
  );
  // `starts[i]` is the `last` that page i starts after.
  let starts: (string | undefined)[] = [undefined];
  let page = 0;
  let asked = 0;
  const load = async (): Promise<void> => {
    const mine = ++asked;
    const prefix = search.value.trim();
    const after = starts[page];
    const stillMine = (): boolean => mine === asked && current();
    const go = (p: number): void => {
      page = p;
      void load();
    };
    const render = (got: RepoPage, figuresPending: boolean): void => {
      starts[page + 1] = got.next;
      replace(results, listing(got, prefix, figuresPending), pager({ page, hasNext: got.next !== undefined, onPage: go, label: 'Repository pages' }));
    };
    // Both at once: the names (the catalog, from the listing index) show as soon as they come; the usage
    // figures replace them when the usage API gives them (it answers 503 while its index is not ready).
    // When the figures came with the page (its first view), they name the repositories too: the catalog is
    // asked only if they turn out unusable.
    const figuresSent = isEmbedded(usagePath(prefix, after, PAGE_SIZE));
    let withFigures = false;
    const figures = usagePage(prefix, after, PAGE_SIZE).then((got) => {
      if (got !== undefined && stillMine()) {
        withFigures = true;
        render(got, false);
      }
      return got;
    });
    const named = figuresSent
      ? figures.catch(() => undefined).then((got) => got ?? catalogPage(prefix, after, PAGE_SIZE))
      : catalogPage(prefix, after, PAGE_SIZE);
    const names = named.then((got) => {
      if (!withFigures && stillMine()) render(got, true);
      return got;
    });
    const [f, c] = await Promise.allSettled([figures, names]);
    if (!stillMine() || withFigures) return;
    if (c.status === 'fulfilled') render(c.value, false); // no figures to come: say so under the names
    else replace(results, errorBox(f.status === 'rejected' ? f.reason : c.reason));
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener('input', () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      starts = [undefined];
      page = 0;
      const q = search.value.trim();
      replaceRoute(q === '' ? '' : `?q=${encodeURIComponent(q)}`);
      void load();
    }, 120);
  });
  await load();
}

/** The table of a page; under names alone, a note on the figures (unless they may still come). */
function listing(got: RepoPage, prefix: string, figuresPending: boolean): HTMLElement {
  if (got.repos.length === 0) {
    return h('p', { class: 'empty' }, prefix === '' ? 'No repositories yet. Push one: docker push ' + location.host + '/name:tag' : `No repository starts with “${prefix}”.`);
  }
  const withUsage = got.source === 'usage';
  const rows = got.repos.map((r) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: hrefOf(`r/${pathOf(r.name)}`) }, r.name)),
    ...(withUsage ? [h('td', { class: 'num' }, r.tags ?? '—'), h('td', { class: 'num' }, bytes(r.logicalBytes)), h('td', {}, when(r.lastPush))] : [])));
  const headers = withUsage ? ['Name', 'Tags', 'Size', 'Last push'] : ['Name'];
  const list = table('Repositories', headers, rows, 'repos');
  if (withUsage || figuresPending) return list;
  return h('div', {}, list, h('p', { class: 'muted' }, 'Tag counts, sizes and push times need the usage API (/berth/v1/usage), which this server does not have or cannot answer yet.'));
}
