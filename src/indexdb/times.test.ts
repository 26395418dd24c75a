/**
 * The times table of the index (times.ts) over the memory driver and a real LevelDB: pushes recorded
 * by a manifest PUT, pulls noted by a GET and written in batches, times kept across a reopen and
 * rebuild, link times for revisions copied in, and entries dropped with their revision.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { type Digest, digestOf } from '../storage/digest.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import { createDriver } from '../storage/driver/factory.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import { MEDIA_TYPES } from '../storage/manifests/manifest-format.js';
import { paths } from '../storage/paths.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import { type LocalRegistry, createRegistry } from '../storage/registry.js';
import { type IndexDb, openIndexDb } from './index-db.js';

const APP = parseRepoName('team/app');
const T0 = Date.parse('2026-01-01T00:00:00Z');

let dir: string;
let driver: StorageDriver;
let index: IndexDb;
let registry: LocalRegistry;

async function open(): Promise<void> {
  const log = createLogger({ level: 'error', format: 'json', write: () => undefined });
  const opened = await openIndexDb({ location: join(dir, 'index'), source: createIndexSource(driver), log });
  if (!opened) throw new Error('index did not open');
  index = opened;
  await index.rebuild();
  registry = createRegistry({ driver, deleteEnabled: true, index, times: index.times });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-times-'));
  driver = createDriver({ kind: 'inmemory' });
  await open();
});
afterEach(async () => {
  await index.close();
  await rm(dir, { recursive: true, force: true });
});

/** Pushes a small image under `tag`; answers the manifest digest. */
async function push(reg: LocalRegistry, tag: string, seed: string): Promise<Digest> {
  const data = Buffer.from(`{"seed":"${seed}"}`);
  const config = digestOf(data);
  const uploads = reg.repository(APP).uploads;
  await uploads.commit((await uploads.start()).id, config, Readable.from([data]));
  const desc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: data.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: desc, layers: [] }));
  return (await reg.repository(APP).manifests.put({ tag: parseTag(tag) }, manifest, MEDIA_TYPES.ociManifest)).digest;
}

describe('times table', () => {
  it('records a push at the PUT and a pull at a GET (not a HEAD-like read), the pull written in a batch', async () => {
    const before = Date.now();
    const d = await push(registry, 'v1', 'a');
    const pushed = (await index.times.revisionTimes(APP, d))?.pushedAt;
    expect(pushed).toBeGreaterThanOrEqual(before);
    expect((await index.times.revisionTimes(APP, d))?.pulledAt).toBeUndefined();

    await registry.repository(APP).manifests.get({ tag: parseTag('v1') }); // no `pull`: a HEAD or internal read
    expect((await registry.times.timesOf(APP, d)).pulledAt).toBeUndefined();
    await registry.repository(APP).manifests.get({ tag: parseTag('v1') }, { pull: true });
    const noted = (await registry.times.timesOf(APP, d)).pulledAt;
    expect(noted).toBeGreaterThanOrEqual(pushed ?? Infinity);
    await registry.times.flush();
    expect(await index.times.revisionTimes(APP, d)).toEqual({ pushedAt: pushed, pulledAt: noted });
    expect(await registry.times.repositoryTimes(APP)).toEqual({ lastPush: pushed, lastPull: noted });
  });

  it('keeps times across a close, reopen and rebuild, and writes pulls still in memory at close', async () => {
    const d = await push(registry, 'v1', 'a');
    await registry.times.set(APP, d, { pushedAt: T0, pulledAt: T0 + 1 });
    await registry.repository(APP).manifests.get({ digest: d }, { pull: true });
    const pulled = (await registry.times.timesOf(APP, d)).pulledAt;
    expect(pulled).toBeGreaterThan(T0 + 1);
    await index.close();
    await open();
    expect(index.state).toBe('ready');
    expect(await registry.times.timesOf(APP, d)).toEqual({ pushedAt: T0, pulledAt: pulled });
  });

  it('gives a revision copied in its link time at the rebuild, and drops the entry of a revision that is gone', async () => {
    const kept = await push(registry, 'kept', 'a');
    const gone = await push(registry, 'gone', 'b');
    await registry.times.set(APP, kept, { pushedAt: T0 });
    await index.close();
    // While the index is closed: one revision vanishes, another arrives (as an rsync would do).
    await driver.delete(paths.revisionDir(APP, gone));
    const plain = createRegistry({ driver, deleteEnabled: true });
    const copied = await push(plain, 'copied', 'c');
    const linkTime = (await driver.stat(paths.revisionLink(APP, copied))).modTime.getTime();
    await open();
    const all = await index.times.repositoryRevisionTimes(APP);
    expect(Object.fromEntries(all ?? [])).toEqual({ [kept]: { pushedAt: T0 }, [copied]: { pushedAt: linkTime } });
  });

  it('drops the entry with a manifest delete, and a push or pull noted for it afterwards is not written back', async () => {
    const d = await push(registry, 'v1', 'a');
    await registry.repository(APP).manifests.delete({ digest: d });
    expect(await index.times.revisionTimes(APP, d)).toEqual({});
    await index.times.recordPush(APP, d, T0);
    index.times.notePull(APP, d, T0);
    await index.times.flushPulls();
    expect(await index.times.repositoryRevisionTimes(APP)).toEqual(new Map());
  });

  it('answers the link time for a revision without a recorded push when there is no store', async () => {
    const plain = createRegistry({ driver, deleteEnabled: true });
    const d = await push(plain, 'v1', 'a');
    const linkTime = (await driver.stat(paths.revisionLink(APP, d))).modTime.getTime();
    expect((await plain.times.timesOf(APP, d)).pushedAt).toBeGreaterThanOrEqual(linkTime);
    expect((await plain.times.timesOf(APP, digestOf(Buffer.from('none')))).pushedAt).toBeUndefined();
  });
});
