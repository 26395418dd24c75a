/** Pieces several pages share: errors, the external-token notice, pagers, referrer trees. */
import { ApiError, pathOf } from '../api.js';
import { authMode } from '../auth.js';
import { h } from '../dom.js';
import { hrefOf } from '../nav.js';
import { bytes, shortDigest } from '../format.js';
import { type Descriptor, fetchReferrers } from '../registry.js';

/** What went wrong, in words: 401/403 say whether signing in could help. */
export function errorBox(err: unknown): HTMLElement {
  let text = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError) {
    if (err.status === 401) text = `${err.message}. ${signInHint()}`;
    else if (err.status === 403) text = `Refused (${err.code}): ${err.message}`;
    else text = `${err.status} ${err.code}: ${err.message}`;
  }
  return h('p', { class: 'error', role: 'alert' }, text);
}

function signInHint(): string {
  const mode = authMode();
  if (mode.kind === 'external') return externalNotice();
  if (mode.kind === 'basic' || mode.kind === 'builtin') return 'Sign in as a user who may see it.';
  return '';
}

/** The notice for a registry whose tokens come from an external token server. */
export function externalNotice(): string {
  const mode = authMode();
  const realm = mode.kind === 'external' ? mode.realm : '';
  return `This registry takes its tokens from an external token server (${realm}). The web UI talks only to ` +
    'this server, so it cannot sign in there: browse with docker, skopeo or the API, with a token from that server.';
}

/** `n` rows per page: Previous / Next buttons and where we are (of how many pages, when known). */
export function pager(o: { page: number; pages?: number; hasNext: boolean; onPage: (page: number) => void; label: string }): HTMLElement {
  return h('nav', { class: 'pager', 'aria-label': o.label },
    h('button', { type: 'button', disabled: o.page === 0, onclick: () => o.onPage(o.page - 1) }, '← Previous'),
    h('span', { class: 'muted' }, `Page ${o.page + 1}${o.pages === undefined ? '' : ` of ${o.pages}`}`),
    h('button', { type: 'button', disabled: !o.hasNext, onclick: () => o.onPage(o.page + 1) }, 'Next →'));
}

/** A link to the manifest page of `name@reference`. */
export function manifestLink(name: string, reference: string, text: string = reference.includes(':') ? shortDigest(reference) : reference): HTMLAnchorElement {
  return h('a', { href: hrefOf(`m/${pathOf(name)}@${encodeURIComponent(reference)}`), class: reference.includes(':') ? 'digest' : '' }, text);
}

/**
 * The referrers of `digest` as a tree (signatures, SBOMs, attestations by artifact type), each with its
 * own referrers below it, `depth` levels down. Empty when there are none.
 */
export async function referrerTree(name: string, digest: string, depth = 3): Promise<HTMLElement | undefined> {
  const referrers = await fetchReferrers(name, digest);
  if (referrers.length === 0) return undefined;
  const list = h('ul', { class: 'referrers', 'aria-label': `Referrers of ${shortDigest(digest)}` });
  for (const r of referrers) {
    const item = h('li', { class: 'referrer' }, referrerLine(name, r));
    list.append(item);
    if (depth > 1) {
      const below = await referrerTree(name, r.digest, depth - 1);
      if (below !== undefined) item.append(below);
    }
  }
  return list;
}

function referrerLine(name: string, r: Descriptor): HTMLElement {
  const kind = r.artifactType ?? r.mediaType;
  const created = r.annotations?.['org.opencontainers.image.created'];
  return h('span', {},
    h('span', { class: 'badge' }, artifactLabel(kind)), ' ',
    h('code', { class: 'type' }, kind), ' ',
    manifestLink(name, r.digest), ' ',
    h('span', { class: 'muted' }, bytes(r.size), created === undefined ? '' : ` · ${created}`));
}

/** A word for an artifact type: signature, SBOM, attestation, or "artifact". */
function artifactLabel(type: string): string {
  if (/signature|cosign|notary|\.sig\b/i.test(type)) return 'signature';
  if (/spdx|cyclonedx|sbom|syft/i.test(type)) return 'SBOM';
  if (/in-toto|attestation|provenance|slsa|vex/i.test(type)) return 'attestation';
  return 'artifact';
}
