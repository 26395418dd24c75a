/**
 * One manifest: its facts, the platforms of an index, or the layers of an image with its config's
 * history (the Dockerfile steps), labels and annotations; its subject and referrers; the raw JSON.
 * Deleting it (by digest) removes every tag that points at it, and the page says so first.
 */
import { pathOf, send } from '../api.js';
import { may } from '../auth.js';
import { announce, confirmAction, copyButton, facts, h, table } from '../dom.js';
import { bytes, platformName, shortDigest, when } from '../format.js';
import { type FetchedManifest, type ImageConfig, clearCache, fetchConfig, fetchManifest, imageSize, isIndex } from '../registry.js';
import { hrefOf, navigate } from '../nav.js';
import { errorBox, manifestLink, referrerTree } from './common.js';

/** Renders the page of `name@reference` (a tag or a digest). */
export async function manifestPage(root: HTMLElement, name: string, reference: string, current: () => boolean): Promise<void> {
  clearCache();
  const [m, canDelete] = await Promise.all([fetchManifest(name, reference), may('delete', { repository: name })]);
  const config = isIndex(m) ? undefined : await fetchConfig(name, m.manifest);
  if (!current()) return;
  root.append(
    h('p', { class: 'crumbs' }, h('a', { href: hrefOf(`r/${pathOf(name)}`) }, name)),
    h('h1', {}, h('span', { class: 'muted' }, 'Manifest '), reference.includes(':') ? shortDigest(reference) : reference),
    facts([
      ['Digest', h('span', {}, h('code', { class: 'digest' }, m.digest), ' ', copyButton(m.digest, 'the digest'))],
      ['Media type', h('code', {}, m.mediaType)],
      ['Artifact type', m.manifest.artifactType ?? '—'],
      ['Size', isIndex(m) ? '—' : bytes(imageSize(m.manifest))],
      ['Created', when(config?.created)],
      ['Platform', config?.os === undefined ? '—' : platformName(config)],
      ['Subject', m.manifest.subject === undefined ? '—' : manifestLink(name, m.manifest.subject.digest)],
    ]),
  );
  if (isIndex(m)) root.append(children(name, m));
  else root.append(layers(m));
  if (config !== undefined) root.append(...configParts(config));
  root.append(h('h2', {}, 'Annotations'), keyValues(m.manifest.annotations, 'No annotations.'));
  const tree = await referrerTree(name, m.digest).catch((err: unknown) => errorBox(err));
  root.append(h('h2', {}, 'Referrers'), tree ?? h('p', { class: 'muted' }, 'Nothing refers to this manifest.'));
  root.append(h('details', { class: 'raw' }, h('summary', {}, 'Raw manifest'), h('pre', { tabindex: '0' }, pretty(m.raw))));
  if (canDelete) root.append(deleteButton(name, m));
}

function children(name: string, m: FetchedManifest): HTMLElement {
  const rows = (m.manifest.manifests ?? []).map((c) => h('tr', {},
    h('td', {}, platformName(c.platform)),
    h('td', {}, manifestLink(name, c.digest)),
    h('td', {}, h('code', {}, c.mediaType)),
    h('td', { class: 'num' }, bytes(c.size))));
  return h('section', {}, h('h2', {}, 'Platforms'), table('Platforms of this index', ['Platform', 'Digest', 'Media type', 'Manifest size'], rows));
}

function layers(m: FetchedManifest): HTMLElement {
  const rows = (m.manifest.layers ?? []).map((l, i) => h('tr', {},
    h('td', { class: 'num' }, i + 1),
    h('td', {}, h('code', { class: 'digest', title: l.digest }, shortDigest(l.digest))),
    h('td', {}, h('code', {}, l.mediaType)),
    h('td', { class: 'num' }, bytes(l.size))));
  return h('section', {}, h('h2', {}, 'Layers'), rows.length === 0 ? h('p', { class: 'muted' }, 'No layers.') : table('Layers', ['#', 'Digest', 'Media type', 'Size'], rows));
}

function configParts(config: ImageConfig): HTMLElement[] {
  const steps = (config.history ?? []).map((s) => h('tr', {},
    h('td', {}, when(s.created)),
    h('td', {}, h('code', { class: 'step' }, (s.created_by ?? s.comment ?? '').replace(/^\/bin\/sh -c #\(nop\)\s*/, ''))),
    h('td', {}, s.empty_layer === true ? 'no' : 'yes')));
  return [
    h('h2', {}, 'History'),
    steps.length === 0 ? h('p', { class: 'muted' }, 'The config records no history.') : table('Build history', ['Created', 'Step', 'Layer'], steps, 'history'),
    h('h2', {}, 'Labels'),
    keyValues(config.config?.Labels ?? undefined, 'No labels.'),
  ];
}

function keyValues(map: Readonly<Record<string, string>> | undefined, none: string): HTMLElement {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return h('p', { class: 'muted' }, none);
  return facts(entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, h('span', { class: 'value' }, v)]));
}

function pretty(raw: string): string {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    return raw;
  }
}

function deleteButton(name: string, m: FetchedManifest): HTMLElement {
  const box = h('div', { class: 'danger-zone' });
  box.append(h('button', {
    type: 'button', class: 'danger', onclick: () => {
      if (!confirmAction(`Delete the manifest ${shortDigest(m.digest)} from ${name}?\n\nEvery tag pointing at it goes too.`)) return;
      send(`v2/${pathOf(name)}/manifests/${m.digest}`, 'DELETE').then(() => {
        announce(`Deleted manifest ${shortDigest(m.digest)}`);
        navigate(`r/${pathOf(name)}`);
      }, (err: unknown) => box.append(errorBox(err)));
    },
  }, 'Delete manifest'));
  return box;
}
