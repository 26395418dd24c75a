/**
 * A run as a whole: one at a time per process, stale uploads purged when asked, one log line and one
 * report per run (the metrics seam), and the gate's old link times forgotten afterwards.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDriver } from '../storage/driver/factory.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import type { DriverOp } from '../storage/driver/instrument.js';
import { paths } from '../storage/paths.js';
import { parseRepoName } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import type { GcEvent, GcReport } from './report.js';
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

  it('reads each repository with two listings, and looks through the whole tree for crash leftovers only when one can be there (issue #19)', async () => {
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
      const collect = async (): Promise<{ report: GcReport; scans: GcEvent[] }> => {
        const events: GcEvent[] = [];
        calls.clear();
        const report = await collectGarbage(registry, { graceMs: 0, leftoverMinAgeMs: 0, deleteUntagged: false, dryRun: true, onEvent: (e) => events.push(e) });
        return { report, scans: events.filter((e) => e.type === 'leftover-scan') };
      };

      // A tree no run has looked through yet: the whole of it, which is found clean and recorded so.
      const first = await collect();
      expect(first.scans).toMatchObject([{ whole: true, why: 'no collection has looked through this tree yet' }]);
      expect(existsSync(join(root, 'berth', 'leftovers-scanned'))).toBe(true);

      // A temporary file appears without any process having died (nothing can leave one so): the next
      // run does not look for it. What it reads: the catalog (repositories/ and each repository), the
      // listings of each repository's revisions and layer links, the blob store's folders.
      const hex = images[1]!.layers[0]!.slice('sha256:'.length);
      const planted = join(root, 'docker/registry/v2/repositories/b/_layers/sha256', hex, '.link.0123456789abcdef.tmp');
      await writeFile(planted, 'partial');
      const second = await collect();
      expect(second.report.swept).toBe(2);
      expect(second.report.layerLinksRemoved).toBe(1); // a's config link (its layer is another's too: marked)
      expect(second.report.leftoversRemoved).toBe(0);
      expect(second.scans).toMatchObject([{ whole: false }]);
      expect(calls.get('walk')).toBeUndefined(); // before: one walk of the blob store, one of the tree for leftovers
      // Per repository: revisions/sha256 and _layers/sha256 (the filesystem driver tells whether a folder
      // is there: the folders above them are not listed). The store: blobs/sha256 and each <hex2> folder.
      const blobFolders = 1 + (await readdir(join(root, 'docker/registry/v2/blobs/sha256'))).length;
      expect(calls.get('list')).toBe(1 + repos.length + repos.length * 2 + blobFolders);
      // Each revision's link, each kept manifest's size before it is read, the two unmarked blobs' data,
      // the record of the last look; and whether each sha512 folder is there (revisions, _layers, blobs).
      expect(calls.get('stat')).toBe(repos.length - 1 + repos.length - 1 + 2 + 1 + repos.length * 2 + 1);

      // A record left by a process that did not exit cleanly: the whole tree is looked through again,
      // the file is found, and the record is forgotten.
      const writers = join(root, 'berth', 'writers');
      const [own] = await readdir(writers).catch(() => [] as string[]);
      const self = JSON.parse(await readFile(join(writers, own ?? (await recordOfThisProcess(driver, writers))), 'utf8')) as Record<string, unknown>;
      await writeFile(join(writers, 'killed.json'), JSON.stringify({ ...self, pid: await deadPid() }));
      const third = await collect();
      expect(third.scans).toMatchObject([{ whole: true, why: '1 process that wrote to the tree did not exit cleanly' }]);
      expect(third.report.leftoversRemoved).toBe(1); // would be: a dry run
      expect(existsSync(join(writers, 'killed.json'))).toBe(true); // a dry run that found one forgets nothing
      await collectGarbage(registry, { graceMs: 0, leftoverMinAgeMs: 0, deleteUntagged: false, dryRun: false });
      expect(existsSync(planted)).toBe(false);
      expect(existsSync(join(writers, 'killed.json'))).toBe(false);
      expect((await collect()).scans).toMatchObject([{ whole: false }]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** The name of this process's record, after a write that makes it (the driver writes it before its first temporary file). */
async function recordOfThisProcess(driver: StorageDriver, writers: string): Promise<string> {
  await driver.putContent('/berth/probe', Buffer.from('x'));
  const [name] = await readdir(writers);
  if (name === undefined) throw new Error('no record after a write');
  return name;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await once(child, 'exit');
  if (child.pid === undefined) throw new Error('no pid');
  return child.pid;
}
