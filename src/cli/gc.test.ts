/**
 * The offline commands' command lines and output: registry:2's flags for garbage-collect, the lines
 * it prints, and the progress line kept on a terminal's stderr (and only there).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../storage/digest.js';
import { createDriver } from '../storage/driver/factory.js';
import { parseRepoName } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import { parseCheckArgs } from './check.js';
import { garbageCollect, parseGcArgs } from './gc.js';
import type { CommandIo } from './offline.js';

describe('parseGcArgs', () => {
  it.each([
    [[], { dryRun: false, deleteUntagged: false, force: false, file: undefined }],
    [['--dry-run', 'c.yml'], { dryRun: true, deleteUntagged: false, force: false, file: 'c.yml' }],
    [['-d', '-m'], { dryRun: true, deleteUntagged: true, force: false, file: undefined }],
    [['-dm', 'c.yml'], { dryRun: true, deleteUntagged: true, force: false, file: 'c.yml' }],
    [['--force', 'c.yml'], { dryRun: false, deleteUntagged: false, force: true, file: 'c.yml' }],
    [['c.yml', '--delete-untagged'], { dryRun: false, deleteUntagged: true, force: false, file: 'c.yml' }],
    [['--dry-run=false', '--delete-untagged=true'], { dryRun: false, deleteUntagged: true, force: false, file: undefined }],
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
    expect(await garbageCollect({ dryRun: false, deleteUntagged: false, force: false, file: config }, {}, io)).toBe(0);
    const d = digestOf(Buffer.from('loose'));
    expect(io.out.join('')).toBe(`app\n\n0 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: ${d}\n`);
    expect(io.err.join('')).toContain(`msg="Deleting blob: /docker/registry/v2/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}"`);
    expect(io.err.join('')).not.toContain('\r');
  });

  it('keeps a progress line on a terminal and clears it at the end', async () => {
    const io = capture(true);
    await garbageCollect({ dryRun: true, deleteUntagged: false, force: false, file: config }, {}, io);
    const err = io.err.join('');
    expect(err).toContain('\r\x1b[Kmarking: 1/1 repositories');
    expect(err.endsWith('\r\x1b[K')).toBe(true);
  });
});
