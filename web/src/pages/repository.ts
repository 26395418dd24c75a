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
  type FetchedManifest, type TagRow, clearCache, fetchConfig, fetchManifest, imageSize, isIndex, listTagDetails, listTagNames, repositoryUsage,
} from '../registry.js';
import { errorBox, manifestLink, pager, referrerTree } from './common.js';

const PAGE_SIZE = 20;

/** How many cards of a page fill at once (each asks its manifest, config and referrers in turn). */
const FILLING = 4;

/** Renders the page of repository `name`. */
export async function repositoryPage(root: HTMLElement, name: string, current: () => boolean): Promise<void> {
  manifests.clear();
  deleted.clear();
  clearCache();
  // The first screen asks only for what it shows: the tag names (the listing index answers them from
  // memory; the version order needs them all), then the manifests and configs of the tags on screen,
  // card by card in order. Every tag's digest, size and push time (for the push-time order) are asked
  // once those cards are filled, so that large answer never delays the first one.
  const [canDelete, usage, names] = await Promise.all([
    may('delete', { repository: name }),
    repositoryUsage(name).catch(() => undefined),
    listTagNames(name),
  ]);
  if (!current()) return;
  let byVersion = sortByVersionDesc(names, (r) => r.tag);
  let byPushTime: readonly TagRow[] = byVersion;
  let detailed = false;
  root.append(...repositoryHeader(name, names.length, usage));
  if (canDelete) root.append(deleteRepositoryButton(name));
  const byPush = h('option', { value: 'pushed', disabled: true }, 'Push time, newest first');
  const order = h('select', { id: 'tag-order' }, h('option', { value: 'version' }, 'Version, newest first'), byPush);
  const list = h('div', { id: 'tag-list' });
  root.append(h('h2', {}, 'Tags'), h('div', { class: 'toolbar' }, h('label', { for: 'tag-order' }, 'Sort tags by'), order), list);
  let page = 0;
  /** Renders the current page's cards; resolves once they are filled in. */
  const show = (): Promise<void> => {
    const sorted = (order.value === 'pushed' ? byPushTime : byVersion).filter((r) => !deleted.has(r.tag));
    const cards = sorted.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).map((t) => tagCard(name, t, { canDelete, detailed, current }));
    const hasNext = (page + 1) * PAGE_SIZE < sorted.length;
    replace(list, sorted.length === 0 ? h('p', { class: 'empty' }, 'This repository has no tags.') : h('ul', { class: 'tags', 'aria-label': 'Tags' }, ...cards.map((c) => c.card)),
      sorted.length > PAGE_SIZE ? pager({ page, hasNext, label: 'Tag pages', onPage: (p) => { page = p; void show(); } }) : null);
    return inOrder(cards.map((c) => c.fill), FILLING);
  };
  order.addEventListener('change', () => {
    page = 0;
    void show();
  });
  await show();
  if (!current()) return;
  const details = await listTagDetails(name).catch(() => undefined);
  if (details === undefined || !current()) return;
  // Only tags still listed: one deleted meanwhile stays gone.
  const byTag = new Map(details.map((d) => [d.tag, d]));
  byVersion = byVersion.map((r) => byTag.get(r.tag) ?? r);
  byPushTime = [...byVersion].sort((a, b) => (b.pushed ?? '').localeCompare(a.pushed ?? '')); // stable: ties stay in version order
  detailed = true;
  byPush.disabled = false;
  list.dataset['detailed'] = 'true';
  await show();
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
  /** Whether the tag's push time is known yet (the details come after the first cards). */
  readonly detailed: boolean;
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

async function fillTag(name: string, t: TagRow, into: HTMLElement, { detailed, current }: CardOptions): Promise<void> {
  try {
    // A tag pushed again since the list was read still shows what it points at now: fetch by tag.
    const m = await manifestOf(name, t.tag);
    const config = isIndex(m) ? undefined : await fetchConfig(name, m.manifest);
    if (!current()) return;
    replace(into, facts([
      ['Digest', h('span', {}, h('code', { class: 'digest', title: m.digest }, shortDigest(m.digest)), ' ', copyButton(m.digest, `the digest of ${t.tag}`))],
      ['Size', isIndex(m) ? 'see platforms' : bytes(imageSize(m.manifest))],
      ['Created', when(config?.created)],
      ['Pushed', detailed ? when(t.pushed) : '…'],
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
