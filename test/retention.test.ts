/**
 * Retention (issue #16) against a real Berth: images pushed over HTTP, their push and pull times set
 * through the times API (never by waiting), the policies read from a config file, and the online
 * collector run dry and then for real. Survivors are asserted tag by tag and manifest by manifest,
 * the bytes of what went are swept, `check` finds nothing wrong, and skopeo pulls every kept tag.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retentionFor } from '../src/cli/retention.js';
import { startCollector } from '../src/cli/collector.js';
import { checkStorage } from '../src/check/check.js';
import { loadConfig } from '../src/config/parse.js';
import type { Config } from '../src/config/schema.js';
import type { GcReport } from '../src/gc/report.js';
import { retentionTable } from '../src/gc/retention/retention.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics/metrics.js';
import type { EventSubject } from '../src/notifications/event.js';
import { type Digest, parseDigest } from '../src/storage/digest.js';
import { parseRepoName } from '../src/storage/reference.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { ACCEPT_ALL, type Blob, type Image, MT, blob, makeImage, onLinux, platformIndex, pushImage, putManifest, raw } from './helpers/oci.js';
import { type ContainersStore, containersStore, describeWithTool, run, toolAvailable } from './helpers/tools.js';

const CONFIG = `
version: 0.1
storage:
  inmemory: {}
  maintenance:
    gc: { graceperiod: 0s }
    retention:
      delay: 24h
      policies:
        - repositories: ["team/**"]
          deleteuntagged: true
          deletereferrers: true
          keeptags:
            - patterns: ['^v[0-9]+\\.', '^latest$']
            - patterns: ['^build-']
              mostrecentlypushed: 2
            - patterns: ['^pr-']
              pulledwithin: 720h
            - patterns: ['^nightly-']
              mostrecentlypushed: 3
              pushedwithin: 100h
        - repositories: ["keep/*"]
          keeptags: []
  immutabletags:
    - repositories: ["team/*"]
      patterns: ['^frozen-']
`;

const HOUR = 3_600_000;

function digestOf(b: Blob): Digest {
  const d = parseDigest(b.digest);
  if (d === undefined) throw new Error(`not a digest: ${b.digest}`);
  return d;
}
const APP = 'team/app';

describeWithTool('skopeo', toolAvailable('skopeo'), 'retention policies run by the online collector', () => {
  let berth: TestBerth;
  let config: Config;
  let work: string;
  let store: ContainersStore;
  const now = Date.now();
  const digests = new Map<string, Digest>();
  const events: EventSubject[] = [];
  const reports: GcReport[] = [];
  const metrics = createMetrics();

  const setTimes = (repo: string, d: Digest, pushedH: number, pulledH?: number): Promise<void> =>
    berth.registry.times.set(parseRepoName(repo), d, { pushedAt: now - pushedH * HOUR, ...(pulledH !== undefined && { pulledAt: now - pulledH * HOUR }) });

  /** Pushes image `seed` under each of `refs` (tags, or its digest when none), pushed `pushedH` hours ago. */
  async function image(repo: string, name: string, seed: number, pushedH: number, o: { tags?: string[]; pulledH?: number; subject?: Blob } = {}): Promise<Image> {
    const img = makeImage(seed, o.subject ? { subject: o.subject, artifactType: 'application/vnd.example.sig' } : {});
    const refs = o.tags ?? [img.manifest.digest];
    for (const ref of refs) await pushImage(berth.url, repo, ref, img);
    digests.set(name, digestOf(img.manifest));
    await setTimes(repo, digestOf(img.manifest), pushedH, o.pulledH);
    return img;
  }

  async function index(repo: string, name: string, tag: string, seeds: [number, number], pushedH: number): Promise<void> {
    const children = [];
    for (const [i, seed] of seeds.entries()) children.push(await image(repo, `${name}-child${i}`, seed, pushedH));
    const [amd64, arm64] = children;
    if (!amd64 || !arm64) throw new Error('two children expected');
    const idx = platformIndex(MT.ociIndex, [onLinux('amd64', amd64), onLinux('arm64', arm64)]);
    expect((await putManifest(berth.url, repo, tag, idx, MT.ociIndex)).status).toBe(201);
    digests.set(name, digestOf(idx));
    await setTimes(repo, digestOf(idx), pushedH);
  }

  const tagsOf = async (repo: string): Promise<string[]> => {
    const res = await raw(berth.url, 'GET', `/v2/${repo}/tags/list`);
    return ((res.json() as { tags: string[] | null }).tags ?? []).sort();
  };
  const present = async (repo: string, name: string): Promise<boolean> => {
    const res = await raw(berth.url, 'HEAD', `/v2/${repo}/manifests/${digests.get(name) ?? ''}`, { headers: { Accept: ACCEPT_ALL } });
    return res.status === 200;
  };
  const collect = async (dryRun: boolean): Promise<GcReport> => {
    const log = createLogger({ level: 'error', format: 'json', write: () => undefined });
    const retention = retentionFor(config, berth.registry, { write: async (subject) => void events.push(subject) });
    const collector = startCollector({
      registry: berth.registry, config, log, retention,
      report: (r, err) => {
        reports.push(r);
        metrics.recordGcRun(r, err);
      },
    });
    const outcome = await collector.runNow({ dryRun });
    await collector.stop();
    expect(outcome.status).toBe('done');
    const last = reports.at(-1);
    if (!last) throw new Error('no report');
    return last;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-retention-'));
    await writeFile(join(work, 'config.yml'), CONFIG);
    config = await loadConfig({ file: join(work, 'config.yml'), env: {} });
    store = await containersStore(join(work, 'containers'));
    berth = await startBerth({ index: true, immutableTags: config.storage.immutabletags });

    await image(APP, 'v1', 1, 2000, { tags: ['v1.0'] });
    await image(APP, 'latest', 2, 2000, { tags: ['latest'] });
    await image(APP, 'shared', 3, 2000, { tags: ['v2.0', 'old-share'] });
    for (const [i, h] of [10, 5, 1].entries()) await image(APP, `build-${i + 1}`, 10 + i, h, { tags: [`build-${i + 1}`] });
    await image(APP, 'pr-1', 20, 900, { tags: ['pr-1'], pulledH: 240 });
    await image(APP, 'pr-2', 21, 900, { tags: ['pr-2'], pulledH: 960 });
    await image(APP, 'pr-3', 22, 900, { tags: ['pr-3'] });
    for (const [i, h] of [300, 250, 200, 90, 10].entries()) await image(APP, `nightly-${i + 1}`, 30 + i, h, { tags: [`nightly-${i + 1}`] });
    await image(APP, 'frozen-1', 40, 2000, { tags: ['frozen-1'] });
    await index(APP, 'idx-kept', 'v3.0', [50, 51], 2000);
    await index(APP, 'idx-gone', 'tmp-idx', [52, 53], 2000);
    const untaggedOld = await image(APP, 'untagged-old', 60, 48);
    await image(APP, 'untagged-young', 61, 1);
    const v1 = makeImage(1).manifest;
    await image(APP, 'ref-kept', 70, 48, { subject: v1 });
    await image(APP, 'ref-of-untagged', 71, 48, { subject: untaggedOld.manifest });
    await image(APP, 'ref-orphan-old', 72, 48, { subject: blob('never pushed') });
    await image(APP, 'ref-orphan-young', 73, 1, { subject: blob('never pushed either') });
    await image('keep/x', 'keep-a', 80, 2000, { tags: ['a'] });
    await image('keep/x', 'keep-untagged', 81, 48);
    await image('other/y', 'other-z', 90, 2000, { tags: ['z'] });
    await image('other/y', 'other-untagged', 91, 48);
  }, 120_000);

  afterAll(async () => {
    await berth?.close();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  const KEPT_TAGS = ['build-2', 'build-3', 'frozen-1', 'latest', 'nightly-4', 'nightly-5', 'old-share', 'pr-1', 'v1.0', 'v2.0', 'v3.0'];
  const DELETED_TAGS = ['build-1', 'nightly-1', 'nightly-2', 'nightly-3', 'pr-2', 'pr-3', 'tmp-idx'];
  const DELETED_MANIFESTS = [
    'idx-gone', 'idx-gone-child0', 'idx-gone-child1', 'nightly-1', 'nightly-2', 'nightly-3', 'pr-2', 'pr-3', 'untagged-old', 'ref-of-untagged', 'ref-orphan-old',
  ];

  it('a dry run lists what would go, with reasons, and deletes nothing', async () => {
    const report = await collect(true);
    const r = report.retention;
    expect(r).toBeDefined();
    const tagRows = (r?.deletions ?? []).filter((d) => d.kind === 'tag').map((d) => `${d.repository}:${d.tag ?? ''}`).sort();
    expect(tagRows).toEqual(DELETED_TAGS.map((t) => `${APP}:${t}`));
    const manifestRows = (r?.deletions ?? []).filter((d) => d.kind === 'manifest').map((d) => d.digest).sort();
    const expected = [...DELETED_MANIFESTS.map((n) => digests.get(n)), digests.get('keep-untagged')].sort();
    expect(manifestRows).toEqual(expected);
    const table = retentionTable(r?.deletions ?? [], true);
    expect(table.split('\n')[0]).toMatch(/^WOULD DELETE FROM\s+WHAT\s+DIGEST\s+WHY$/);
    expect(table).toMatch(new RegExp(`team/app\\s+tag build-1\\s+${digests.get('build-1') ?? ''}\\s+no keeptags rule keeps it`));
    expect(table).toContain(`referrer whose subject ${digests.get('untagged-old') ?? ''} is deleted`);
    expect(await tagsOf(APP)).toEqual([...KEPT_TAGS, ...DELETED_TAGS].sort());
    for (const name of DELETED_MANIFESTS) expect(await present(APP, name), name).toBe(true);
    expect(events).toEqual([]);
  });

  it('the real run keeps exactly the survivors, tag by tag and manifest by manifest, and reports each deletion', async () => {
    const report = await collect(false);
    expect(report.retention?.tagsDeleted).toBe(DELETED_TAGS.length);
    expect(report.retention?.manifestsDeleted).toBe(DELETED_MANIFESTS.length + 1);
    expect(report.retention?.skipped).toBe(0);
    expect(await tagsOf(APP)).toEqual(KEPT_TAGS);
    expect(await tagsOf('keep/x')).toEqual(['a']);
    expect(await tagsOf('other/y')).toEqual(['z']);
    for (const name of DELETED_MANIFESTS) expect(await present(APP, name), name).toBe(false);
    const keptManifests = [
      'v1', 'latest', 'shared', 'build-1', 'build-2', 'build-3', 'pr-1', 'nightly-4', 'nightly-5', 'frozen-1', 'idx-kept', 'idx-kept-child0', 'idx-kept-child1',
      'untagged-young', 'ref-kept', 'ref-orphan-young',
    ];
    for (const name of keptManifests) expect(await present(APP, name), name).toBe(true);
    expect(await present('keep/x', 'keep-untagged')).toBe(false);
    expect(await present('other/y', 'other-untagged')).toBe(true);
    // The referrer of a kept subject is still listed.
    const referrers = await raw(berth.url, 'GET', `/v2/${APP}/referrers/${digests.get('v1') ?? ''}`);
    expect((referrers.json() as { manifests: { digest: string }[] }).manifests.map((m) => m.digest)).toEqual([digests.get('ref-kept')]);
    // registry:2 delete notifications: one per tag, one per manifest.
    expect(events.filter((e) => e.kind === 'delete' && 'tag' in e).map((e) => ('tag' in e ? e.tag : '')).sort()).toEqual(DELETED_TAGS);
    expect(events.filter((e) => e.kind === 'delete' && 'digest' in e)).toHaveLength(DELETED_MANIFESTS.length + 1);
    const counted = await metrics.registry.getSingleMetricAsString('berth_retention_tags_deleted_total');
    expect(counted).toContain(`berth_retention_tags_deleted_total ${DELETED_TAGS.length}`);
    // The same collection swept the bytes of what went.
    expect(report.swept).toBeGreaterThan(0);
    const problems: string[] = [];
    await checkStorage(berth.registry.inventory, { repair: false, onProblem: (p) => problems.push(p.message), onOrphan: () => undefined });
    expect(problems).toEqual([]);
  });

  it('skopeo pulls every kept tag afterwards', async () => {
    const host = new URL(berth.url).host;
    for (const tag of KEPT_TAGS) {
      const dest = join(work, `pulled-${tag}`);
      await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${host}/${APP}:${tag}`, `oci:${dest}:${tag}`], { env: store.env, timeoutMs: 120_000 });
    }
    const gone = await raw(berth.url, 'GET', `/v2/${APP}/manifests/build-1`, { headers: { Accept: ACCEPT_ALL } });
    expect(gone.status).toBe(404);
  }, 300_000);
});

describe('a retention run that fails midway', () => {
  it('stops where it failed and leaves storage consistent (check finds nothing)', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-retention-fail-'));
    const berth = await startBerth({ index: true });
    try {
      await writeFile(join(work, 'config.yml'), CONFIG);
      const config = await loadConfig({ file: join(work, 'config.yml'), env: {} });
      const now = Date.now();
      for (const [i, tag] of ['pr-1', 'pr-2', 'pr-3', 'pr-4'].entries()) {
        const img = makeImage(200 + i);
        await pushImage(berth.url, APP, tag, img);
        await berth.registry.times.set(parseRepoName(APP), digestOf(img.manifest), { pushedAt: now - 2000 * HOUR });
      }
      const stop = new AbortController();
      let deleted = 0;
      const base = retentionFor(config, berth.registry);
      if (!base) throw new Error('no retention configured');
      const retention = {
        ...base,
        onDeleted: async (): Promise<void> => {
          deleted += 1;
          if (deleted === 2) stop.abort(new Error('failed midway'));
        },
      };
      const { collectGarbage } = await import('../src/gc/run.js');
      await expect(collectGarbage(berth.registry, { graceMs: 0, deleteUntagged: false, dryRun: false, retention, signal: stop.signal })).rejects.toThrow();
      expect(deleted).toBe(2);
      expect(await (async () => ((await raw(berth.url, 'GET', `/v2/${APP}/tags/list`)).json() as { tags: string[] }).tags.sort())()).toEqual(['pr-3', 'pr-4']);
      const problems: string[] = [];
      await checkStorage(berth.registry.inventory, { repair: false, onProblem: (p) => problems.push(p.message), onOrphan: () => undefined });
      expect(problems).toEqual([]);
    } finally {
      await berth.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('a retention run racing pushes and pulls', () => {
  it('loses nothing a tag points to: moved and re-tagged manifests are kept, and every tag pulls whole afterwards', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-retention-race-'));
    const berth = await startBerth({ index: true });
    try {
      await writeFile(join(work, 'config.yml'), `version: 0.1
storage:
  inmemory: {}
  maintenance:
    gc: { graceperiod: 0s }
    retention:
      delay: 0s
      policies:
        - repositories: ["race/*"]
          keeptags: [{ patterns: ['^keep-'] }]
`);
      const config = await loadConfig({ file: join(work, 'config.yml'), env: {} });
      const repo = 'race/app';
      const images = new Map<string, Image>();
      let seed = 500;
      const push = async (tag: string): Promise<Image> => {
        const img = makeImage((seed += 1));
        await pushImage(berth.url, repo, tag, img);
        images.set(tag, img);
        return img;
      };
      for (let i = 0; i < 6; i += 1) await push(`keep-${i}`);
      for (let i = 0; i < 6; i += 1) await push(`drop-${i}`);
      const imageOf = (tag: string): Image => {
        const img = images.get(tag);
        if (!img) throw new Error(`no image pushed as ${tag}`);
        return img;
      };
      const doomed = imageOf('drop-5');
      const base = retentionFor(config, berth.registry);
      if (!base) throw new Error('no retention configured');
      // While the run deletes its first tag, clients move a tag it decided to delete, point a new tag
      // at a manifest it decided to delete, and push new tags; pulls go on throughout.
      let raced = false;
      const racing = async (): Promise<void> => {
        if (raced) return;
        raced = true;
        await push('drop-4');
        await push('keep-new');
        await pushImage(berth.url, repo, 'rescued', doomed);
        images.set('rescued', doomed);
      };
      let pulling = true;
      const pulls = (async (): Promise<number> => {
        let n = 0;
        while (pulling) {
          const res = await raw(berth.url, 'GET', `/v2/${repo}/manifests/keep-${n % 6}`, { headers: { Accept: ACCEPT_ALL } });
          expect(res.status).toBe(200);
          n += 1;
        }
        return n;
      })();
      const { collectGarbage } = await import('../src/gc/run.js');
      const report = await collectGarbage(berth.registry, {
        graceMs: 0, deleteUntagged: false, dryRun: false, retention: { ...base, onDeleted: racing },
      }).finally(() => {
        pulling = false;
      });
      expect(await pulls).toBeGreaterThan(0);
      expect(raced).toBe(true);
      expect(report.retention?.skipped).toBeGreaterThanOrEqual(2); // drop-4 moved; drop-5's manifest re-tagged
      const tags = ((await raw(berth.url, 'GET', `/v2/${repo}/tags/list`)).json() as { tags: string[] }).tags.sort();
      expect(tags).toEqual(['drop-4', 'keep-0', 'keep-1', 'keep-2', 'keep-3', 'keep-4', 'keep-5', 'keep-new', 'rescued']);
      for (const tag of tags) {
        const img = imageOf(tag);
        const m = await raw(berth.url, 'GET', `/v2/${repo}/manifests/${tag}`, { headers: { Accept: ACCEPT_ALL } });
        expect(m.header('Docker-Content-Digest'), tag).toBe(img.manifest.digest);
        for (const b of [img.config, ...img.layers]) expect((await raw(berth.url, 'GET', `/v2/${repo}/blobs/${b.digest}`)).status, `${tag} ${b.digest}`).toBe(200);
      }
    } finally {
      await berth.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
