/**
 * Retention decisions as a table of cases over one repository (policy.ts); the HTTP test
 * (test/retention.test.ts) runs the same rules end to end.
 */
import { describe, expect, it } from 'vitest';
import { type Digest, parseDigest } from '../../storage/digest.js';
import { type KeepRule, type RetentionPolicy, type RevisionState, decide, policyFor } from './policy.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const H = 3_600_000;
function d(n: number): Digest {
  const digest = parseDigest(`sha256:${n.toString(16).padStart(64, '0')}`);
  if (digest === undefined) throw new Error('not a digest');
  return digest;
}
const rev = (pushedH: number, o: Partial<RevisionState> = {}): RevisionState => ({ pushedAt: NOW - pushedH * H, children: [], readable: true, ...o });
const policy = (keepTags: KeepRule[], o: Partial<RetentionPolicy> = {}): RetentionPolicy => ({
  index: 0, matches: () => true, deleteUntagged: true, deleteReferrers: false, keepTags, ...o,
});
const run = (tags: Record<string, number>, revisions: Record<number, RevisionState>, p: RetentionPolicy, immutable?: (r: string, t: string) => string | undefined) =>
  decide('r', {
    tags: new Map(Object.entries(tags).map(([t, n]) => [t, d(n)])),
    revisions: new Map(Object.entries(revisions).map(([n, r]) => [d(Number(n)), r])),
  }, p, { now: NOW, delayMs: 24 * H, immutable });
const deletedTags = (out: ReturnType<typeof run>): string[] => out.filter((x) => x.kind === 'tag').map((x) => x.tag ?? '').sort();
const deletedManifests = (out: ReturnType<typeof run>): Digest[] => out.filter((x) => x.kind === 'manifest').map((x) => x.digest);

describe('retention decisions', () => {
  it('keeps every tag when keeptags is empty, and still removes old untagged manifests', () => {
    const out = run({ a: 1 }, { 1: rev(100), 2: rev(100), 3: rev(1) }, policy([]));
    expect(deletedTags(out)).toEqual([]);
    expect(deletedManifests(out)).toEqual([d(2)]);
  });

  it('ANDs the conditions of one rule and ORs rules', () => {
    const tags = { n1: 1, n2: 2, n3: 3, n4: 4 };
    const revs = { 1: rev(300), 2: rev(200), 3: rev(90), 4: rev(10) };
    const and = run(tags, revs, policy([{ patterns: [/^n/], mostRecentlyPushed: 3, pushedWithinMs: 100 * H }]));
    expect(deletedTags(and)).toEqual(['n1', 'n2']);
    const or = run(tags, revs, policy([{ patterns: [/^n/], mostRecentlyPushed: 3 }, { patterns: [/^n/], pushedWithinMs: 100 * H }]));
    expect(deletedTags(or)).toEqual(['n1']);
  });

  it('counts most recently pulled among tags ever pulled only, and pulledwithin never keeps an unpulled tag', () => {
    const revs = { 1: rev(10, { pulledAt: NOW - 5 * H }), 2: rev(10, { pulledAt: NOW - 50 * H }), 3: rev(10) };
    expect(deletedTags(run({ a: 1, b: 2, c: 3 }, revs, policy([{ patterns: [], mostRecentlyPulled: 5 }])))).toEqual(['c']);
    expect(deletedTags(run({ a: 1, b: 2, c: 3 }, revs, policy([{ patterns: [], pulledWithinMs: 24 * H }])))).toEqual(['b', 'c']);
  });

  it('keeps a tag sharing a kept manifest, an immutable tag, and the children and referrers of what is kept', () => {
    const revs = {
      1: rev(100), // shared by v1 (kept) and old (no rule)
      2: rev(100, { children: [d(3), d(4)] }), // index kept by tag v2
      3: rev(100), 4: rev(100),
      5: rev(100, { subject: d(1) }), // referrer of a kept manifest
      6: rev(100, { subject: d(9) }), // referrer of nothing
      7: rev(100), // frozen
    };
    const out = run({ v1: 1, old: 1, v2: 2, frozen: 7 }, revs, policy([{ patterns: [/^v/] }], { deleteReferrers: true }), (_r, t) => (t === 'frozen' ? 'rule' : undefined));
    expect(deletedTags(out)).toEqual([]);
    expect(deletedManifests(out)).toEqual([d(6)]);
  });

  it('deletes the untagged manifest a removed tag leaves once older than the delay, parents before children', () => {
    const revs = { 1: rev(100, { children: [d(2)] }), 2: rev(100), 3: rev(1), 4: rev(100, { readable: false }) };
    const out = run({ idx: 1, young: 3, broken: 4 }, revs, policy([{ patterns: [/^nothing$/] }]));
    expect(deletedTags(out)).toEqual(['broken', 'idx', 'young']);
    expect(deletedManifests(out)).toEqual([d(1), d(2)]); // 3 is young, 4 unreadable
  });

  it('leaves untagged manifests and orphaned referrers alone unless told to delete them', () => {
    const revs = { 1: rev(100), 2: rev(100, { subject: d(8) }) };
    expect(run({}, revs, policy([], { deleteUntagged: false }))).toEqual([]);
    const orphan = run({}, revs, policy([], { deleteUntagged: false, deleteReferrers: true }));
    expect(orphan).toEqual([{ repository: 'r', kind: 'manifest', digest: d(2), reason: `referrer whose subject ${d(8)} is gone` }]);
    expect(deletedManifests(run({}, revs, policy([], { deleteUntagged: true, deleteReferrers: false })))).toEqual([d(1)]);
  });

  it('applies the first policy whose globs match', () => {
    const a = policy([], { index: 0, matches: (r) => r.startsWith('a/') });
    const b = policy([], { index: 1, matches: () => true });
    expect(policyFor([a, b], 'a/x')?.index).toBe(0);
    expect(policyFor([a, b], 'b/x')?.index).toBe(1);
    expect(policyFor([a], 'b/x')).toBeUndefined();
  });
});
