/**
 * One repository: its usage, its tags (by version or by push time, 20 a page), each with digest,
 * compressed size, created time (from the image config), push time, platforms of an index, referrers
 * as a tree under their subject, and a `docker pull` line to copy. Deleting a tag removes that tag
 * only (`DELETE /v2/<name>/manifests/<tag>`); deleting the repository uses the management API.
 *
 * The server sorts and pages the tags (`/berth/v1/repositories/<name>/tags?sort=version&n=20`): the
 * first screen of a 10,000-tag repository is one request giving the 20 tags on it with their digests
 * and push times, and the tag count. The cards show those at once, then fill in (manifest, config,
 * referrers) in order, a few at a time.
 */
import { pathOf, send } from '../api.js';
import { may } from '../auth.js';
import { announce, confirmAction, copyButton, facts, h, replace } from '../dom.js';
import { bytes, platformName, shortDigest, when } from '../format.js';
import {
  type FetchedManifest, type TagOrder, type TagPage, type TagRow, clearCache, fetchConfig, fetchManifest, imageSize, isIndex, repositoryUsage, repositoryUsagePath,
  tagPage, tagPagePath,
} from '../registry.js';
import { navigate } from '../nav.js';
import { errorBox, manifestLink, pager, referrerTree } from './common.js';

const PAGE_SIZE = 20;

/** How many cards of a page fill at once (each asks its manifest, config and referrers in turn). */
const FILLING = 4;

/** The page's first requests (what main.ts may send before the auth mode is known). */
export function repositoryFirstRequests(name: string): string[] {
  return [tagPagePath(name, 'version', PAGE_SIZE), repositoryUsagePath(name)];
}

/** Renders the page of repository `name`. */
export async function repositoryPage(root: HTMLElement, name: string, current: () => boolean): Promise<void> {
  manifests.clear();
  deleted.clear();
  clearCache();
  // The usage figures are not waited for: they fill the header when they come.
  const usage = repositoryUsage(name).catch(() => undefined);
  // Whether delete buttons show is not waited for (with tokens it is a request to the issuer): the tags
  // show as soon as they are in, and the buttons join them when the answer comes.
  const canDelete = may('delete', { repository: name });
  const first = await tagPage(name, 'version', PAGE_SIZE);
  if (!current()) return;
  const figures = h('div', { class: 'repo-figures' }, usageFacts(first.total, 'pending'));
  root.append(...repositoryHeader(name), figures);
  void usage.then((u) => replace(figures, usageFacts(first.total, u)));
  const dangerZone = h('div');
  root.append(dangerZone);
  void canDelete.then((ok) => {
    if (ok && current()) dangerZone.replaceWith(deleteRepositoryButton(name));
  });
  const order = h('select', { id: 'tag-order' }, h('option', { value: 'version' }, 'Version, newest first'), h('option', { value: 'pushed' }, 'Push time, newest first'));
  const list = h('div', { id: 'tag-list' });
  root.append(h('h2', {}, 'Tags'), h('div', { class: 'toolbar' }, h('label', { for: 'tag-order' }, 'Sort tags by'), order), list);
  // `starts[i]` is the query of page i (undefined: the first page); pages are asked as the user turns them.
  let starts: (string | undefined)[] = [undefined];
  let page = 0;
  let asked = 0;
  const show = async (got: TagPage): Promise<void> => {
    starts[page + 1] = got.next;
    const cards = got.tags.filter((t) => !deleted.has(t.tag)).map((t) => tagCard(name, t, { canDelete, current }));
    const pages = Math.max(1, Math.ceil(got.total / PAGE_SIZE));
    list.dataset['order'] = order.value;
    replace(list, cards.length === 0 ? h('p', { class: 'empty' }, got.total === 0 ? 'This repository has no tags.' : 'No tags on this page.') : h('ul', { class: 'tags', 'aria-label': 'Tags' }, ...cards.map((c) => c.card)),
      got.total > PAGE_SIZE || page > 0 ? pager({ page, pages, hasNext: got.next !== undefined, label: 'Tag pages', onPage: (p) => { page = p; void turn(); } }) : null);
    await inOrder(cards.map((c) => c.fill), FILLING);
  };
  /** Asks the current page in the current order and shows it (unless the user has moved on meanwhile). */
  const turn = async (): Promise<void> => {
    const mine = ++asked;
    try {
      const got = await tagPage(name, order.value as TagOrder, PAGE_SIZE, starts[page]);
      if (mine === asked && current()) await show(got);
    } catch (err) {
      if (mine === asked && current()) replace(list, errorBox(err));
    }
  };
  order.addEventListener('change', () => {
    starts = [undefined];
    page = 0;
    void turn();
  });
  await show(first);
}

/** Runs `jobs` in their order, `parallel` at a time (none of them rejects). */
async function inOrder(jobs: readonly (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) await job();
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
}

/** Title and pull line. */
function repositoryHeader(name: string): HTMLElement[] {
  const pull = `docker pull ${location.host}/${name}`;
  return [
    h('h1', {}, h('span', { class: 'muted' }, 'Repository '), name),
    h('p', { class: 'pull' }, h('code', {}, pull), ' ', copyButton(pull, 'the pull command')),
  ];
}

/**
 * The usage figures: placeholders while they are on their way (`pending`), or the tag count alone
 * when the usage API cannot answer.
 */
function usageFacts(tagCount: number, usage: Awaited<ReturnType<typeof repositoryUsage>> | 'pending'): HTMLElement {
  if (usage === undefined) return h('p', { class: 'muted' }, `${tagCount} tag${tagCount === 1 ? '' : 's'}.`);
  const u = usage === 'pending' ? undefined : usage;
  const or = (v: string | undefined): string => (usage === 'pending' ? '…' : v ?? '—');
  return facts([
    ['Tags', String(u?.tags ?? tagCount)],
    ['Manifests', or(u?.manifests === undefined ? undefined : String(u.manifests))],
    ['Size', or(u && bytes(u.logicalBytes))],
    ['Only here', or(u && bytes(u.exclusiveBytes))],
    ['Shared with others', or(u && bytes(u.sharedBytes))],
    ['Last push', or(u && when(u.lastPush))],
    ['Last pull', or(u && when(u.lastPull))],
  ]);
}

/** Tags deleted on this page view (a page asked again must not bring them back before the server has them gone). */
const deleted = new Set<string>();

/** Manifests fetched for this page view, by tag (a re-render fetches nothing again). */
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
  /** Whether the caller may delete (the tag's button appears once this says yes). */
  readonly canDelete: Promise<boolean>;
  readonly current: () => boolean;
}

/**
 * A tag's card, showing at once what the tag page gave (digest, push time), and `fill`, which fills in
 * the rest as its manifest, config and referrers arrive (never rejects). The card is marked
 * `data-filled` once its facts are complete.
 */
function tagCard(name: string, t: TagRow, o: CardOptions): { card: HTMLLIElement; fill: () => Promise<void> } {
  const details = h('div', { class: 'tag-details' }, tagFacts(t, undefined));
  const pull = `docker pull ${location.host}/${name}:${t.tag}`;
  const head = h('div', { class: 'tag-head' }, h('h3', {}, manifestLink(name, t.tag)));
  const card = h('li', { class: 'tag', 'data-tag': t.tag },
    head,
    h('p', { class: 'pull' }, h('code', {}, pull), ' ', copyButton(pull, `the pull command for ${t.tag}`)),
    details);
  void o.canDelete.then((ok) => {
    if (ok) head.append(h('button', { type: 'button', class: 'danger', onclick: () => void deleteTag(name, t.tag, card) }, 'Delete tag', h('span', { class: 'visually-hidden' }, ` ${t.tag}`)));
  });
  // A card no longer on screen (another page, order or re-render) asks nothing.
  const fill = async (): Promise<void> => {
    if (!card.isConnected) return;
    await fillTag(name, t, details, o);
    card.dataset['filled'] = 'true';
  };
  return { card, fill };
}

/** What a card knows of its manifest once read (its config too, for an image). */
interface Read {
  readonly m: FetchedManifest;
  readonly config: Awaited<ReturnType<typeof fetchConfig>>;
}

/** A card's facts: from the tag page alone (`read` undefined: the rest still loading), or complete. */
function tagFacts(t: TagRow, read: Read | undefined): HTMLElement {
  const loading = h('span', { class: 'muted' }, '…');
  const digest = read?.m.digest ?? t.digest ?? undefined;
  const m = read?.m;
  return facts([
    ['Digest', digest === undefined ? loading : h('span', {}, h('code', { class: 'digest', title: digest }, shortDigest(digest)), ' ', copyButton(digest, `the digest of ${t.tag}`))],
    ['Size', m === undefined ? loading.cloneNode(true) : isIndex(m) ? 'see platforms' : bytes(imageSize(m.manifest))],
    ['Created', m === undefined ? loading.cloneNode(true) : when(read?.config?.created)],
    ['Pushed', when(t.pushed)],
    ['Type', m === undefined ? loading.cloneNode(true) : isIndex(m) ? 'index (multi-platform)' : m.manifest.artifactType ?? (read?.config?.os !== undefined ? platformName(read.config) : 'image')],
  ]);
}

async function fillTag(name: string, t: TagRow, into: HTMLElement, { current }: CardOptions): Promise<void> {
  try {
    // A tag pushed again since the page was read still shows what it points at now: fetch by tag.
    const m = await manifestOf(name, t.tag);
    const config = isIndex(m) ? undefined : await fetchConfig(name, m.manifest);
    if (!current()) return;
    replace(into, tagFacts(t, { m, config }));
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
        navigate('');
      }, (err: unknown) => box.append(errorBox(err)));
    },
  }, 'Delete repository'));
  return box;
}
