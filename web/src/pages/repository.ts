/**
 * One repository: its usage, its tags (by version or by push time, 20 a page), each with digest,
 * compressed size, created time (from the image config), push time, platforms of an index, referrers
 * as a tree under their subject, and a `docker pull` line to copy. Deleting a tag removes that tag
 * only (`DELETE /v2/<name>/manifests/<tag>`); deleting the repository uses the management API.
 */
import { pathOf, send } from '../api.js';
import { may } from '../auth.js';
import { announce, confirmAction, copyButton, facts, h, replace } from '../dom.js';
import { bytes, platformName, shortDigest, sortByVersionDesc, when } from '../format.js';
import {
  type FetchedManifest, type TagRow, clearCache, fetchConfig, fetchManifest, imageSize, isIndex, listTagDetails, listTagNames, namedTagDetails, repositoryUsage, repositoryUsagePath, tagNamesPath,
} from '../registry.js';
import { errorBox, manifestLink, pager, referrerTree } from './common.js';

const PAGE_SIZE = 20;

/** How many cards of a page fill at once (each asks its manifest, config and referrers in turn). */
const FILLING = 4;

/** The page's first requests (what main.ts may send before the auth mode is known). */
export function repositoryFirstRequests(name: string): string[] {
  return [tagNamesPath(name), repositoryUsagePath(name)];
}

/** Renders the page of repository `name`. */
export async function repositoryPage(root: HTMLElement, name: string, current: () => boolean): Promise<void> {
  manifests.clear();
  deleted.clear();
  clearCache();
  // The first screen asks only for what it shows: the tag names (the listing index answers them from
  // memory; the version order needs them all), the push times of the 20 tags on screen (one small
  // request), and their manifests and configs, card by card in order. Every tag's push time is asked
  // only when the tags are sorted by it.
  const [canDelete, usage, names] = await Promise.all([
    may('delete', { repository: name }),
    repositoryUsage(name).catch(() => undefined),
    listTagNames(name),
  ]);
  if (!current()) return;
  const byVersion = sortByVersionDesc(names, (r) => r.tag);
  const known = new Map<string, TagRow>(); // tags whose details (push time) were read
  let byPushTime: readonly TagRow[] | undefined;
  root.append(...repositoryHeader(name, names.length, usage));
  if (canDelete) root.append(deleteRepositoryButton(name));
  const order = h('select', { id: 'tag-order' }, h('option', { value: 'version' }, 'Version, newest first'), h('option', { value: 'pushed' }, 'Push time, newest first'));
  const list = h('div', { id: 'tag-list' });
  root.append(h('h2', {}, 'Tags'), h('div', { class: 'toolbar' }, h('label', { for: 'tag-order' }, 'Sort tags by'), order), list);
  let page = 0;
  /** Renders the current page's cards; resolves once they are filled in. */
  const show = async (): Promise<void> => {
    if (order.value === 'pushed' && byPushTime === undefined) {
      replace(list, h('p', { class: 'muted' }, 'Reading the push time of every tag…'));
      byPushTime = await pushTimeOrder(name, byVersion, known).catch((err: unknown) => {
        replace(list, errorBox(err));
        return undefined;
      });
      if (byPushTime === undefined || !current()) return;
    }
    const sorted = (order.value === 'pushed' ? byPushTime ?? byVersion : byVersion).filter((r) => !deleted.has(r.tag));
    const slice = sorted.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    const times = pushTimes(name, slice, known);
    const cards = slice.map((t) => tagCard(name, t, { canDelete, times, current }));
    const hasNext = (page + 1) * PAGE_SIZE < sorted.length;
    list.dataset['order'] = order.value;
    replace(list, sorted.length === 0 ? h('p', { class: 'empty' }, 'This repository has no tags.') : h('ul', { class: 'tags', 'aria-label': 'Tags' }, ...cards.map((c) => c.card)),
      sorted.length > PAGE_SIZE ? pager({ page, hasNext, label: 'Tag pages', onPage: (p) => { page = p; void show(); } }) : null);
    await inOrder(cards.map((c) => c.fill), FILLING);
  };
  order.addEventListener('change', () => {
    page = 0;
    void show();
  });
  await show();
}

/** The details of the tags of a page, from those already read and one request for the rest (never rejects). */
async function pushTimes(name: string, tags: readonly TagRow[], known: Map<string, TagRow>): Promise<ReadonlyMap<string, TagRow>> {
  const missing = tags.filter((t) => !known.has(t.tag)).map((t) => t.tag);
  if (missing.length > 0) {
    const got = await namedTagDetails(name, missing).catch(() => undefined);
    for (const d of got ?? []) known.set(d.tag, d);
  }
  return known;
}

/** Every tag by push time, newest first (ties in version order): all their details, read once. */
async function pushTimeOrder(name: string, byVersion: readonly TagRow[], known: Map<string, TagRow>): Promise<TagRow[]> {
  const details = await listTagDetails(name);
  if (details === undefined) throw new Error('this server gives no push times (/berth/v1/repositories/<name>/tags)');
  for (const d of details) known.set(d.tag, d);
  // Only tags listed when the page opened: one deleted meanwhile stays gone. The sort is stable.
  const rows = byVersion.map((r) => known.get(r.tag) ?? r);
  return rows.sort((a, b) => (b.pushed ?? '').localeCompare(a.pushed ?? ''));
}

/** Runs `jobs` in their order, `parallel` at a time (none of them rejects). */
async function inOrder(jobs: readonly (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) await job();
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
}

/** Title, pull line and usage figures (or the tag count when the usage API cannot answer). */
function repositoryHeader(name: string, tagCount: number, usage: Awaited<ReturnType<typeof repositoryUsage>>): HTMLElement[] {
  const pull = `docker pull ${location.host}/${name}`;
  return [
    h('h1', {}, h('span', { class: 'muted' }, 'Repository '), name),
    h('p', { class: 'pull' }, h('code', {}, pull), ' ', copyButton(pull, 'the pull command')),
    usage === undefined ? h('p', { class: 'muted' }, `${tagCount} tag${tagCount === 1 ? '' : 's'}.`) : facts([
      ['Tags', String(usage.tags ?? tagCount)],
      ['Manifests', String(usage.manifests ?? '—')],
      ['Size', bytes(usage.logicalBytes)],
      ['Only here', bytes(usage.exclusiveBytes)],
      ['Shared with others', bytes(usage.sharedBytes)],
      ['Last push', when(usage.lastPush)],
      ['Last pull', when(usage.lastPull)],
    ]),
  ];
}

/** Tags deleted on this page view (the details that arrive later must not bring them back). */
const deleted = new Set<string>();

/** Manifests fetched for this page view, by tag (a re-render with details fetches nothing again). */
const manifests = new Map<string, Promise<FetchedManifest>>();

function manifestOf(name: string, ref: string): Promise<FetchedManifest> {
  const key = `${name}@${ref}`;
  let got = manifests.get(key);
  if (got === undefined) {
    got = fetchManifest(name, ref);
    manifests.set(key, got);
    got.catch(() => manifests.delete(key));
  }
  return got;
}

interface CardOptions {
  readonly canDelete: boolean;
  /** The details (push time) of the page's tags, by tag. */
  readonly times: Promise<ReadonlyMap<string, TagRow>>;
  readonly current: () => boolean;
}

/** A tag's card, and `fill`, which fills it in as its manifest, config and referrers arrive (never rejects). */
function tagCard(name: string, t: TagRow, o: CardOptions): { card: HTMLLIElement; fill: () => Promise<void> } {
  const details = h('div', { class: 'tag-details' }, h('p', { class: 'muted' }, 'Loading…'));
  const pull = `docker pull ${location.host}/${name}:${t.tag}`;
  const card = h('li', { class: 'tag', 'data-tag': t.tag },
    h('div', { class: 'tag-head' },
      h('h3', {}, manifestLink(name, t.tag)),
      o.canDelete ? h('button', { type: 'button', class: 'danger', onclick: () => void deleteTag(name, t.tag, card) }, 'Delete tag', h('span', { class: 'visually-hidden' }, ` ${t.tag}`)) : null),
    h('p', { class: 'pull' }, h('code', {}, pull), ' ', copyButton(pull, `the pull command for ${t.tag}`)),
    details);
  // A card no longer on screen (another page, order or re-render) asks nothing.
  const fill = (): Promise<void> => (card.isConnected ? fillTag(name, t, details, o) : Promise.resolve());
  return { card, fill };
}

async function fillTag(name: string, t: TagRow, into: HTMLElement, { times, current }: CardOptions): Promise<void> {
  try {
    // A tag pushed again since the list was read still shows what it points at now: fetch by tag.
    const m = await manifestOf(name, t.tag);
    const config = isIndex(m) ? undefined : await fetchConfig(name, m.manifest);
    const pushed = (await times).get(t.tag)?.pushed;
    if (!current()) return;
    replace(into, facts([
      ['Digest', h('span', {}, h('code', { class: 'digest', title: m.digest }, shortDigest(m.digest)), ' ', copyButton(m.digest, `the digest of ${t.tag}`))],
      ['Size', isIndex(m) ? 'see platforms' : bytes(imageSize(m.manifest))],
      ['Created', when(config?.created)],
      ['Pushed', when(pushed)],
      ['Type', isIndex(m) ? 'index (multi-platform)' : m.manifest.artifactType ?? (config?.os !== undefined ? platformName(config) : 'image')],
    ]));
    if (isIndex(m)) into.append(await platforms(name, m));
    const tree = await referrerTree(name, m.digest);
    if (tree !== undefined && current()) into.append(h('div', { class: 'referrer-block' }, h('h4', {}, 'Referrers'), tree));
  } catch (err) {
    if (current()) replace(into, errorBox(err));
  }
}

/** The platforms of an index, in a disclosure (keyboard operable, announced as expanded or not). */
async function platforms(name: string, index: FetchedManifest): Promise<HTMLElement> {
  const children = index.manifest.manifests ?? [];
  const rows = await Promise.all(children.map(async (c) => {
    const child = await manifestOf(name, c.digest).catch(() => undefined);
    const size = child === undefined ? undefined : imageSize(child.manifest);
    const referrers = await referrerTree(name, c.digest).catch(() => undefined);
    return h('li', { class: 'platform' },
      h('span', { class: 'platform-name' }, platformName(c.platform)), ' ',
      manifestLink(name, c.digest), ' ',
      h('span', { class: 'muted' }, bytes(size)),
      referrers ?? null);
  }));
  return h('details', { class: 'platforms' },
    h('summary', {}, `${children.length} platform${children.length === 1 ? '' : 's'}`),
    h('ul', {}, ...rows));
}

async function deleteTag(name: string, tag: string, card: HTMLElement): Promise<void> {
  if (!confirmAction(`Delete the tag ${name}:${tag}?\n\nOnly this tag goes: other tags on the same image stay, and the image stays until no tag or digest reference is left.`)) return;
  try {
    await send(`v2/${pathOf(name)}/manifests/${encodeURIComponent(tag)}`, 'DELETE');
    deleted.add(tag);
    card.remove();
    announce(`Deleted tag ${tag}`);
  } catch (err) {
    card.append(errorBox(err));
  }
}

function deleteRepositoryButton(name: string): HTMLElement {
  const box = h('div', { class: 'danger-zone' });
  box.append(h('button', {
    type: 'button', class: 'danger', onclick: () => {
      if (!confirmAction(`Delete the whole repository ${name}, with every tag and manifest in it?`)) return;
      send(`berth/v1/repositories/${pathOf(name)}`, 'DELETE').then(() => {
        announce(`Deleted repository ${name}`);
        location.hash = '#/';
      }, (err: unknown) => box.append(errorBox(err)));
    },
  }, 'Delete repository'));
  return box;
}
