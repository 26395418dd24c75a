/**
 * The storage API (createRegistry) on every driver: uploads, manifests, tags, referrers, mounts and
 * purging, including what happens after a restart (a new registry over the same driver has lost every
 * in-memory hash state and must still verify uploads).
 */
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRegistryError, type OciCode } from '../errors.js';
import { type Digest, digestOf } from './digest.js';
import type { StorageDriver } from './driver/driver.js';
import { TEST_DRIVERS } from './driver/suite/drivers.js';
import { createMemoryDriver } from './driver/memory.js';
import { instrument } from './driver/instrument.js';
import { MEDIA_TYPES } from './manifests/manifest-format.js';
import { paths } from './paths.js';
import { parseRepoName, parseTag } from './reference.js';
import { type LocalRegistry, createRegistry } from './registry.js';


const repo = parseRepoName('team/app');
const body = (data: string | Buffer): Readable => Readable.from([Buffer.from(data)]);

async function codeOf(p: Promise<unknown>): Promise<OciCode | 'none'> {
  try {
    await p;
    return 'none';
  } catch (err) {
    if (isRegistryError(err)) return err.code;
    throw err;
  }
}

async function pushBlob(registry: LocalRegistry, data: string): Promise<Digest> {
  const d = digestOf(Buffer.from(data));
  const session = await registry.repository(repo).uploads.start();
  await registry.repository(repo).uploads.commit(session.id, d, body(data));
  return d;
}

function imageManifest(config: Digest, layers: Digest[], extra: object = {}): Buffer {
  const desc = (d: Digest): object => ({ mediaType: 'application/octet-stream', digest: d, size: 1 });
  return Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: desc(config), layers: layers.map(desc), ...extra }),
  );
}

describe.each(TEST_DRIVERS)('registry over the %s driver', (_name, make) => {
  let driver: StorageDriver;
  let cleanup: () => Promise<void>;
  let registry: LocalRegistry;
  beforeEach(async () => {
    ({ driver, cleanup } = await make());
    registry = createRegistry({ driver, deleteEnabled: true });
  });
  afterEach(async () => cleanup());

  it('chunks appended across requests commit to the right blob', async () => {
    const uploads = registry.repository(repo).uploads;
    const session = await uploads.start();
    expect((await uploads.append(session.id, body('hello '))).size).toBe(6);
    expect((await uploads.append(session.id, body('world'), { expectedOffset: 6 })).size).toBe(11);
    const d = digestOf(Buffer.from('hello world'));
    expect(await uploads.commit(session.id, d, undefined)).toEqual({ digest: d, size: 11 });
    expect((await driver.getContent(paths.blobData(d))).toString()).toBe('hello world');
    expect(await codeOf(uploads.status(session.id))).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  /** A registry as a restarted process or another replica sees the same storage, counting reads of data. */
  const restartedCountingReads = (): { uploads: ReturnType<LocalRegistry['repository']>['uploads']; reads: () => number } => {
    let reads = 0;
    const counting = instrument(driver, (call) => {
      if (call.op === 'reader') reads++;
    });
    return { uploads: createRegistry({ driver: counting, deleteEnabled: true }).repository(repo).uploads, reads: () => reads };
  };

  it('a PATCH saves its SHA-256 state at hashstates/sha256/<offset> in Go\'s format', async () => {
    const uploads = registry.repository(repo).uploads;
    const session = await uploads.start();
    await uploads.append(session.id, body('abc'));
    const state = await driver.getContent(paths.uploadHashState(repo, session.id, 'sha256', 3));
    expect(state.subarray(0, 4).toString('latin1')).toBe('sha\x03');
    expect(state.subarray(36, 39).toString()).toBe('abc');
    expect(state.readBigUInt64BE(100)).toBe(3n);
    const d = digestOf(Buffer.from('abc'));
    await uploads.commit(session.id, d, undefined);
    expect(await driver.list(paths.uploads(repo)).catch(() => [])).toEqual([]); // the states went with the session
  });

  it('after a restart a PATCH and the commit take up the saved hash state and read no data', async () => {
    const session = await registry.repository(repo).uploads.start();
    await registry.repository(repo).uploads.append(session.id, body('resumed '));
    const second = restartedCountingReads();
    expect((await second.uploads.status(session.id)).size).toBe(8);
    await second.uploads.append(session.id, body('upl'), { expectedOffset: 8 });
    const third = restartedCountingReads();
    await third.uploads.append(session.id, body('oad'), { expectedOffset: 11 });
    const right = digestOf(Buffer.from('resumed upload'));
    expect((await third.uploads.commit(session.id, right, undefined)).size).toBe(14);
    expect(second.reads() + third.reads()).toBe(0);
  });

  it('a state that is torn, saved for another offset or corrupt is not trusted: the commit reads the data and verifies it', async () => {
    const cases: [string, (genuine: Buffer, earlier: Buffer) => Buffer][] = [
      ['torn', (genuine) => genuine.subarray(0, 50)],
      ['another offset', (_genuine, earlier) => earlier],
      ['corrupt words', (genuine) => Buffer.concat([genuine.subarray(0, 4), Buffer.alloc(32, 7), genuine.subarray(36)])],
    ];
    for (const [label, spoil] of cases) {
      const uploads = registry.repository(repo).uploads;
      const session = await uploads.start();
      await uploads.append(session.id, body('abc'));
      await uploads.append(session.id, body('defgh'), { expectedOffset: 3 });
      const at = (offset: number): string => paths.uploadHashState(repo, session.id, 'sha256', offset);
      await driver.putContent(at(8), spoil(await driver.getContent(at(8)), await driver.getContent(at(3))));
      const restarted = restartedCountingReads();
      const wrong = digestOf(Buffer.from('abcdefgX'));
      expect(await codeOf(restarted.uploads.commit(session.id, wrong, undefined)), label).toBe('DIGEST_INVALID');
      const right = digestOf(Buffer.from('abcdefgh'));
      expect((await restarted.uploads.commit(session.id, right, undefined)).digest, label).toBe(right);
      expect(restarted.reads(), label).toBe(2);
    }
  });

  it('a process alone on its storage (sharedUploads false) hashes PATCHes natively, saves no state, and reads back only after a restart', async () => {
    const lone = createRegistry({ driver, deleteEnabled: true, sharedUploads: false }).repository(repo).uploads;
    const session = await lone.start();
    await lone.append(session.id, body('lone '));
    await lone.append(session.id, body('upload'), { expectedOffset: 5 });
    expect(await driver.list(paths.uploadHashStates(repo, session.id, 'sha256')).catch(() => [])).toEqual([]);
    const restarted = restartedCountingReads();
    const d = digestOf(Buffer.from('lone upload'));
    expect((await restarted.uploads.commit(session.id, d, undefined)).size).toBe(11);
    expect(restarted.reads()).toBe(1);

    let reads = 0;
    const counting = instrument(driver, (call) => {
      if (call.op === 'reader') reads++;
    });
    const same = createRegistry({ driver: counting, deleteEnabled: true, sharedUploads: false }).repository(repo).uploads;
    const again = await same.start();
    await same.append(again.id, body('in one '));
    await same.append(again.id, body('process'), { expectedOffset: 7 });
    await same.commit(again.id, digestOf(Buffer.from('in one process')), undefined);
    expect(reads).toBe(0); // the native hash kept in memory between the PATCHes
  });

  it('verifies a sha512 digest by re-reading, though the running hash is sha256', async () => {
    const uploads = registry.repository(repo).uploads;
    const session = await uploads.start();
    const d = digestOf(Buffer.from('sha512 content'), 'sha512');
    await uploads.commit(session.id, d, body('sha512 content'));
    expect((await driver.getContent(paths.blobData(d))).toString()).toBe('sha512 content');
  });

  it('an offset that is not the current size is RANGE_INVALID and writes nothing', async () => {
    const uploads = registry.repository(repo).uploads;
    const session = await uploads.start();
    await uploads.append(session.id, body('abc'));
    expect(await codeOf(uploads.append(session.id, body('zzz'), { expectedOffset: 0 }))).toBe('RANGE_INVALID');
    expect((await uploads.status(session.id)).size).toBe(3);
  });

  it('a commit of a blob that already exists keeps the stored bytes and drops the upload', async () => {
    const d = await pushBlob(registry, 'same bytes');
    const before = await driver.stat(paths.blobData(d));
    await pushBlob(registry, 'same bytes');
    expect((await driver.stat(paths.blobData(d))).modTime).toEqual(before.modTime);
    // An empty folder may vanish (the memory driver has no empty directories).
    expect(await driver.list(paths.uploads(repo)).catch(() => [])).toEqual([]);
  });

  it('ingests a blob its caller verified, and keeps nothing of one whose body fails', async () => {
    const uploads = registry.repository(repo).uploads;
    const d = digestOf(Buffer.from('verified bytes'));
    expect(await uploads.ingestVerified(d, body('verified bytes'))).toEqual({ digest: d, size: 14 });
    expect((await driver.getContent(paths.blobData(d))).toString()).toBe('verified bytes');
    expect(await registry.repository(repo).blobs.stat(d)).toEqual({ digest: d, size: 14 });
    const other = digestOf(Buffer.from('never whole'));
    const failing = Readable.from((async function* () {
      yield Buffer.from('never ');
      throw new Error('the bytes do not match');
    })());
    await expect(uploads.ingestVerified(other, failing)).rejects.toThrow(/do not match/);
    expect(await registry.blobs.stat(other)).toBeUndefined();
    expect(await driver.list(paths.uploads(repo)).catch(() => [])).toEqual([]);
  });

  it('stores a manifest, resolves its tag, and deletes by tag and by digest', async () => {
    const config = await pushBlob(registry, 'config');
    const layer = await pushBlob(registry, 'layer');
    const manifest = imageManifest(config, [layer]);
    const manifests = registry.repository(repo).manifests;
    const { digest } = await manifests.put({ tag: parseTag('v1') }, manifest, MEDIA_TYPES.ociManifest);
    await manifests.put({ tag: parseTag('v2') }, manifest, MEDIA_TYPES.ociManifest);
    expect((await manifests.get({ tag: parseTag('v1') })).content).toEqual(manifest);
    expect(await registry.repository(repo).tags()).toEqual(['v1', 'v2']);
    await manifests.delete({ tag: parseTag('v1') });
    expect(await registry.repository(repo).tags()).toEqual(['v2']);
    await manifests.delete({ digest });
    expect(await registry.repository(repo).tags()).toEqual([]);
    expect(await codeOf(manifests.get({ digest }))).toBe('MANIFEST_UNKNOWN');
  });

  it('answers NAME_UNKNOWN for a name with no directory after one stat, listing nothing (the mirror\'s router asks this per request)', async () => {
    const calls: string[] = [];
    const counting = instrument(driver, (call) => void calls.push(call.op));
    const unknown = createRegistry({ driver: counting, deleteEnabled: true }).repository(parseRepoName('library/not-here'));
    expect(await codeOf(unknown.tags({ limit: 1 }))).toBe('NAME_UNKNOWN');
    expect(calls).toEqual(['stat']);
    await pushBlob(registry, 'a layer'); // team/app exists now, with no tag
    expect(await createRegistry({ driver, deleteEnabled: true }).repository(repo).tags()).toEqual([]);
  });

  it('exists() answers as tags() does, as a yes or no: false after one stat for a name with no directory, true with or without tags', async () => {
    const calls: string[] = [];
    const counting = instrument(driver, (call) => void calls.push(call.op));
    const unknown = createRegistry({ driver: counting, deleteEnabled: true }).repository(parseRepoName('library/not-here'));
    expect(await unknown.exists()).toBe(false);
    expect(calls).toEqual(['stat']);
    await pushBlob(registry, 'a layer'); // team/app exists now, with no tag
    expect(await createRegistry({ driver, deleteEnabled: true }).repository(repo).exists()).toBe(true);
    const config = await pushBlob(registry, 'config');
    await registry.repository(repo).manifests.put({ tag: parseTag('v1') }, imageManifest(config, []), MEDIA_TYPES.ociManifest);
    expect(await createRegistry({ driver, deleteEnabled: true }).repository(repo).exists()).toBe(true);
  });

  it('refuses a manifest whose blobs are not linked in the repository', async () => {
    const other = registry.repository(parseRepoName('other/app'));
    const session = await other.uploads.start();
    const foreign = digestOf(Buffer.from('foreign'));
    await other.uploads.commit(session.id, foreign, body('foreign'));
    const manifest = imageManifest(foreign, []);
    expect(await codeOf(registry.repository(repo).manifests.put({ tag: parseTag('x') }, manifest, undefined))).toBe(
      'MANIFEST_BLOB_UNKNOWN',
    );
  });

  it('finds referrers by subject and filters them by artifactType', async () => {
    const config = await pushBlob(registry, '{}');
    const manifests = registry.repository(repo).manifests;
    const subject = await manifests.put({ tag: parseTag('base') }, imageManifest(config, []), undefined);
    const subjectDesc = { mediaType: MEDIA_TYPES.ociManifest, digest: subject.digest, size: 10 };
    const sig = imageManifest(config, [], { artifactType: 'application/sig', subject: subjectDesc });
    const sigDigest = digestOf(sig);
    expect((await manifests.put({ digest: sigDigest }, sig, undefined)).subject).toBe(subject.digest);
    const all = await registry.repository(repo).referrers(subject.digest, {});
    expect(all.map((r) => [r.digest, r.artifactType])).toEqual([[sigDigest, 'application/sig']]);
    expect(await registry.repository(repo).referrers(subject.digest, { artifactType: 'application/other' })).toEqual([]);
  });

  it('mounts from another repository only when that repository has the blob', async () => {
    const d = await pushBlob(registry, 'mountable');
    const target = registry.repository(parseRepoName('target/app'));
    expect(await target.blobs.mountFrom(parseRepoName('nobody/app'), d)).toBeUndefined();
    expect(await target.blobs.mountFrom(repo, d)).toEqual({ digest: d, size: 9 });
    expect(await target.blobs.stat(d)).toEqual({ digest: d, size: 9 });
  });

  it('serves a blob only through a repository that links it: whole, ranged, past the end, HEAD', async () => {
    const d = await pushBlob(registry, 'served bytes');
    const other = registry.repository(parseRepoName('other/app'));
    expect(await codeOf(other.blobs.serve(d, { method: 'GET' }))).toBe('BLOB_UNKNOWN');
    const blobs = registry.repository(repo).blobs;
    const redirect = await driver.redirectUrl?.(paths.blobData(d), 'GET');
    if (redirect !== undefined) {
      // A driver that hands out URLs (s3) answers every read with one, after the same link check.
      expect(await blobs.serve(d, { method: 'GET', range: () => 'unsatisfiable' })).toMatchObject({ kind: 'redirect', info: { digest: d, size: 12 } });
      return;
    }
    const whole = await blobs.serve(d, { method: 'GET' });
    expect(whole.kind === 'stream' && whole.range === undefined && whole.stream !== undefined).toBe(true);
    if (whole.kind === 'stream' && whole.stream) expect((await whole.stream.toArray()).join('')).toBe('served bytes');
    const part = await blobs.serve(d, { method: 'GET', range: (size) => ({ start: 7, end: size - 1 }) });
    expect(part.kind === 'stream' ? part.range : part.kind).toEqual({ start: 7, end: 11 });
    if (part.kind === 'stream' && part.stream) expect((await part.stream.toArray()).join('')).toBe('bytes');
    expect(await blobs.serve(d, { method: 'GET', range: () => 'unsatisfiable' })).toEqual({ kind: 'unsatisfiable', info: { digest: d, size: 12 } });
    expect(await blobs.serve(d, { method: 'HEAD' })).toEqual({ kind: 'stream', info: { digest: d, size: 12 }, range: undefined, stream: undefined });
  });

  it('lists repositories in lexical order, nested names included', async () => {
    for (const name of ['b', 'a/b', 'a-b', 'a']) {
      const r = registry.repository(parseRepoName(name));
      const s = await r.uploads.start();
      await r.uploads.commit(s.id, digestOf(Buffer.from(name)), body(name));
    }
    expect(await registry.repositories()).toEqual(['a', 'a-b', 'a/b', 'b']);
  });

  it('purges only uploads started before the cut-off, and keeps those without startedat', async () => {
    const uploads = registry.repository(repo).uploads;
    const old = await uploads.start();
    await driver.putContent(paths.uploadStartedAt(repo, old.id), Buffer.from('2020-01-01T00:00:00Z'));
    const fresh = await uploads.start();
    const unknown = await uploads.start();
    await driver.delete(paths.uploadStartedAt(repo, unknown.id));
    const dry = await registry.purgeUploads({ olderThan: new Date('2025-01-01T00:00:00Z'), dryRun: true });
    expect(dry.purged).toEqual([paths.upload(repo, old.id)]);
    expect((await uploads.status(old.id)).size).toBe(0);
    await registry.purgeUploads({ olderThan: new Date('2025-01-01T00:00:00Z'), dryRun: false });
    expect(await codeOf(uploads.status(old.id))).toBe('BLOB_UPLOAD_UNKNOWN');
    expect((await uploads.status(fresh.id)).size).toBe(0);
    expect((await driver.list(paths.uploads(repo))).length).toBe(2);
  });

  it('with delete disabled, deletes are UNSUPPORTED', async () => {
    const locked = createRegistry({ driver, deleteEnabled: false });
    const d = await pushBlob(locked, 'kept');
    expect(await codeOf(locked.repository(repo).blobs.delete(d))).toBe('UNSUPPORTED');
    expect(await codeOf(locked.repository(repo).manifests.delete({ tag: parseTag('v1') }))).toBe('UNSUPPORTED');
  });
});

describe('tag lanes: a conditional tag delete racing a push of that tag', () => {
  /** A memory driver whose reads, writes and deletes each take a random 0-3 ms, so racing calls interleave every which way. */
  function jitteryDriver(): StorageDriver {
    const inner = createMemoryDriver();
    const jitter = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * 3));
    return {
      name: inner.name,
      getContent: async (p, o) => (await jitter(), inner.getContent(p, o)),
      putContent: async (p, d, o) => (await jitter(), inner.putContent(p, d, o)),
      reader: (p, offset, o) => inner.reader(p, offset, o),
      writer: (p, o) => inner.writer(p, o),
      stat: async (p, o) => (await jitter(), inner.stat(p, o)),
      list: (p, o) => inner.list(p, o),
      move: (from, to, o) => inner.move(from, to, o),
      delete: async (p, o) => (await jitter(), inner.delete(p, o)),
      walk: (p, o) => inner.walk(p, o),
    };
  }

  it('never loses the push: the tag ends at the pushed manifest whichever runs first', async () => {
    const registry = createRegistry({ driver: jitteryDriver(), deleteEnabled: true });
    const config = await pushBlob(registry, 'lane config');
    const layer = await pushBlob(registry, 'lane layer');
    const x = imageManifest(config, [layer], { annotations: { which: 'x' } });
    const y = imageManifest(config, [layer], { annotations: { which: 'y' } });
    const manifests = registry.repository(repo).manifests;
    const tag = parseTag('moving');
    if (tag === undefined) throw new Error('bad tag');
    const dx = (await manifests.put({ digest: digestOf(x) }, x, MEDIA_TYPES.ociManifest)).digest;
    const dy = (await manifests.put({ digest: digestOf(y) }, y, MEDIA_TYPES.ociManifest)).digest;
    const outcomes = new Set<boolean>();
    for (let i = 0; i < 150; i++) {
      await manifests.put({ tag }, x, MEDIA_TYPES.ociManifest);
      // Each starts after its own random wait: the delete anywhere from well before the push to late in it.
      const after = <T>(fn: () => Promise<T>): Promise<T> => new Promise((r) => setTimeout(r, Math.random() * 15)).then(fn);
      const [deleted] = await Promise.all([after(() => manifests.deleteTagIf(tag, dx)), after(() => manifests.put({ tag }, y, MEDIA_TYPES.ociManifest))]);
      outcomes.add(deleted);
      expect((await manifests.get({ tag })).digest).toBe(dy);
    }
    expect(await manifests.deleteTagIf(tag, dx)).toBe(false); // it names y now: left alone
    expect(await manifests.deleteTagIf(tag, dy)).toBe(true);
    expect(await codeOf(manifests.get({ tag }))).toBe('MANIFEST_UNKNOWN');
    expect(outcomes.has(true)).toBe(true); // the delete did run first at least once (and the push came after)
  });
});
