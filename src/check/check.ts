/**
 * The integrity check (`berth check [--repair]`): every blob's digest (streamed), every link's target,
 * every manifest's references, every tag.
 *
 * Problems found:
 *   corrupt-blob            blob data that does not hash to its digest (corrupt or truncated)
 *   dangling-layer-link     a `_layers` link whose blob is missing
 *   dangling-revision-link  a revision link whose manifest blob is missing
 *   broken-link             a layer or revision link that is empty, not a digest, or names another digest
 *   unreadable-manifest     a revision whose manifest does not parse (or is too large)
 *   missing-reference       a manifest naming a blob that is missing or not linked in its repository
 *                           (not in a repository fetched on demand, a mirror's: `onDemand`),
 *                           or an index child that is not a revision of it
 *   broken-tag              a tag whose `current` link is empty or not a digest
 *   unfinished-tag          a tag folder with no `current` link (a tag write cut short by a crash)
 *   dangling-tag            a tag naming a manifest that is not a revision of the repository
 *   leftover-file           a temporary file of a write cut short by a crash (the storage driver's own,
 *                           which no listing shows); without --repair, only those older than a minute,
 *                           as a younger one may be a server's write in progress
 * and, apart from problems, orphaned blobs: blobs no repository links, which garbage-collect removes.
 *
 * `repair` does only what is safe: it removes dangling `_layers` links (their blob is gone), removes
 * broken, unfinished and dangling tags (they resolve to nothing) and leftover files (never published),
 * and moves corrupt blob data out of the registry
 * tree to Berth's quarantine (`<root>/berth/quarantine/…`), so clients re-push it instead of pulling bad
 * bytes. It never deletes content that verifies, and never touches manifests.
 */
import type { Digest } from '../storage/digest.js';
import type { Inventory, LinkEntry, LinkTarget } from '../storage/maintenance/inventory.js';
import type { RepoName } from '../storage/reference.js';

export type CheckProblemKind =
  | 'corrupt-blob'
  | 'dangling-layer-link'
  | 'dangling-revision-link'
  | 'broken-link'
  | 'unreadable-manifest'
  | 'missing-reference'
  | 'broken-tag'
  | 'unfinished-tag'
  | 'dangling-tag'
  | 'leftover-file';

export interface CheckProblem {
  readonly kind: CheckProblemKind;
  /** What is wrong, naming the blob, link or tag. */
  readonly message: string;
  /** What `repair` did about it, when it did something. */
  readonly repaired?: string;
}

export interface CheckOptions {
  readonly repair: boolean;
  readonly onProblem: (p: CheckProblem) => void;
  readonly onOrphan: (d: Digest, size: number) => void;
  readonly onProgress?: (phase: 'blobs' | 'repositories', done: number, total: number | undefined) => void;
  readonly signal?: AbortSignal;
  /**
   * True for a repository whose content is fetched on demand (a mirror's): a blob or child manifest its
   * manifests name that was never pulled is missing there by design, reported to `onInfo`, not a problem.
   */
  readonly onDemand?: (repo: RepoName) => boolean;
  /** Told what is not a problem but worth a line (a mirror's content not pulled yet). */
  readonly onInfo?: (message: string) => void;
  /** The clock (ms since the epoch), for the age of leftover files. Default Date.now. */
  readonly now?: () => number;
}

/** Without repair, leftover files younger than this may be writes in progress, and are not reported. */
export const LEFTOVER_MIN_AGE_MS = 60_000;

export interface CheckReport {
  readonly blobs: number;
  readonly repositories: number;
  readonly problems: number;
  readonly repaired: number;
  readonly orphans: number;
}

type Report = (p: CheckProblem) => void;

interface RepoCheck {
  readonly opts: CheckOptions;
  /** Blobs whose data exists (corrupt ones included unless moved aside), with their sizes. */
  readonly present: ReadonlyMap<Digest, number>;
  /** Every digest some repository links (layer or revision), filled as repositories are checked. */
  readonly linked: Set<Digest>;
  readonly report: Report;
}

/** Checks the whole tree. @throws only storage failures */
export async function checkStorage(inv: Inventory, opts: CheckOptions): Promise<CheckReport> {
  let problems = 0;
  let repaired = 0;
  const report: Report = (p) => {
    problems += 1;
    if (p.repaired !== undefined) repaired += 1;
    opts.onProblem(p);
  };
  const { present, checked } = await verifyBlobs(inv, opts, report);
  await checkLeftovers(inv, opts, report);
  const repos: RepoName[] = [];
  for await (const repo of inv.repositories(signalOf(opts))) repos.push(repo);
  const linked = new Set<Digest>();
  for (const [i, repo] of repos.entries()) {
    opts.signal?.throwIfAborted();
    await checkRepository(inv, repo, { opts, present, linked, report });
    opts.onProgress?.('repositories', i + 1, repos.length);
  }
  let orphans = 0;
  for (const [d, size] of present) {
    if (linked.has(d)) continue;
    orphans += 1;
    opts.onOrphan(d, size);
  }
  return { blobs: checked, repositories: repos.length, problems, repaired, orphans };
}

/** Hashes every blob; answers those whose data is still there, with their sizes. */
async function verifyBlobs(
  inv: Inventory,
  opts: CheckOptions,
  report: Report,
): Promise<{ present: Map<Digest, number>; checked: number }> {
  const present = new Map<Digest, number>();
  let checked = 0;
  for await (const b of inv.blobs(signalOf(opts))) {
    checked += 1;
    opts.onProgress?.('blobs', checked, undefined);
    const v = await inv.verifyBlob(b.digest, signalOf(opts));
    if (v.ok) {
      present.set(b.digest, v.size);
      continue;
    }
    if (v.problem === 'missing') continue; // removed while the check ran
    const message = `${b.digest}: its data hashes to ${v.actual} (${v.size} bytes)`;
    if (!opts.repair) {
      present.set(b.digest, v.size);
      report({ kind: 'corrupt-blob', message });
      continue;
    }
    const to = await inv.quarantineBlob(b.digest, signalOf(opts));
    report({ kind: 'corrupt-blob', message, repaired: `moved to ${to}` });
  }
  return { present, checked };
}

async function checkLeftovers(inv: Inventory, opts: CheckOptions, report: Report): Promise<void> {
  const youngAfter = (opts.now ?? Date.now)() - LEFTOVER_MIN_AGE_MS;
  for await (const f of inv.leftovers(signalOf(opts))) {
    if (!opts.repair && f.modTime > youngAfter) continue;
    const message = `${f.path}: a temporary file of a write cut short (last written ${new Date(f.modTime).toISOString()})`;
    if (!opts.repair) {
      report({ kind: 'leftover-file', message });
      continue;
    }
    await inv.deleteLeftover(f.path, signalOf(opts));
    report({ kind: 'leftover-file', message, repaired: 'removed' });
  }
}

async function checkRepository(inv: Inventory, repo: RepoName, c: RepoCheck): Promise<void> {
  const layers = new Set<Digest>();
  for await (const l of inv.layers(repo, signalOf(c.opts))) {
    layers.add(l.digest);
    c.linked.add(l.digest);
    await checkLayerLink(inv, repo, l, c);
  }
  const revisions = new Set<Digest>();
  for await (const r of inv.revisions(repo, signalOf(c.opts))) {
    revisions.add(r.digest);
    c.linked.add(r.digest);
    checkTarget(`${repo}: revision link ${r.path}`, await inv.linkTarget(r, signalOf(c.opts)), r, c.report);
  }
  for (const d of revisions) await checkManifest(inv, repo, d, { layers, revisions }, c);
  await checkTags(inv, repo, revisions, c);
}

async function checkLayerLink(inv: Inventory, repo: RepoName, l: LinkEntry, c: RepoCheck): Promise<void> {
  checkTarget(`${repo}: layer link ${l.path}`, await inv.linkTarget(l, signalOf(c.opts)), l, c.report);
  if (c.present.has(l.digest)) return;
  const message = `${repo}: links blob ${l.digest}, which is missing`;
  if (!c.opts.repair) {
    c.report({ kind: 'dangling-layer-link', message });
    return;
  }
  await inv.deleteLayerLink(repo, l.digest, signalOf(c.opts));
  c.report({ kind: 'dangling-layer-link', message, repaired: 'link removed' });
}

/** A link must hold exactly the digest its directory names. */
function checkTarget(what: string, target: LinkTarget, entry: LinkEntry, report: Report): void {
  if ('problem' in target) report({ kind: 'broken-link', message: `${what} is ${target.problem}` });
  else if (target.digest !== entry.digest) report({ kind: 'broken-link', message: `${what} holds ${target.digest}` });
}

async function checkManifest(
  inv: Inventory,
  repo: RepoName,
  d: Digest,
  has: { layers: ReadonlySet<Digest>; revisions: ReadonlySet<Digest> },
  c: RepoCheck,
): Promise<void> {
  if (!c.present.has(d)) {
    c.report({ kind: 'dangling-revision-link', message: `${repo}: revision ${d} has no manifest blob` });
    return;
  }
  const refs = await inv.references(d, signalOf(c.opts));
  if (!refs.ok) {
    c.report({ kind: 'unreadable-manifest', message: `${repo}@${d}: ${refs.problem}` });
    return;
  }
  const missing = (message: string): void => {
    if (c.opts.onDemand?.(repo) === true) c.opts.onInfo?.(`${message} (not pulled yet: a mirror fetches it on demand)`);
    else c.report({ kind: 'missing-reference', message });
  };
  for (const b of refs.blobs) {
    const why = !c.present.has(b) ? 'which is missing' : !has.layers.has(b) && !has.revisions.has(b) ? 'which the repository does not link' : undefined;
    if (why !== undefined) missing(`${repo}@${d}: refers to blob ${b}, ${why}`);
  }
  for (const child of refs.children) {
    if (!has.revisions.has(child)) missing(`${repo}@${d}: lists manifest ${child}, which is not a revision of the repository`);
  }
}

async function checkTags(inv: Inventory, repo: RepoName, revisions: ReadonlySet<Digest>, c: RepoCheck): Promise<void> {
  for await (const t of inv.tags(repo, signalOf(c.opts))) {
    let problem: CheckProblem | undefined;
    if ('problem' in t.target && t.target.problem === 'missing') {
      problem = { kind: 'unfinished-tag', message: `${repo}:${t.tag}: has no current link (a tag write cut short); it names nothing` };
    } else if ('problem' in t.target) problem = { kind: 'broken-tag', message: `${repo}:${t.tag}: its current link is ${t.target.problem}` };
    else if (!revisions.has(t.target.digest)) {
      problem = { kind: 'dangling-tag', message: `${repo}:${t.tag}: names ${t.target.digest}, which is not a revision of the repository` };
    }
    if (problem === undefined) continue;
    if (c.opts.repair) {
      await inv.deleteTag(repo, t.tag, signalOf(c.opts));
      problem = { ...problem, repaired: 'tag removed' };
    }
    c.report(problem);
  }
}

function signalOf(opts: CheckOptions): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}
