/**
 * One repository: its usage, its tags (by version or by push time, 20 a page), each with digest,
 * compressed size, created time (from the image config), push time, platforms of an index, referrers
 * as a tree under their subject, and a `docker pull` line to copy. Deleting a tag removes that tag
 * only (`DELETE /v2/<name>/manifests/<tag>`); deleting the repository uses the management API.
 */
import { pathOf, send } from '../api.js';
import { may } from '../auth.js';
import { announce, confirmAction, copyButton, facts, h, replace } from '../dom.js';
import { bytes, compareVersionsDesc, platformName, shortDigest, when } from '../format.js';
import {
  type FetchedManifest, type TagRow, clearCache, fetchConfig, fetchManifest, imageSize, isIndex, listTagDetails, listTagNames, repositoryUsage,
} from '../registry.js';
import { errorBox, manifestLink, pager, referrerTree } from './common.js';

const PAGE_SIZE = 20;

type Order = 'version' | 'pushed';

/** Renders the page of repository `name`. */
export async function repositoryPage(root: HTMLElement, name: string, current: () => boolean): Promise<void> {
  manifests.clear();
  deleted.clear();
  clearCache();
  // Names first (the index answers them from memory), so the first cards show at once; the details
  // (digest, size, push time of every tag) follow and replace them.
  const details = listTagDetails(name).catch(() => undefined);
  const [canDelete, usage, names] = await Promise.all([
    may('delete', { repository: name }),
    repositoryUsage(name).catch(() => undefined),
    listTagNames(name),
  ]);
  if (!current()) return;
  let rows: readonly TagRow[] = names;
  root.append(...repositoryHeader(name, names.length, usage));
  if (canDelete) root.append(deleteRepositoryButton(name));
  const byPush = h('option', { value: 'pushed', disabled: true }, 'Push time, newest first');
  const order = h('select', { id: 'tag-order' }, h('option', { value: 'version' }, 'Version, newest first'), byPush);
  const list = h('div', { id: 'tag-list' });
  root.append(h('h2', {}, 'Tags'), h('div', { class: 'toolbar' }, h('label', { for: 'tag-order' }, 'Sort tags by'), order), list);
  let page = 0;
  const show = (): void => {
    const sorted = sortTags(rows.filter((r) => !deleted.has(r.tag)), order.value === 'pushed' ? 'pushed' : 'version');
    const slice = sorted.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    const cards = h('ul', { class: 'tags', 'aria-label': 'Tags' }, ...slice.map((t) => tagCard(name, t, canDelete, current)));
    const hasNext = (page + 1) * PAGE_SIZE < sorted.length;
    replace(list, sorted.length === 0 ? h('p', { class: 'empty' }, 'This repository has no tags.') : cards,
      sorted.length > PAGE_SIZE ? pager({ page, hasNext, label: 'Tag pages', onPage: (p) => { page = p; show(); } }) : null);
  };
  order.addEventListener('change', () => {
    page = 0;
    show();
  });
  show();
  const detailed = await details;
  if (detailed === undefined || !current()) return;
  // Only tags still listed: one deleted meanwhile stays gone.
  const listed = new Set(rows.map((r) => r.tag));
  rows = detailed.filter((r) => listed.has(r.tag));
  byPush.disabled = false;
  list.dataset['detailed'] = 'true';
  show();
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

function sortTags(tags: readonly TagRow[], order: Order): TagRow[] {
  const byVersion = (a: TagRow, b: TagRow): number => compareVersionsDesc(a.tag, b.tag);
  if (order === 'version') return [...tags].sort(byVersion);
  return [...tags].sort((a, b) => (b.pushed ?? '').localeCompare(a.pushed ?? '') || byVersion(a, b));
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

/** A tag's card: filled in as its manifest, config and referrers arrive. */
function tagCard(name: string, t: TagRow, canDelete: boolean, current: () => boolean): HTMLLIElement {
  const details = h('div', { class: 'tag-details' }, h('p', { class: 'muted' }, 'Loading…'));
  const pull = `docker pull ${location.host}/${name}:${t.tag}`;
  const card = h('li', { class: 'tag', 'data-tag': t.tag },
    h('div', { class: 'tag-head' },
      h('h3', {}, manifestLink(name, t.tag)),
      canDelete ? h('button', { type: 'button', class: 'danger', onclick: () => void deleteTag(name, t.tag, card) }, 'Delete tag', h('span', { class: 'visually-hidden' }, ` ${t.tag}`)) : null),
    h('p', { class: 'pull' }, h('code', {}, pull), ' ', copyButton(pull, `the pull command for ${t.tag}`)),
    details);
  void fillTag(name, t, details, current);
  return card;
}

async function fillTag(name: string, t: TagRow, into: HTMLElement, current: () => boolean): Promise<void> {
  try {
    // A tag pushed again since the list was read still shows what it points at now: fetch by tag.
    const m = await manifestOf(name, t.tag);
    const config = isIndex(m) ? undefined : await fetchConfig(name, m.manifest);
    if (!current()) return;
    replace(into, facts([
      ['Digest', h('span', {}, h('code', { class: 'digest', title: m.digest }, shortDigest(m.digest)), ' ', copyButton(m.digest, `the digest of ${t.tag}`))],
      ['Size', isIndex(m) ? 'see platforms' : bytes(imageSize(m.manifest))],
      ['Created', when(config?.created)],
      ['Pushed', when(t.pushed)],
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
