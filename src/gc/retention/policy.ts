/**
 * Retention decisions for one repository (issue #16), as a pure function of its tags, its revisions
 * and their push and pull times: which tags and which manifests go, and why. retention.ts gathers the
 * input from storage and carries the decisions out.
 *
 * Semantics (zot's where zot has them; the README's "Retention and immutable tags" says the same):
 * - The first policy whose `repositories` globs match the repository applies; none: nothing goes.
 * - `keeptags` empty or absent: every tag is kept. Otherwise a tag is kept when ANY rule keeps it. A
 *   rule keeps a tag that matches one of its `patterns` (regular expressions, unanchored; none given:
 *   every tag) AND meets EVERY condition the rule gives: among the `mostrecentlypushed` most recently
 *   pushed (or `mostrecentlypulled` most recently pulled) tags that match its patterns, pushed within
 *   `pushedwithin`, pulled within `pulledwithin`. (zot ORs the conditions of one rule; write one rule
 *   per condition for that.) A tag never pulled meets no pull condition. A tag's times are those of the
 *   manifest revision it points to.
 * - A tag an immutable-tag rule covers is always kept. A manifest that a kept tag points to is kept
 *   with all its tags.
 * - What is kept keeps what it reaches: an index its children, a manifest its referrers.
 * - `deleteuntagged`: a manifest revision no kept tag reaches goes once it was pushed longer than
 *   `delay` ago (those whose tags this run removes included). `deletereferrers`: likewise a referrer
 *   whose subject is gone or going. Otherwise such revisions stay, with what they reach.
 */
import type { Digest } from '../../storage/digest.js';

/** One `keeptags` rule, compiled. */
export interface KeepRule {
  readonly patterns: readonly RegExp[];
  readonly mostRecentlyPushed?: number | undefined;
  readonly mostRecentlyPulled?: number | undefined;
  readonly pushedWithinMs?: number | undefined;
  readonly pulledWithinMs?: number | undefined;
}

/** One policy, compiled. */
export interface RetentionPolicy {
  /** Its position in the configuration (for reasons and logs). */
  readonly index: number;
  readonly matches: (repo: string) => boolean;
  readonly deleteUntagged: boolean;
  readonly deleteReferrers: boolean;
  readonly keepTags: readonly KeepRule[];
}

/** What retention knows of one manifest revision. */
export interface RevisionState {
  readonly pushedAt?: number | undefined;
  readonly pulledAt?: number | undefined;
  readonly children: readonly Digest[];
  readonly subject?: Digest | undefined;
  /** False when the manifest could not be read: it is never deleted and reaches nothing known. */
  readonly readable: boolean;
}

/** A repository as retention sees it. */
export interface RepositoryState {
  /** Tags and the manifests they point to (tags whose link is broken are left out: retention leaves them alone). */
  readonly tags: ReadonlyMap<string, Digest>;
  readonly revisions: ReadonlyMap<Digest, RevisionState>;
}

/** One thing retention deletes (or, in a dry run, would delete). */
export interface Deletion {
  readonly repository: string;
  readonly kind: 'tag' | 'manifest';
  /** For a tag, its name. */
  readonly tag?: string;
  readonly digest: Digest;
  readonly reason: string;
}

export interface DecideOptions {
  readonly now: number;
  readonly delayMs: number;
  /** The immutable-tag rule covering the tag, if any (such a tag is kept). */
  readonly immutable?: ((repo: string, tag: string) => string | undefined) | undefined;
}

/** The first policy that applies to `repo`, if any. */
export function policyFor(policies: readonly RetentionPolicy[], repo: string): RetentionPolicy | undefined {
  return policies.find((p) => p.matches(repo));
}

/** What goes from `repo` under `policy`: tags first, then manifests (parents before what they reach). */
export function decide(repo: string, state: RepositoryState, policy: RetentionPolicy, o: DecideOptions): Deletion[] {
  const keptTags = keptTagsOf(repo, state, policy, o);
  const out: Deletion[] = [];
  for (const [tag, digest] of state.tags) {
    if (!keptTags.has(tag)) out.push({ repository: repo, kind: 'tag', tag, digest, reason: tagReason(state.revisions.get(digest)) });
  }
  const roots = new Set<Digest>([...state.tags].filter(([t]) => keptTags.has(t)).map(([, d]) => d));
  const cutoff = o.now - o.delayMs;
  const young = (r: RevisionState): boolean => r.pushedAt === undefined || r.pushedAt > cutoff;
  // Untagged manifests (and orphaned referrers) that stay: not deleted by the policy, unreadable, or young.
  for (const [d, r] of state.revisions) {
    const allowed = r.subject === undefined ? policy.deleteUntagged : policy.deleteReferrers;
    if (!allowed || !r.readable || young(r)) roots.add(d);
  }
  const kept = reach(roots, state.revisions);
  const untagged = new Set(out.map((t) => t.digest));
  const gone: Deletion[] = [];
  for (const [d, r] of state.revisions) {
    if (kept.has(d)) continue;
    const reason =
      r.subject !== undefined
        ? `referrer whose subject ${r.subject} is ${state.revisions.has(r.subject) ? 'deleted' : 'gone'}`
        : untagged.has(d)
          ? 'untagged by this run, pushed before the delay'
          : 'untagged, pushed before the delay';
    gone.push({ repository: repo, kind: 'manifest', digest: d, reason });
  }
  const rank = (x: Deletion): number => {
    const r = state.revisions.get(x.digest);
    return r?.subject !== undefined ? 0 : (r?.children.length ?? 0) > 0 ? 1 : 2;
  };
  return [...out, ...gone.sort((a, b) => rank(a) - rank(b))];
}

/** Tags kept by a rule or an immutable-tag rule, and every tag pointing to a manifest one of those points to. */
function keptTagsOf(repo: string, state: RepositoryState, policy: RetentionPolicy, o: DecideOptions): Set<string> {
  const tags = [...state.tags.keys()];
  if (policy.keepTags.length === 0) return new Set(tags);
  const timesOf = (tag: string): RevisionState | undefined => {
    const d = state.tags.get(tag);
    return d === undefined ? undefined : state.revisions.get(d);
  };
  const kept = new Set<string>();
  for (const rule of policy.keepTags) for (const tag of keptByRule(rule, tags, timesOf, o.now)) kept.add(tag);
  for (const tag of tags) if (o.immutable?.(repo, tag) !== undefined) kept.add(tag);
  const keptDigests = new Set([...kept].map((t) => state.tags.get(t)));
  return new Set(tags.filter((t) => keptDigests.has(state.tags.get(t))));
}

/** The tags one rule keeps: matching a pattern and meeting every condition it gives. */
function keptByRule(rule: KeepRule, tags: readonly string[], timesOf: (tag: string) => RevisionState | undefined, now: number): string[] {
  const matching = rule.patterns.length === 0 ? tags : tags.filter((t) => rule.patterns.some((re) => re.test(t)));
  const pushed = (t: string): number | undefined => timesOf(t)?.pushedAt;
  const pulled = (t: string): number | undefined => timesOf(t)?.pulledAt;
  const top = (n: number | undefined, time: (t: string) => number | undefined): Set<string> | undefined =>
    n === undefined ? undefined : new Set(mostRecent(matching, time, n));
  const byPush = top(rule.mostRecentlyPushed, pushed);
  const byPull = top(rule.mostRecentlyPulled, pulled);
  const within = (ms: number | undefined, t: number | undefined): boolean => ms === undefined || (t !== undefined && t >= now - ms);
  return matching.filter(
    (t) => (byPush?.has(t) ?? true) && (byPull?.has(t) ?? true) && within(rule.pushedWithinMs, pushed(t)) && within(rule.pulledWithinMs, pulled(t)),
  );
}

/** The `n` tags with the latest times (ties by name); tags without a time are never among them. */
function mostRecent(tags: readonly string[], time: (t: string) => number | undefined, n: number): string[] {
  return tags
    .filter((t) => time(t) !== undefined)
    .sort((a, b) => (time(b) as number) - (time(a) as number) || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, n);
}

/** Everything `roots` reach through index children and referrers. */
function reach(roots: ReadonlySet<Digest>, revisions: ReadonlyMap<Digest, RevisionState>): Set<Digest> {
  const referrers = new Map<Digest, Digest[]>();
  for (const [d, r] of revisions) if (r.subject !== undefined) referrers.set(r.subject, [...(referrers.get(r.subject) ?? []), d]);
  const kept = new Set<Digest>();
  const stack = [...roots];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    if (kept.has(d)) continue;
    kept.add(d);
    stack.push(...(revisions.get(d)?.children ?? []), ...(referrers.get(d) ?? []));
  }
  return kept;
}

function tagReason(r: RevisionState | undefined): string {
  const at = (t: number | undefined): string => (t === undefined ? 'never' : new Date(t).toISOString().replace(/\.\d+Z$/, 'Z'));
  return `no keeptags rule keeps it (pushed ${at(r?.pushedAt)}, last pulled ${at(r?.pulledAt)})`;
}
