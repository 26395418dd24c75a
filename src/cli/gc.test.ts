/**
 * The offline commands' command lines and output: registry:2's flags for garbage-collect, the lines
 * it prints, and the progress line kept on a terminal's stderr (and only there).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../storage/digest.js';
import { openIndexDb } from '../indexdb/index-db.js';
import { createLogger } from '../log.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import { MEDIA_TYPES } from '../storage/manifests/manifest-format.js';
import { indexLocation } from './root-holder.js';
import { createDriver } from '../storage/driver/factory.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import { parseCheckArgs } from './check.js';
import { garbageCollect, parseGcArgs } from './gc.js';
import type { CommandIo } from './offline.js';

describe('parseGcArgs', () => {
  it.each([
    [[], { dryRun: false, deleteUntagged: false, retention: false, force: false, file: undefined }],
    [['--dry-run', 'c.yml'], { dryRun: true, deleteUntagged: false, retention: false, force: false, file: 'c.yml' }],
    [['-d', '-m'], { dryRun: true, deleteUntagged: true, retention: false, force: false, file: undefined }],
    [['-dm', 'c.yml'], { dryRun: true, deleteUntagged: true, retention: false, force: false, file: 'c.yml' }],
    [['--force', 'c.yml'], { dryRun: false, deleteUntagged: false, retention: false, force: true, file: 'c.yml' }],
    [['c.yml', '--delete-untagged'], { dryRun: false, deleteUntagged: true, retention: false, force: false, file: 'c.yml' }],
    [['--retention', '-d'], { dryRun: true, deleteUntagged: false, retention: true, force: false, file: undefined }],
    [['--dry-run=false', '--delete-untagged=true'], { dryRun: false, deleteUntagged: true, retention: false, force: false, file: undefined }],
  ])('%j', (args, want) => {
    expect(parseGcArgs(args)).toEqual(want);
  });

  it.each([[['--forced']], [['-x']], [['a.yml', 'b.yml']]])('refuses %j', (args) => {
    expect(typeof parseGcArgs(args)).toBe('string');
  });
});

describe('parseCheckArgs', () => {
  it('reads --repair and a file', () => {
    expect(parseCheckArgs(['--repair', 'c.yml'])).toEqual({ repair: true, force: false, file: 'c.yml' });
    expect(parseCheckArgs(['--repair', '--force'])).toEqual({ repair: true, force: true, file: undefined });
    expect(parseCheckArgs([])).toEqual({ repair: false, force: false, file: undefined });
    expect(parseCheckArgs(['--dry-run'])).toBe('unknown flag --dry-run');
  });
});

describe('garbageCollect output', () => {
  let dir = '';
  let config = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-gc-cli-'));
    config = join(dir, 'config.yml');
    await writeFile(config, `version: 0.1\nlog: {level: info}\nstorage:\n  filesystem:\n    rootdirectory: ${JSON.stringify(join(dir, 'root'))}\n`);
    const registry = createRegistry({ driver: createDriver({ kind: 'filesystem', root: join(dir, 'root') }), deleteEnabled: true });
    const uploads = registry.repository(parseRepoName('app')).uploads;
    const s = await uploads.start();
    await uploads.commit(s.id, digestOf(Buffer.from('loose')), Readable.from([Buffer.from('loose')]));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const capture = (tty: boolean): CommandIo & { out: string[]; err: string[] } => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), stderrIsTty: tty, stdoutIsTty: tty };
  };

  it("prints registry:2's lines, and logs each deletion", async () => {
    const io = capture(false);
    expect(await garbageCollect({ dryRun: false, deleteUntagged: false, retention: false, force: false, file: config }, {}, io)).toBe(0);
    const d = digestOf(Buffer.from('loose'));
    expect(io.out.join('')).toBe(`app\n\n0 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: ${d}\n`);
    expect(io.err.join('')).toContain(`msg="Deleting blob: /docker/registry/v2/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}"`);
    expect(io.err.join('')).not.toContain('\r');
  });

  it('--retention applies the policies with the times the index database holds, and prints the table', async () => {
    const root = join(dir, 'root');
    await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${JSON.stringify(root)}
  maintenance:\n    retention:\n      policies:\n        - keeptags: [{ patterns: ['^v'] }, { pushedwithin: 100h }]\n`);
    const driver = createDriver({ kind: 'filesystem', root });
    const log = createLogger({ level: 'error', format: 'json', write: () => undefined });
    const index = await openIndexDb({ location: indexLocation(root), source: createIndexSource(driver), log });
    if (!index) throw new Error('index did not open');
    await index.rebuild();
    const registry = createRegistry({ driver, deleteEnabled: true, index, times: index.times });
    const app = parseRepoName('app');
    const pushed: Record<string, Digest> = {};
    for (const tag of ['v1', 'old', 'new']) {
      const config = Buffer.from(`{"tag":"${tag}"}`);
      const s = await registry.repository(app).uploads.start();
      await registry.repository(app).uploads.commit(s.id, digestOf(config), Readable.from([config]));
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, layers: [],
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      }));
      pushed[tag] = (await registry.repository(app).manifests.put({ tag: parseTag(tag) }, manifest, MEDIA_TYPES.ociManifest)).digest;
    }
    for (const tag of ['v1', 'old']) await index.times.setTimes(app, pushed[tag] as Digest, { pushedAt: Date.now() - 200 * 3_600_000 });
    await index.close();

    const dry = capture(false);
    expect(await garbageCollect({ dryRun: true, deleteUntagged: false, retention: true, force: false, file: config }, {}, dry)).toBe(0);
    const table = dry.out.join('').split('\n\n').pop() ?? '';
    expect(table.split('\n').filter((l) => l !== '').map((l) => l.split(/\s{2,}/).slice(0, 2))).toEqual([
      ['WOULD DELETE FROM', 'WHAT'], ['app', 'tag old'], ['app', 'manifest'],
    ]);
    expect((await registry.repository(app).tags()).slice()).toEqual(['new', 'old', 'v1']);
    const real = capture(false);
    expect(await garbageCollect({ dryRun: false, deleteUntagged: false, retention: true, force: false, file: config }, {}, real)).toBe(0);
    expect(real.out.join('')).toContain(`DELETED FROM`);
    expect((await createRegistry({ driver, deleteEnabled: true }).repository(app).tags()).slice()).toEqual(['new', 'v1']);
  });

  it('keeps a progress line on a terminal and clears it at the end', async () => {
    const io = capture(true);
    await garbageCollect({ dryRun: true, deleteUntagged: false, retention: false, force: false, file: config }, {}, io);
    const err = io.err.join('');
    expect(err).toContain('\r\x1b[Kmarking: 1/1 repositories');
    expect(err.endsWith('\r\x1b[K')).toBe(true);
  });
});
