/**
 * A retention run (issue #16): for every repository a policy applies to, read its tags, revisions,
 * what each manifest reaches and their push and pull times; decide (policy.ts); then delete through
 * storage's own tag and manifest delete, so the index and the link files change as a client's DELETE
 * changes them, and report each deletion (registry:2 delete notifications, the log, the metrics).
 * The collector runs it before its mark, so the bytes go in the same collection.
 *
 * Racing clients. Decisions are made from a read of the repository; before each deletion what it
 * rests on is read again. A tag is deleted only while its link still names the manifest decided on,
 * read and deleted in the tag's lane (tag-lanes.ts, shared by replicas through Redis), so a push of
 * that tag comes wholly before or after, and one that moved it is never lost. A manifest is deleted
 * only while no tag points to it (the tags are read once more after the repository's tag deletions)
 * and it was not pushed again since the run began; a push by tag landing between that re-read and the
 * delete (the time its repository's manifest deletions take) can still find its manifest gone. Nothing a kept tag pointed to when the run read it is ever deleted.
 *
 * Failure. Each deletion is one storage operation that leaves the layout consistent (a tag's folder;
 * a revision with the tags naming it); parents go before what they reach, so no kept index or
 * referrer is left naming a deleted manifest. A run that fails stops there, and what it did not reach
 * stays.
 */
import { isRegistryError } from '../../errors.js';
import type { Digest } from '../../storage/digest.js';
import { parseTag } from '../../storage/reference.js';
import type { Maintenance, Registry } from '../../storage/registry.js';
import type { RepoName } from '../../storage/reference.js';
import { type Deletion, type RepositoryState, type RetentionPolicy, type RevisionState, decide, policyFor } from './policy.js';

export type { Deletion } from './policy.js';

export interface RetentionOptions {
  readonly policies: readonly RetentionPolicy[];
  /** Untagged manifests and orphaned referrers pushed more recently than this are kept. */
  readonly delayMs: number;
  readonly dryRun: boolean;
  /** The immutable-tag rule covering a tag, if any (such tags are kept). */
  readonly immutable?: ((repo: string, tag: string) => string | undefined) | undefined;
  /** What deletions go through: a registry with deletes enabled (storage's own tag and manifest delete). */
  readonly registry: Pick<Registry, 'repository'>;
  /** Told each deletion once done (registry:2 delete notifications). */
  readonly onDeleted?: ((d: Deletion) => Promise<void>) | undefined;
}

/** What a run did (or, dry, would do). */
export interface RetentionReport {
  readonly tagsDeleted: number;
  readonly manifestsDeleted: number;
  /** Every decision, in the order carried out (at most MAX_LISTED; the counts are complete). */
  readonly deletions: readonly Deletion[];
  /** Decisions not carried out because the repository changed since it was read. */
  readonly skipped: number;
}

/** The most decisions a report lists. */
export const MAX_LISTED = 10_000;

export interface RetentionRunContext {
  readonly now: number;
  readonly signal?: AbortSignal | undefined;
  readonly warn: (message: string) => void;
  readonly log?: ((d: Deletion, dryRun: boolean) => void) | undefined;
}

/** Applies the policies to every repository. @throws storage failures (what was done stays done) */
export async function applyRetention(maint: Maintenance, o: RetentionOptions, run: RetentionRunContext): Promise<RetentionReport> {
  const deletions: Deletion[] = [];
  const report = { tagsDeleted: 0, manifestsDeleted: 0, deletions, skipped: 0 };
  const call = run.signal ? { signal: run.signal } : {};
  for await (const repo of maint.inventory.repositories(call)) {
    run.signal?.throwIfAborted();
    const policy = policyFor(o.policies, repo);
    if (!policy) continue;
    const state = await readRepository(maint, repo, run.signal);
    const decided = decide(repo, state, policy, { now: run.now, delayMs: o.delayMs, immutable: o.immutable });
    let tagged: ReadonlySet<Digest> | undefined;
    for (const d of decided) {
      run.signal?.throwIfAborted();
      // Manifests come after every tag: one fresh read of what the tags point to now serves them all.
      if (d.kind === 'manifest' && !o.dryRun) tagged ??= await taggedNow(maint, repo, run.signal);
      const done = o.dryRun || (await carryOut(maint, o, { repo, tagged }, d, run));
      if (!done) {
        report.skipped += 1;
        continue;
      }
      if (d.kind === 'tag') report.tagsDeleted += 1;
      else report.manifestsDeleted += 1;
      if (report.deletions.length < MAX_LISTED) report.deletions.push(d);
      run.log?.(d, o.dryRun);
      if (!o.dryRun) await o.onDeleted?.(d);
    }
  }
  return report;
}

/** Tags, revisions, references and times of one repository. */
async function readRepository(maint: Maintenance, repo: RepoName, signal?: AbortSignal): Promise<RepositoryState> {
  const call = signal ? { signal } : {};
  const tags = new Map<string, Digest>();
  for await (const t of maint.inventory.tags(repo, call)) {
    if (!('digest' in t.target)) continue;
    tags.set(t.tag, t.target.digest);
  }
  const recorded = await maint.times.recorded(repo);
  const revisions = new Map<Digest, RevisionState>();
  for await (const link of maint.inventory.revisions(repo, call)) {
    const refs = await maint.inventory.references(link.digest, call);
    const times = recorded.get(link.digest);
    revisions.set(link.digest, {
      // A revision without a recorded push: its link's modification time stands in (manifest-times.ts).
      pushedAt: times?.pushedAt ?? link.modTime,
      pulledAt: times?.pulledAt,
      children: refs.ok ? refs.children : [],
      subject: refs.ok ? refs.subject : undefined,
      readable: refs.ok,
    });
  }
  return { tags, revisions };
}

/** The manifests the repository's tags point to now. */
async function taggedNow(maint: Maintenance, repo: RepoName, signal?: AbortSignal): Promise<Set<Digest>> {
  const out = new Set<Digest>();
  for await (const t of maint.inventory.tags(repo, signal ? { signal } : {})) if ('digest' in t.target) out.add(t.target.digest);
  return out;
}

/** Where a deletion happens, with what was read fresh for it. */
interface Place {
  readonly repo: RepoName;
  readonly tagged: ReadonlySet<Digest> | undefined;
}

/** Deletes one decided item if what the decision rests on still holds; answers whether it did. */
async function carryOut(maint: Maintenance, o: RetentionOptions, at: Place, d: Deletion, run: RetentionRunContext): Promise<boolean> {
  const call = run.signal ? { signal: run.signal } : {};
  const { repo } = at;
  const manifests = o.registry.repository(repo).manifests;
  try {
    if (d.kind === 'tag') {
      const tag = parseTag(d.tag ?? '');
      if (tag === undefined || !(await manifests.deleteTagIf(tag, d.digest, call))) return skipped(run, d, 'the tag moved since it was read');
      return true;
    }
    if (at.tagged?.has(d.digest) === true) return skipped(run, d, 'a tag points to it now');
    const pushedAt = (await maint.times.timesOf(repo, d.digest, call)).pushedAt;
    if (pushedAt !== undefined && pushedAt > run.now) return skipped(run, d, 'pushed again since the run began');
    await manifests.delete({ digest: d.digest }, call);
    return true;
  } catch (err) {
    // Gone already (a client deleted it), or refused (an immutable tag now covers it): not ours to force.
    if (isRegistryError(err, 'MANIFEST_UNKNOWN') || isRegistryError(err, 'DENIED')) return skipped(run, d, err.message);
    throw err;
  }
}

function skipped(run: RetentionRunContext, d: Deletion, why: string): false {
  run.warn(`retention: kept ${d.repository}${d.tag !== undefined ? `:${d.tag}` : `@${d.digest}`}: ${why}`);
  return false;
}

/** The decisions as a table for people: repository, what, digest, reason. */
export function retentionTable(deletions: readonly Deletion[], dryRun: boolean): string {
  const rows = deletions.map((d) => [d.repository, d.kind === 'tag' ? `tag ${d.tag ?? ''}` : 'manifest', d.digest, d.reason]);
  const head = [dryRun ? 'WOULD DELETE FROM' : 'DELETED FROM', 'WHAT', 'DIGEST', 'WHY'];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}
