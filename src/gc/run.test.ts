/**
 * A run as a whole: one at a time per process, stale uploads purged when asked, one log line and one
 * report per run (the metrics seam), and the gate's old link times forgotten afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDriver } from '../storage/driver/factory.js';
import type { DriverOp } from '../storage/driver/instrument.js';
import { paths } from '../storage/paths.js';
import { parseRepoName } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import type { GcReport } from './report.js';
import { GcBusyError, collectGarbage, isCollecting } from './run.js';
import { type Fixture, type PushedImage, makeFixture, pushBlob, pushImage } from './suite/fixtures.js';

describe('collectGarbage', () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture('inmemory');
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('runs one collection at a time', async () => {
    await pushImage(fx.registry, 'app', 'a', { tag: 'v1' });
    const first = collectGarbage(fx.registry, { graceMs: 0, deleteUntagged: false, dryRun: false });
    expect(isCollecting()).toBe(true);
    await expect(collectGarbage(fx.registry, { graceMs: 0, deleteUntagged: false, dryRun: true })).rejects.toBeInstanceOf(GcBusyError);
    await first;
    expect(isCollecting()).toBe(false);
    await expect(collectGarbage(fx.registry, { graceMs: 0, deleteUntagged: false, dryRun: true })).resolves.toBeDefined();
  });

  it('purges upload sessions older than the given age, and only when asked', async () => {
    const uploads = fx.registry.repository(parseRepoName('app')).uploads;
    const stale = await uploads.start();
    await fx.driver.putContent(paths.uploadStartedAt(parseRepoName('app'), stale.id), Buffer.from('2020-01-01T00:00:00Z'));
    const fresh = await uploads.start();
    expect((await collectGarbage(fx.registry, { graceMs: 0, deleteUntagged: false, dryRun: false })).uploadsPurged).toBe(0);
    const report = await collectGarbage(fx.registry, {
      graceMs: 0, deleteUntagged: false, dryRun: false, purgeUploadsOlderThanMs: 3_600_000,
    });
    expect(report.uploadsPurged).toBe(1);
    await expect(uploads.status(stale.id)).rejects.toThrow();
    expect((await uploads.status(fresh.id)).id).toBe(fresh.id);
  });

  it('logs one line per run and hands the report to the metrics seam', async () => {
    await pushBlob(fx.registry, 'app', 'loose');
    fx.offset.ms += 5;
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    const reports: GcReport[] = [];
    const report = await collectGarbage(fx.registry, {
      graceMs: 0, deleteUntagged: false, dryRun: false, now: fx.clock,
      log: { info: (msg, fields) => lines.push({ msg, ...(fields && { fields }) }), warn: (msg) => lines.push({ msg }) },
      report: (r) => reports.push(r),
    });
    expect(reports).toEqual([report]);
    expect(lines).toEqual([
      {
        msg: 'garbage collection done: marked 0; swept 1 blobs (freed 5 B); removed 1 layer links of deleted blobs',
        fields: {
          marked: 0, swept: 1, bytesFreed: 5, keptYoung: 0, layerLinksRemoved: 1, leftoversRemoved: 0, untaggedRemoved: 0, uploadsPurged: 0,
          durationMs: report.durationMs, dryRun: false, warnings: 0,
        },
      },
    ]);
  });

  it('reports a failed run with its error and lets the next one start', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const seen: unknown[] = [];
    await expect(
      collectGarbage(fx.registry, {
        graceMs: 0, deleteUntagged: false, dryRun: false, signal: controller.signal, report: (_r, err) => seen.push(err),
      }),
    ).rejects.toThrow('stop');
    expect(seen).toHaveLength(1);
    expect(isCollecting()).toBe(false);
  });

  it('forgets link times older than the run start minus the grace period', async () => {
    const d = await pushBlob(fx.registry, 'app', 'x'); // linked through the gate at about now
    fx.offset.ms = 10_000;
    await collectGarbage(fx.registry, { graceMs: 1_000, deleteUntagged: false, dryRun: true, now: fx.clock });
    let seen: number | undefined = -1;
    await fx.gate.sweep(d, async (last) => {
      seen = last;
    });
    expect(seen).toBeUndefined();
  });

  it('reads the repositories\' folders once, in the mark: no walk or listing of them afterwards (issue #19)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-gc-calls-'));
    try {
      const calls = new Map<DriverOp, number>();
      const driver = createDriver({ kind: 'filesystem', root }, (c) => calls.set(c.op, (calls.get(c.op) ?? 0) + 1));
      const registry = createRegistry({ driver, deleteEnabled: true });
      const repos = ['a', 'b', 'c', 'd'];
      const images: PushedImage[] = [];
      for (const r of repos) images.push(await pushImage(registry, r, r, { tag: 'v1', layers: ['shared'] }));
      // One image deleted: its config and manifest become garbage, and the sweep looks for their layer links.
      await registry.repository(parseRepoName('a')).manifests.delete({ digest: images[0]!.digest });
      calls.clear();
      const report = await collectGarbage(registry, { graceMs: 0, deleteUntagged: false, dryRun: true });
      expect(report.swept).toBe(2);
      expect(report.layerLinksRemoved).toBe(1); // a's config link (its layer is another's too: marked)
      // One walk (the global blobs); listings only for the catalog (repositories/ and each repository).
      // Before: a walk of each repository's revisions (per algorithm) and _layers, a tag listing each.
      expect(calls.get('walk')).toBe(1);
      expect(calls.get('list')).toBe(repos.length + 1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
