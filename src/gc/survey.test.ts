/**
 * The offline collector's parallel read (storage/maintenance/survey.ts, issue #19) against the serial
 * one, on one filesystem tree with what makes a mark interesting: layers shared across repositories,
 * nested repositories, a multi-platform index, referrers (of a tagged and of an untagged manifest),
 * untagged revisions, a deleted manifest, an unreadable manifest, a tag whose current link is empty,
 * and a blob nothing references. The mark must come out the same, event for event, with and without
 * `deleteUntagged`, and so must what a real run deletes (on two copies of the tree).
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../storage/digest.js';
import { createDriver } from '../storage/driver/factory.js';
import { createLinkGate } from '../storage/maintenance/link-gate.js';
import { type Survey, readAhead, surveyTree } from '../storage/maintenance/survey.js';
import { paths } from '../storage/paths.js';
import { parseRepoName } from '../storage/reference.js';
import { type LocalRegistry, createRegistry } from '../storage/registry.js';
import { type MarkState, markAll } from './mark.js';
import { type GcEvent, type GcReport, createWarnings } from './report.js';
import { collectGarbage } from './run.js';
import { type Fixture, makeFixture, pushBlob, pushImage, pushIndex, storedBlobs } from './suite/fixtures.js';

/** Threads for the survey: more than this machine may have, so that workers take part whatever it has. */
const THREADS = 3;

describe('the survey (parallel read) against the serial read', () => {
  let fx: Fixture;
  let root: string;
  let copies: string[] = [];
  beforeAll(async () => {
    fx = await makeFixture('filesystem');
    root = fx.root!;
    await buildTree(fx.registry, root);
  });
  afterAll(async () => {
    await fx.cleanup();
  });
  afterEach(async () => {
    for (const c of copies.splice(0)) await rm(c, { recursive: true, force: true });
  });

  /** A registry over a copy of the tree (the runs below delete). */
  const copyOf = async (): Promise<LocalRegistry> => {
    const copy = await mkdtemp(join(tmpdir(), 'berth-gc-copy-'));
    copies.push(copy);
    await cp(root, copy, { recursive: true });
    const registry = createRegistry({ driver: createDriver({ kind: 'filesystem', root: copy }), deleteEnabled: true, linkGate: createLinkGate(fx.clock) });
    roots.set(registry, copy);
    return registry;
  };

  it('reads every repository and every blob folder', async () => {
    const survey: Survey = await surveyTree({ root, tags: true, threads: THREADS });
    const serial: string[] = [];
    for await (const r of fx.registry.inventory.repositories()) serial.push(r);
    expect(survey.repositories.map((r) => r.name)).toEqual(serial);
    expect(serial).toContain('team0/app-0/sub');
    const digests: Digest[] = [];
    for await (const d of fx.registry.inventory.blobDigests()) digests.push(d);
    expect(survey.blobDigests).toEqual(digests);
    expect(serial.length).toBeGreaterThan(60);
  });

  it.each([false, true])('marks the same set, with the same events and warnings (deleteUntagged %s)', async (deleteUntagged) => {
    const serial = await mark(fx.registry, deleteUntagged, false);
    const parallel = await mark(fx.registry, deleteUntagged, true);
    expect([...parallel.state.marked].sort()).toEqual([...serial.state.marked].sort());
    // Candidates come in repository order only within a batch of repositories marked at once (mark.ts);
    // within a repository, each after its parents.
    expect(byRepository(parallel.state.untagged)).toEqual(byRepository(serial.state.untagged));
    expect(parallel.state.repositories).toEqual(serial.state.repositories);
    expect(parallel.state.looseLayers).toEqual(serial.state.looseLayers);
    expect(parallel.events).toEqual(serial.events);
    expect(parallel.warnings).toEqual(serial.warnings);
    // The tree is one where the choices matter: some blobs unmarked, some warnings, some untagged.
    expect(serial.warnings.length).toBeGreaterThan(0);
    expect(serial.state.marked.size).toBeGreaterThan(100);
    if (deleteUntagged) expect(serial.state.untagged.length).toBeGreaterThan(0);
  });

  it.each([false, true])('a run deletes the same blobs and manifests (deleteUntagged %s)', async (deleteUntagged) => {
    const [mine, other] = [await copyOf(), await copyOf()];
    fx.offset.ms += 5;
    const dry = await run(mine, deleteUntagged, true, true);
    const serialDry = await run(other, deleteUntagged, true, false);
    expect(dry.events).toEqual(serialDry.events);
    expect(strip(dry.report)).toEqual(strip(serialDry.report));

    expect(dry.events.filter((e) => e.type === 'leftover-scan')).toEqual([{ type: 'leftover-scan', whole: true, why: 'no collection has looked through this tree yet' }]);
    expect(dry.report.leftoversRemoved).toBe(5); // the four temporary files and the unfinished tag

    const parallel = await run(mine, deleteUntagged, false, true);
    const serial = await run(other, deleteUntagged, false, false);
    // Deletions run several at once (sweep.ts), so their events interleave as the disk answers.
    expect(sorted(parallel.events)).toEqual(sorted(serial.events));
    expect(strip(parallel.report)).toEqual(strip(serial.report));
    expect(parallel.report.swept).toBeGreaterThan(0);
    expect(parallel.report.swept).toBe(dry.report.swept);
    expect(await storedBlobs(mine)).toEqual(await storedBlobs(other));
    expect(await revisions(mine)).toEqual(await revisions(other));
  });
});

/** markAll over the registry's inventory, or over the surveyed one; what it answered and emitted. */
async function mark(registry: LocalRegistry, deleteUntagged: boolean, surveyed: boolean): Promise<{ state: MarkState; events: GcEvent[]; warnings: string[] }> {
  const events: GcEvent[] = [];
  const warnings = createWarnings((e) => events.push(e));
  const inv = surveyed ? await readAhead(registry.inventory, { root: rootOf(registry), tags: deleteUntagged, threads: THREADS }) : registry.inventory;
  const state = await markAll(inv, { deleteUntagged, youngAfter: undefined, emit: (e) => events.push(e), warnings });
  return { state, events, warnings: warnings.list() };
}

async function run(registry: LocalRegistry, deleteUntagged: boolean, dryRun: boolean, surveyed: boolean): Promise<{ report: GcReport; events: GcEvent[] }> {
  const events: GcEvent[] = [];
  const report = await collectGarbage(registry, {
    graceMs: 0,
    leftoverMinAgeMs: 0,
    deleteUntagged,
    dryRun,
    onEvent: (e) => events.push(e),
    ...(surveyed && { readAhead: (inv, o) => readAhead(inv, { root: rootOf(registry), tags: o.deleteUntagged, threads: THREADS }) }),
  });
  // Leftovers come in the order the threads found them: compared as a set.
  const leftovers = events.filter((e) => e.type === 'leftover-removed').map((e) => JSON.stringify(e)).sort();
  return { report, events: [...events.filter((e) => e.type !== 'leftover-removed'), ...leftovers.map((e) => JSON.parse(e) as GcEvent)] };
}

function byRepository<T extends { readonly repo: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => (a.repo < b.repo ? -1 : a.repo > b.repo ? 1 : 0));
}

function sorted(events: readonly GcEvent[]): string[] {
  return events.map((e) => JSON.stringify(e)).sort();
}

function strip(report: GcReport): Omit<GcReport, 'durationMs'> {
  const { durationMs: _, ...rest } = report;
  return rest;
}

const roots = new WeakMap<LocalRegistry, string>();
function rootOf(registry: LocalRegistry): string {
  return roots.get(registry) ?? '';
}

/** Every repository's revisions, sorted. */
async function revisions(registry: LocalRegistry): Promise<string[]> {
  const found: string[] = [];
  for await (const repo of registry.inventory.repositories()) {
    for await (const r of registry.inventory.revisions(repo)) found.push(`${repo}@${r.digest}`);
  }
  return found.sort();
}

/** The tree (file comment). */
async function buildTree(registry: LocalRegistry, root: string): Promise<void> {
  roots.set(registry, root);
  for (let i = 0; i < 60; i++) {
    const repo = i % 7 === 0 ? `team${i % 3}/app-${i}` : `repo-${i}`;
    const img = await pushImage(registry, repo, `img-${i}`, { tag: 'latest', layers: ['shared-base', `own-${i}`] });
    if (i % 4 === 0) await pushImage(registry, repo, `untagged-${i}`, { layers: ['shared-base', `old-${i}`] });
    if (i % 5 === 0) await pushImage(registry, repo, `sig-${i}`, { subject: img, layers: [`signature-${i}`] });
    if (i % 6 === 0) {
      const old = await pushImage(registry, repo, `old-${i}`, { layers: [`old-only-${i}`] });
      await pushImage(registry, repo, `sbom-of-old-${i}`, { subject: old, layers: [`sbom-${i}`] });
    }
    if (i % 9 === 0) await registry.repository(parseRepoName(repo)).manifests.delete({ digest: img.digest });
  }
  // A nested repository under another one, and a multi-platform index with an untagged one beside it.
  const amd = await pushImage(registry, 'team0/app-0/sub', 'amd', { layers: ['shared-base', 'amd'] });
  const arm = await pushImage(registry, 'team0/app-0/sub', 'arm', { layers: ['shared-base', 'arm'] });
  await pushIndex(registry, 'team0/app-0/sub', [amd, arm], 'multi');
  const lone = await pushImage(registry, 'team0/app-0/sub', 'lone', { layers: ['lone'] });
  await pushIndex(registry, 'team0/app-0/sub', [lone]);
  // An unreadable manifest (its blob gone) and a tag whose current link is empty.
  const lost = await pushImage(registry, 'broken', 'lost', { tag: 'v1', layers: ['lost-layer'] });
  await rm(join(root, paths.blobDir(lost.digest)), { recursive: true });
  await pushImage(registry, 'emptytag', 'e', { tag: 'v1', layers: ['e'] });
  await pushImage(registry, 'emptytag', 'e-old', { layers: ['e-old'] });
  await writeFile(join(root, paths.tagCurrentLink(parseRepoName('emptytag'), 'v1' as never)), '');
  await pushBlob(registry, 'repo-1', 'nobody references this');
  // Crash leftovers: temporary files at several depths, a plain file among the repositories, and an
  // unfinished tag (an index link, no current link).
  const some = await pushImage(registry, 'repo-2', 'leftover-owner', { tag: 'left', layers: ['leftover-layer'] });
  const temp = (dir: string, name: string): Promise<void> => writeFile(join(root, dir, `.${name}.0123456789abcdef.tmp`), 'cut short');
  await temp(paths.root, 'stray');
  await temp(paths.repositoriesUnder(''), 'link');
  await temp(paths.layerLinkDir(parseRepoName('repo-2'), some.layers[0]!), 'link');
  await temp(paths.blobDir(some.config), 'data');
  await writeFile(join(root, paths.repositoriesUnder(''), 'NOTES'), 'not a repository');
  const tagIndex = join(root, paths.tagIndexLink(parseRepoName('repo-3'), 'half' as never, some.digest));
  await mkdir(dirname(tagIndex), { recursive: true });
  await writeFile(tagIndex, some.digest);
}
