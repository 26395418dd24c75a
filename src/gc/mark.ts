/**
 * Mark: the digests in use, repository by repository.
 *
 * Without `deleteUntagged` every manifest revision of every repository is in use (registry:2's
 * semantics). With it, only manifests reachable from a tag, plus the children of a kept index
 * (recursively) and the referrers of a kept manifest (manifests whose `subject` it is, recursively);
 * registry:2 v3 keeps index children too, 2.8 does not (its known bug). Revisions written less than the
 * grace period ago are kept as if tagged: a multi-platform push writes its children before the index.
 * For each kept manifest, its config and layers (foreign layers with `urls` excluded) and its index
 * children are marked.
 *
 * Failing closed: a manifest that cannot be read (blob missing, unparsable, too large) could refer to
 * any blob of its repository, so every blob that repository links in `_layers` is marked too, with a
 * warning. With `deleteUntagged`, a repository with an unreadable manifest or a tag whose `current` link
 * is missing, empty or invalid keeps every revision: what that tag named is unknown.
 *
 * While walking, the newest link time of each digest (any repository's `_layers` or revision link) is
 * noted, for the sweep's grace period.
 *
 * Each repository is read with one listing of its revisions and one of its layer links (Inventory.contents;
 * the link folders themselves are opened only for their times, online), which also yields the layer
 * links the repository's own manifests do not reference: the only ones that can name a blob the sweep
 * deletes (removeLayerLinks). Crash leftovers are not looked for here (leftovers.ts).
 */
import type { Digest } from '../storage/digest.js';
import type { Inventory, LinkEntry, ManifestReferences } from '../storage/maintenance/inventory.js';
import type { RepoName } from '../storage/reference.js';
import type { EmitEvent, Warnings } from './report.js';

export interface MarkOptions {
  readonly deleteUntagged: boolean;
  /** Revisions and links written after this (ms since the epoch) are young; undefined: nothing is. */
  readonly youngAfter: number | undefined;
  readonly emit: EmitEvent;
  readonly warnings: Warnings;
  readonly signal?: AbortSignal;
}

/** An untagged manifest revision that nothing kept reaches and that is old enough to remove. */
export interface UntaggedCandidate {
  readonly repo: RepoName;
  readonly digest: Digest;
  /** Candidates of the same repository that reach this one (an index listing it, its subject). */
  readonly parents: readonly Digest[];
}

export interface MarkState {
  readonly marked: Set<Digest>;
  /** Newest layer or revision link per digest (ms), over all repositories; only when `youngAfter` is set. */
  readonly linkTimes: Map<Digest, number>;
  /** In removal order: every candidate after its parents. */
  readonly untagged: UntaggedCandidate[];
  /** Every repository the mark went through, sorted. */
  readonly repositories: readonly RepoName[];
  /**
   * Layer links that no manifest of their own repository kept (the marked set grows; a link of a blob
   * marked later is dropped when used), in repository order: the only links a sweep can leave dangling.
   */
  readonly looseLayers: { readonly repo: RepoName; readonly digest: Digest }[];
}

/**
 * Repositories marked at once. Marking one is a chain of small reads, each waiting on the disk or the
 * network; several chains overlap those waits (registry:2's collector, with blocking reads, does not
 * need to).
 */
const MARK_AT_ONCE = 16;

/**
 * Marks from every repository, MARK_AT_ONCE at a time. What each one emits and warns is held until it
 * is done and passed on in repository order, so the events read as if they were marked one by one.
 * @throws only storage failures (unreadable content is a warning), the first in repository order
 */
export async function markAll(inv: Inventory, opts: MarkOptions): Promise<MarkState> {
  const repos: RepoName[] = [];
  for await (const repo of inv.repositories(signalOf(opts))) repos.push(repo);
  const state: MarkState = {
    marked: new Set(), linkTimes: new Map(), untagged: [], repositories: repos, looseLayers: [],
  };
  for (let from = 0; from < repos.length; from += MARK_AT_ONCE) {
    opts.signal?.throwIfAborted();
    const batch = repos.slice(from, from + MARK_AT_ONCE).map((repo) => {
      const held: (() => void)[] = [];
      const local: MarkOptions = {
        ...opts,
        emit: (e) => held.push(() => opts.emit(e)),
        warnings: { add: (m) => held.push(() => opts.warnings.add(m)), list: () => opts.warnings.list() },
      };
      return { held, marking: markRepository(inv, repo, local, state) };
    });
    const outcomes = await Promise.allSettled(batch.map((b) => b.marking));
    for (const [i, outcome] of outcomes.entries()) {
      for (const pass of batch[i]?.held ?? []) pass();
      if (outcome.status === 'rejected') throw outcome.reason;
      note(state, outcome.value);
      opts.emit({ type: 'progress', phase: 'mark', done: from + i + 1, total: repos.length });
    }
  }
  return state;
}

/**
 * Marks `d` (a manifest of `repo` kept after all) and everything it reaches: its blobs and, for an
 * index, its children recursively. An unreadable manifest marks every blob `repo` links.
 */
export async function markTree(inv: Inventory, repo: RepoName, d: Digest, opts: MarkOptions, state: MarkState): Promise<void> {
  const refs = await inv.references(d, signalOf(opts));
  if (!markManifest(repo, d, refs, opts, state)) {
    await markLayers(inv, repo, opts, state);
    return;
  }
  if (refs.ok) for (const child of refs.children) await markTree(inv, repo, child, opts, state);
}

/** What marking one repository found besides its marks, kept in MarkState in repository order. */
interface RepositoryFindings {
  readonly repo: RepoName;
  readonly looseLayers: readonly Digest[];
}

function note(state: MarkState, found: RepositoryFindings): void {
  const { repo } = found;
  for (const digest of found.looseLayers) if (!state.marked.has(digest)) state.looseLayers.push({ repo, digest });
}

async function markRepository(inv: Inventory, repo: RepoName, opts: MarkOptions, state: MarkState): Promise<RepositoryFindings> {
  opts.emit({ type: 'repository', repo });
  const contents = await inv.contents(repo, { ...signalOf(opts), times: opts.youngAfter !== undefined });
  const revisions = new Map<Digest, number>();
  for (const r of contents.revisions) {
    revisions.set(r.digest, Math.max(r.modTime, revisions.get(r.digest) ?? 0));
    noteLink(state, opts, r.digest, r.modTime);
  }
  for (const l of contents.layers) noteLink(state, opts, l.digest, l.modTime);
  const readable = opts.deleteUntagged
    ? await markReachable(inv, repo, revisions, opts, state)
    : await markRevisions(inv, repo, [...revisions.keys()], opts, state, new Map());
  if (!readable) markLinked(repo, contents.layers, opts, state);
  return {
    repo,
    looseLayers: contents.layers.filter((l) => !state.marked.has(l.digest)).map((l) => l.digest),
  };
}

/** Marks each revision and what it refers to; answers false when one could not be read. */
async function markRevisions(
  inv: Inventory,
  repo: RepoName,
  digests: readonly Digest[],
  opts: MarkOptions,
  state: MarkState,
  known: ReadonlyMap<Digest, ManifestReferences>,
): Promise<boolean> {
  let readable = true;
  for (const d of digests) {
    const refs = known.get(d) ?? (await inv.references(d, signalOf(opts)));
    if (!markManifest(repo, d, refs, opts, state)) readable = false;
  }
  return readable;
}

/** `deleteUntagged`: marks what tags reach; the rest become candidates. Answers false when one could not be read. */
async function markReachable(
  inv: Inventory,
  repo: RepoName,
  revisions: ReadonlyMap<Digest, number>,
  opts: MarkOptions,
  state: MarkState,
): Promise<boolean> {
  const { tagged, broken } = await readTags(inv, repo, revisions, opts);
  const refs = new Map<Digest, ManifestReferences>();
  for (const d of revisions.keys()) refs.set(d, await inv.references(d, signalOf(opts)));
  const unreadable = [...refs.values()].some((r) => !r.ok);
  if (broken || unreadable) {
    const why = unreadable ? 'a manifest cannot be read' : 'a tag cannot be read';
    opts.warnings.add(`${repo}: keeping every untagged manifest: ${why}`);
    return markRevisions(inv, repo, [...revisions.keys()], opts, state, refs);
  }
  const young = [...revisions].filter(([, t]) => opts.youngAfter !== undefined && t > opts.youngAfter).map(([d]) => d);
  const kept = reachable([...tagged, ...young], revisions, refs);
  const candidates: Digest[] = [];
  for (const d of revisions.keys()) {
    if (kept.has(d)) markManifest(repo, d, refs.get(d)!, opts, state);
    else candidates.push(d);
  }
  for (const c of orderCandidates(repo, candidates, refs)) {
    opts.emit({ type: 'manifest-eligible', repo, digest: c.digest });
    state.untagged.push(c);
  }
  return true;
}

/** Tagged revisions, and whether some tag could not be read (warned). */
async function readTags(
  inv: Inventory,
  repo: RepoName,
  revisions: ReadonlyMap<Digest, number>,
  opts: MarkOptions,
): Promise<{ tagged: Digest[]; broken: boolean }> {
  const tagged: Digest[] = [];
  let broken = false;
  for await (const t of inv.tags(repo, signalOf(opts))) {
    if ('problem' in t.target) {
      opts.warnings.add(`${repo}: tag ${t.tag} skipped: its current link is ${t.target.problem}`);
      broken = true;
    } else if (!revisions.has(t.target.digest)) {
      opts.warnings.add(`${repo}: tag ${t.tag} skipped: it names ${t.target.digest}, which is not a revision of the repository`);
    } else {
      tagged.push(t.target.digest);
    }
  }
  return { tagged, broken };
}

/** Revisions reached from `roots` through index children and referrers (all within the repository). */
function reachable(
  roots: readonly Digest[],
  revisions: ReadonlyMap<Digest, number>,
  refs: ReadonlyMap<Digest, ManifestReferences>,
): Set<Digest> {
  const referrers = new Map<Digest, Digest[]>();
  for (const [d, r] of refs) {
    if (r.ok && r.subject !== undefined) referrers.set(r.subject, [...(referrers.get(r.subject) ?? []), d]);
  }
  const kept = new Set<Digest>();
  const queue = [...roots];
  for (let d = queue.pop(); d !== undefined; d = queue.pop()) {
    if (kept.has(d) || !revisions.has(d)) continue;
    kept.add(d);
    const r = refs.get(d);
    if (r?.ok) queue.push(...r.children);
    queue.push(...(referrers.get(d) ?? []));
  }
  return kept;
}

/** The candidates with their candidate parents, each after its parents. */
function orderCandidates(
  repo: RepoName,
  candidates: readonly Digest[],
  refs: ReadonlyMap<Digest, ManifestReferences>,
): UntaggedCandidate[] {
  const parents = new Map<Digest, Digest[]>(candidates.map((c) => [c, []]));
  for (const c of candidates) {
    const r = refs.get(c);
    if (!r?.ok) continue;
    for (const child of r.children) if (child !== c) parents.get(child)?.push(c);
    if (r.subject !== undefined && r.subject !== c && parents.has(r.subject)) parents.get(c)?.push(r.subject);
  }
  const ordered: UntaggedCandidate[] = [];
  const visited = new Set<Digest>();
  const visit = (c: Digest): void => {
    if (visited.has(c)) return;
    visited.add(c);
    const ps = parents.get(c) ?? [];
    for (const p of ps) visit(p);
    ordered.push({ repo, digest: c, parents: ps });
  };
  for (const c of candidates) visit(c);
  return ordered;
}

/** Marks a manifest and what it refers to; answers false (with a warning) when it cannot be read. */
function markManifest(repo: RepoName, d: Digest, refs: ManifestReferences, opts: MarkOptions, state: MarkState): boolean {
  opts.emit({ type: 'marking-manifest', repo, digest: d });
  state.marked.add(d);
  if (!refs.ok) {
    opts.warnings.add(`${repo}: manifest ${d} cannot be read (${refs.problem}): keeping every blob the repository links`);
    return false;
  }
  for (const b of [...refs.blobs, ...refs.children]) {
    state.marked.add(b);
    opts.emit({ type: 'marking-blob', repo, digest: b });
  }
  return true;
}

/** Fail closed: marks every blob the repository links in `_layers`. */
async function markLayers(inv: Inventory, repo: RepoName, opts: MarkOptions, state: MarkState): Promise<void> {
  const layers: LinkEntry[] = [];
  for await (const l of inv.layers(repo, signalOf(opts))) layers.push(l);
  markLinked(repo, layers, opts, state);
}

function markLinked(repo: RepoName, layers: readonly LinkEntry[], opts: MarkOptions, state: MarkState): void {
  for (const l of layers) {
    state.marked.add(l.digest);
    opts.emit({ type: 'marking-blob', repo, digest: l.digest });
  }
}

function noteLink(state: MarkState, opts: MarkOptions, d: Digest, modTime: number): void {
  if (opts.youngAfter === undefined) return;
  const seen = state.linkTimes.get(d);
  if (seen === undefined || modTime > seen) state.linkTimes.set(d, modTime);
}

function signalOf(opts: MarkOptions): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}
