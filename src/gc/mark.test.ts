/**
 * What the collector keeps and what it sweeps, over hand-built registries on every driver: tagged and
 * untagged images, multi-platform indexes, referrers, layers shared across repositories, foreign
 * layers, and the faults it must survive without deleting anything still referenced (an unreadable
 * manifest, an empty tag link).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../storage/digest.js';
import { paths } from '../storage/paths.js';
import type { Inventory } from '../storage/maintenance/inventory.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import { markAll } from './mark.js';
import { collectGarbage } from './run.js';
import { type GcEvent, type GcReport, createWarnings } from './report.js';
import {
  DRIVER_KINDS, type Fixture, imageBlobs, makeFixture, pushBlob, pushImage, pushIndex, storedBlobs,
} from './suite/fixtures.js';

describe.each(DRIVER_KINDS)('mark and sweep over the %s driver', (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture(kind);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  const collect = (
    opts: { deleteUntagged?: boolean; dryRun?: boolean; events?: GcEvent[]; leftoverMinAgeMs?: number } = {},
  ): Promise<GcReport> => {
    // The run begins after every push so far (a link in the run's first millisecond would keep a blob).
    fx.offset.ms += 5;
    return collectGarbage(fx.registry, {
      graceMs: 0,
      ...(opts.leftoverMinAgeMs !== undefined && { leftoverMinAgeMs: opts.leftoverMinAgeMs }),
      deleteUntagged: opts.deleteUntagged ?? false,
      dryRun: opts.dryRun ?? false,
      now: fx.clock,
      ...(opts.events && { onEvent: (e: GcEvent) => opts.events?.push(e) }),
    });
  };

  const deleteManifest = async (repo: string, d: Digest): Promise<void> => {
    await fx.registry.repository(parseRepoName(repo)).manifests.delete({ digest: d });
  };

  it('keeps tagged images and sweeps nothing', async () => {
    const a = await pushImage(fx.registry, 'team/app', 'a', { tag: 'v1', layers: ['base', 'a1'] });
    const before = await storedBlobs(fx.registry);
    const report = await collect();
    expect(report).toMatchObject({ swept: 0, bytesFreed: 0, untaggedRemoved: 0, dryRun: false, warnings: [] });
    expect(report.marked).toBe(imageBlobs(a).length);
    expect(await storedBlobs(fx.registry)).toEqual(before);
  });

  it('sweeps what only a deleted manifest referenced, and keeps layers another image shares', async () => {
    const a = await pushImage(fx.registry, 'app', 'a', { tag: 'a', layers: ['base', 'a-only'] });
    const b = await pushImage(fx.registry, 'app', 'b', { tag: 'b', layers: ['base', 'b-only'] });
    await deleteManifest('app', a.digest);
    const report = await collect();
    const left = await storedBlobs(fx.registry);
    expect(new Set(imageBlobs(b).filter((d) => left.has(d)))).toEqual(new Set(imageBlobs(b)));
    expect([a.digest, a.config, a.layers[1]!].filter((d) => left.has(d))).toEqual([]);
    expect(report.swept).toBe(3);
    expect(report.bytesFreed).toBeGreaterThan(0);
  });

  it('keeps a layer shared across repositories until no repository references it', async () => {
    const a = await pushImage(fx.registry, 'one', 'a', { tag: 'v1', layers: ['shared'] });
    const b = await pushImage(fx.registry, 'two', 'b', { tag: 'v1', layers: ['shared'] });
    await deleteManifest('one', a.digest);
    await collect();
    expect((await storedBlobs(fx.registry)).has(a.layers[0]!)).toBe(true);
    await deleteManifest('two', b.digest);
    await collect();
    expect((await storedBlobs(fx.registry)).has(a.layers[0]!)).toBe(false);
  });

  it('sweeps a blob that was uploaded but never referenced', async () => {
    const loose = await pushBlob(fx.registry, 'app', 'loose');
    await pushImage(fx.registry, 'app', 'a', { tag: 'v1' });
    const report = await collect();
    expect(report.swept).toBe(1);
    expect((await storedBlobs(fx.registry)).has(loose)).toBe(false);
  });

  it('keeps untagged manifests by default, and removes them with deleteUntagged', async () => {
    const untagged = await pushImage(fx.registry, 'app', 'old', { layers: ['old-layer'] });
    const tagged = await pushImage(fx.registry, 'app', 'new', { tag: 'v1', layers: ['new-layer'] });
    expect((await collect()).swept).toBe(0);
    const events: GcEvent[] = [];
    const report = await collect({ deleteUntagged: true, events });
    expect(report.untaggedRemoved).toBe(1);
    expect(events).toContainEqual({ type: 'manifest-eligible', repo: 'app', digest: untagged.digest });
    const left = await storedBlobs(fx.registry);
    expect(imageBlobs(untagged).filter((d) => left.has(d))).toEqual([]);
    expect(imageBlobs(tagged).every((d) => left.has(d))).toBe(true);
    await expect(fx.driver.stat(paths.revisionLink(parseRepoName('app'), untagged.digest))).rejects.toThrow(/not found/);
  });

  it('keeps a tagged multi-platform index with its untagged children under deleteUntagged', async () => {
    const amd = await pushImage(fx.registry, 'multi', 'amd64', { layers: ['amd-layer'] });
    const arm = await pushImage(fx.registry, 'multi', 'arm64', { layers: ['arm-layer'] });
    const idx = await pushIndex(fx.registry, 'multi', [amd, arm], 'latest');
    const stray = await pushImage(fx.registry, 'multi', 'stray', { layers: ['stray-layer'] });
    const report = await collect({ deleteUntagged: true });
    const left = await storedBlobs(fx.registry);
    for (const d of [idx.digest, ...imageBlobs(amd), ...imageBlobs(arm)]) expect(left.has(d)).toBe(true);
    expect(imageBlobs(stray).filter((d) => left.has(d))).toEqual([]);
    expect(report.untaggedRemoved).toBe(1);
    const child = await fx.registry.repository(parseRepoName('multi')).manifests.get({ digest: amd.digest });
    expect(child.digest).toBe(amd.digest);
  });

  it('sweeps an untagged index and its children together under deleteUntagged', async () => {
    const amd = await pushImage(fx.registry, 'multi', 'amd64', { layers: ['amd-layer'] });
    const idx = await pushIndex(fx.registry, 'multi', [amd]);
    await pushImage(fx.registry, 'multi', 'keep', { tag: 'v1' });
    const report = await collect({ deleteUntagged: true });
    expect(report.untaggedRemoved).toBe(2);
    const left = await storedBlobs(fx.registry);
    expect([idx.digest, ...imageBlobs(amd)].filter((d) => left.has(d))).toEqual([]);
  });

  it('keeps referrers of kept manifests (recursively) and drops referrers of removed ones', async () => {
    const img = await pushImage(fx.registry, 'app', 'img', { tag: 'v1' });
    const sig = await pushImage(fx.registry, 'app', 'sig', { subject: img, layers: ['signature'] });
    const sigOfSig = await pushImage(fx.registry, 'app', 'sig2', { subject: sig, layers: ['counter-signature'] });
    const old = await pushImage(fx.registry, 'app', 'old', { layers: ['old-layer'] });
    const sbomOfOld = await pushImage(fx.registry, 'app', 'sbom', { subject: old, layers: ['sbom'] });
    const report = await collect({ deleteUntagged: true });
    const left = await storedBlobs(fx.registry);
    for (const d of [...imageBlobs(img), ...imageBlobs(sig), ...imageBlobs(sigOfSig)]) expect(left.has(d)).toBe(true);
    expect([...imageBlobs(old), ...imageBlobs(sbomOfOld)].filter((d) => left.has(d))).toEqual([]);
    expect(report.untaggedRemoved).toBe(2);
  });

  it('never counts a foreign layer (urls) as a blob, and sweeps the unreferenced one of that digest', async () => {
    const foreign = await pushBlob(fx.registry, 'app', 'foreign bytes pushed anyway');
    const img = await pushImage(fx.registry, 'app', 'win', { tag: 'v1', foreign });
    const report = await collect();
    expect(report.marked).toBe(imageBlobs(img).length);
    expect((await storedBlobs(fx.registry)).has(foreign)).toBe(false);
  });

  it('fails closed on a manifest that cannot be read: every blob the repository links stays', async () => {
    const a = await pushImage(fx.registry, 'broken', 'a', { tag: 'v1', layers: ['a-layer'] });
    const loose = await pushBlob(fx.registry, 'broken', 'linked but unreferenced');
    const elsewhere = await pushBlob(fx.registry, 'fine', 'unreferenced elsewhere');
    await fx.driver.putContent(paths.blobData(a.digest), Buffer.from('{"this is": "not a manifest"'));
    const report = await collect({ deleteUntagged: true });
    const left = await storedBlobs(fx.registry);
    for (const d of [a.digest, a.config, ...a.layers, loose]) expect(left.has(d)).toBe(true);
    expect(left.has(elsewhere)).toBe(false);
    expect(report.warnings.join('\n')).toMatch(/broken: manifest sha256:\w+ cannot be read \(does not parse \(manifest invalid/);
  });

  it('fails closed on a revision whose manifest blob is missing', async () => {
    const a = await pushImage(fx.registry, 'gone', 'a', { tag: 'v1', layers: ['kept-layer'] });
    await fx.driver.delete(paths.blobDir(a.digest));
    const report = await collect();
    const left = await storedBlobs(fx.registry);
    expect([a.config, ...a.layers].every((d) => left.has(d))).toBe(true);
    expect(report.warnings.join('\n')).toMatch(/the manifest blob is missing/);
  });

  it('skips a tag whose current link is empty with a warning, and keeps the untagged manifests of its repository', async () => {
    const a = await pushImage(fx.registry, 'app', 'a', { tag: 'v1' });
    const b = await pushImage(fx.registry, 'app', 'b', { tag: 'v2' });
    await fx.driver.putContent(paths.tagCurrentLink(parseRepoName('app'), parseTag('v1')), Buffer.alloc(0));
    const report = await collect({ deleteUntagged: true });
    const left = await storedBlobs(fx.registry);
    for (const d of [...imageBlobs(a), ...imageBlobs(b)]) expect(left.has(d)).toBe(true);
    expect(report.untaggedRemoved).toBe(0);
    expect(report.warnings).toContain('app: tag v1 skipped: its current link is empty');
  });

  it('skips a tag whose current link is missing with a warning', async () => {
    const a = await pushImage(fx.registry, 'app', 'a', { tag: 'v1' });
    await fx.driver.delete(paths.tagCurrentLink(parseRepoName('app'), parseTag('v1')));
    const strict = await collect({ deleteUntagged: true });
    expect(strict.warnings).toContain('app: tag v1 skipped: its current link is missing');
    expect(strict.untaggedRemoved).toBe(0);
    expect(strict.swept).toBe(0);
    expect((await storedBlobs(fx.registry)).has(a.digest)).toBe(true);
    // An unfinished tag this fresh may be a tag write in progress: kept, whatever the grace period.
    expect(strict.leftoversRemoved).toBe(0);
    // A run that knows nobody writes (the offline command) removes it as a crash leftover after its mark.
    const offline = await collect({ deleteUntagged: true, leftoverMinAgeMs: 0 });
    expect(offline.warnings).toContain('app: tag v1 skipped: its current link is missing');
    expect(offline.leftoversRemoved).toBe(1);
    const report = await collect();
    expect(report.warnings).toEqual([]);
    expect(report.leftoversRemoved).toBe(0);
  });

  it('reports in a dry run what a real run then removes', async () => {
    await pushImage(fx.registry, 'app', 'old', { layers: ['old-layer'] });
    await pushImage(fx.registry, 'app', 'new', { tag: 'v1' });
    await pushBlob(fx.registry, 'app', 'loose');
    const before = await storedBlobs(fx.registry);
    const dry = await collect({ deleteUntagged: true, dryRun: true });
    expect(await storedBlobs(fx.registry)).toEqual(before);
    const real = await collect({ deleteUntagged: true });
    expect({ ...dry, durationMs: 0 }).toEqual({ ...real, dryRun: true, durationMs: 0 });
    expect(real.swept).toBe(4);
  });

  it("emits registry:2's marking events in order", async () => {
    const a = await pushImage(fx.registry, 'app', 'a', { tag: 'v1', layers: ['l1'] });
    const loose = await pushBlob(fx.registry, 'app', 'loose');
    const events: GcEvent[] = [];
    await collect({ events });
    const shown = events.filter((e) => e.type !== 'progress' && e.type !== 'leftover-scan');
    expect(shown).toEqual([
      { type: 'repository', repo: 'app' },
      { type: 'marking-manifest', repo: 'app', digest: a.digest },
      { type: 'marking-blob', repo: 'app', digest: a.config },
      { type: 'marking-blob', repo: 'app', digest: a.layers[0] },
      { type: 'summary', marked: 3, blobs: 1, manifests: 0 },
      { type: 'blob-eligible', digest: loose },
      { type: 'blob-deleted', digest: loose, path: paths.blobDir(loose), size: 5 },
    ]);
  });

  it('marks repositories several at a time, yet emits and warns in repository order, as if one by one', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `r${String(i).padStart(2, '0')}`);
    const delayOf = new Map<Digest, number>();
    for (const [i, name] of names.entries()) {
      const img = await pushImage(fx.registry, name, name, { tag: 'v1', layers: [`${name}-layer`] });
      delayOf.set(img.digest, names.length - i); // later repositories answer sooner, so finish first
      // Every fifth manifest cannot be read: its warning must come among its own repository's events.
      if (i % 5 === 0) await fx.driver.putContent(paths.blobData(img.digest), Buffer.from('{"not a manifest"'));
    }
    const inv = fx.registry.inventory;
    let reading = 0;
    let mostAtOnce = 0;
    const slowed: Inventory = {
      ...inv,
      async references(d, o) {
        mostAtOnce = Math.max(mostAtOnce, ++reading);
        await new Promise((r) => setTimeout(r, delayOf.get(d) ?? 0));
        reading -= 1;
        return inv.references(d, o);
      },
    };
    const events: GcEvent[] = [];
    const emit = (e: GcEvent): void => void events.push(e);
    await markAll(slowed, { deleteUntagged: false, youngAfter: undefined, emit, warnings: createWarnings(emit) });

    expect(mostAtOnce).toBeGreaterThan(1);
    expect(events.filter((e) => e.type === 'repository').map((e) => e.repo)).toEqual(names);
    let current: string | undefined;
    const progress: number[] = [];
    for (const e of events) {
      if (e.type === 'repository') current = e.repo;
      else if (e.type === 'marking-manifest' || e.type === 'marking-blob') expect(e.repo).toBe(current);
      else if (e.type === 'warning') expect(e.message.startsWith(`${current ?? '?'}: manifest`)).toBe(true);
      else if (e.type === 'progress') {
        expect(current).toBe(names[e.done - 1]);
        progress.push(e.done);
      }
    }
    expect(progress).toEqual(names.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'warning')).toHaveLength(8);
  });
});
