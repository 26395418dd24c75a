/**
 * The index over the memory driver (storage) and a real LevelDB in a temporary directory: trust (never
 * before this process rebuilt it), changes applied by re-reading, changes during a rebuild, paging,
 * and every way it can fail, in each case compared with what the walk answers.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRegistryError } from '../errors.js';
import { createLogger } from '../log.js';
import { type Digest, digestOf } from '../storage/digest.js';
import { DriverError, type StorageDriver } from '../storage/driver/driver.js';
import { createDriver } from '../storage/driver/factory.js';
import { type IndexSource, guardIndex } from '../storage/indexing/index-port.js';
import { observeDriver } from '../storage/indexing/index-observer.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import { MEDIA_TYPES } from '../storage/manifests/manifest-format.js';
import { paths } from '../storage/paths.js';
import { type RepoName, parseRepoName, parseTag } from '../storage/reference.js';
import { type LocalRegistry, type Registry, createRegistry } from '../storage/registry.js';
import { type IndexDb, openIndexDb } from './index-db.js';

const APP = parseRepoName('team/app');
const body = (data: string): Readable => Readable.from([Buffer.from(data)]);

/** A promise and the function that resolves it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

interface World {
  readonly driver: StorageDriver;
  readonly location: string;
  readonly warnings: string[];
  /** The registry that reports to the index and asks it first. */
  indexed: LocalRegistry;
  /** The same storage without an index: what the walk answers. */
  readonly walked: Registry;
  index: IndexDb;
  /** Opens (again) an index over the same storage and database directory, not yet rebuilt. */
  reopen(source?: (s: IndexSource) => IndexSource): Promise<IndexDb>;
}

let dir: string;
const opened: IndexDb[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-indexdb-'));
});
afterEach(async () => {
  for (const index of opened.splice(0)) await index.close();
  await rm(dir, { recursive: true, force: true });
});

async function makeWorld(source: (s: IndexSource) => IndexSource = (s) => s): Promise<World> {
  const driver = createDriver({ kind: 'inmemory' });
  const warnings: string[] = [];
  const log = createLogger({ level: 'warn', format: 'json', write: (line) => warnings.push(line) });
  const location = join(dir, 'berth', 'index');
  const open = async (wrap: (s: IndexSource) => IndexSource): Promise<IndexDb> => {
    const index = await openIndexDb({ location, source: wrap(createIndexSource(driver)), log });
    if (!index) throw new Error(`index did not open: ${warnings.join('')}`);
    opened.push(index);
    return index;
  };
  const index = await open(source);
  const world: World = {
    driver,
    location,
    warnings,
    index,
    indexed: createRegistry({ driver, deleteEnabled: true, index }),
    walked: createRegistry({ driver, deleteEnabled: true }),
    async reopen(wrap = (s) => s) {
      await world.index.close();
      world.index = await open(wrap);
      world.indexed = createRegistry({ driver, deleteEnabled: true, index: world.index });
      return world.index;
    },
  };
  return world;
}

async function pushBlob(reg: Registry, repo: RepoName, data: string): Promise<Digest> {
  const d = digestOf(Buffer.from(data));
  const uploads = reg.repository(repo).uploads;
  await uploads.commit((await uploads.start()).id, d, body(data));
  return d;
}

function image(config: Digest, extra: object = {}): Buffer {
  const desc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 };
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: desc, layers: [], ...extra }));
}

/** Pushes an image (and its config) under `tag`; answers the manifest digest. */
async function pushImage(reg: Registry, repo: RepoName, tag: string, seed: string, extra: object = {}): Promise<Digest> {
  const config = await pushBlob(reg, repo, `{"seed":"${seed}"}`);
  const put = await reg.repository(repo).manifests.put({ tag: parseTag(tag) }, image(config, extra), MEDIA_TYPES.ociManifest);
  return put.digest;
}

/** Pushes an artifact whose subject is `subject`, by digest; answers its digest. */
async function pushReferrer(reg: Registry, repo: RepoName, subject: Digest, artifactType: string): Promise<Digest> {
  const config = await pushBlob(reg, repo, '{}');
  const extra = { artifactType, subject: { mediaType: MEDIA_TYPES.ociManifest, digest: subject, size: 1 }, annotations: { at: artifactType } };
  const content = image(config, extra);
  return (await reg.repository(repo).manifests.put({ digest: digestOf(content) }, content, MEDIA_TYPES.ociManifest)).digest;
}

/** Everything a client can list: catalog (whole and in pages), tags (whole and paged) and referrers. */
async function listings(reg: Registry, subjects: readonly [RepoName, Digest][], extraRepos: readonly string[] = []): Promise<unknown> {
  const catalog = await reg.repositories();
  const tags: Record<string, unknown> = {};
  for (const name of [...catalog, ...extraRepos, 'never/pushed']) {
    const repo = reg.repository(parseRepoName(name));
    try {
      const all = await repo.tags();
      tags[name] = { all, first: await repo.tags({ limit: 1 }), rest: await repo.tags({ after: all[0], limit: 100 }) };
    } catch (err) {
      tags[name] = isRegistryError(err) ? err.code : String(err);
    }
  }
  const referrers: unknown[] = [];
  for (const [repo, subject] of subjects) {
    referrers.push(await reg.repository(repo).referrers(subject, {}));
    referrers.push(await reg.repository(repo).referrers(subject, { artifactType: 'application/sig' }));
  }
  const pages = [await reg.repositories({ limit: 2 }), await reg.repositories({ after: catalog[1], limit: 2 }), await reg.repositories({ after: 'zzz' })];
  return { catalog, pages, tags, referrers };
}

/** The index answers by itself (not through the walk), and what it answers is what the walk answers. */
async function expectIndexAgrees(w: World, subjects: readonly [RepoName, Digest][] = [], extraRepos: readonly string[] = []): Promise<void> {
  expect(w.index.state).toBe('ready');
  expect(await w.index.repositories({})).toEqual(await w.walked.repositories());
  expect(await listings(w.indexed, subjects, extraRepos)).toEqual(await listings(w.walked, subjects, extraRepos));
}

describe('index trust', () => {
  it('answers nothing until this process has rebuilt it, then what the walk answers', async () => {
    const w = await makeWorld();
    const v1 = await pushImage(w.walked, APP, 'v1', 'a');
    await pushImage(w.walked, parseRepoName('other'), 'latest', 'b');
    const sig = await pushReferrer(w.walked, APP, v1, 'application/sig');
    expect(w.index.state).toBe('rebuilding');
    expect(await w.index.repositories({})).toBeUndefined();
    expect(await w.index.tags(APP, {})).toBeUndefined();
    expect(await w.indexed.repositories()).toEqual(['other', 'team/app']); // from the walk meanwhile

    const report = await w.index.rebuild();
    expect(report).toMatchObject({ generation: 1, repositories: 2, tags: 2, referrers: 1 });
    expect(await w.index.referrers(APP, v1)).toEqual([
      { mediaType: MEDIA_TYPES.ociManifest, digest: sig, size: expect.any(Number), artifactType: 'application/sig', annotations: { at: 'application/sig' } },
    ]);
    await expectIndexAgrees(w, [[APP, v1]]);
    expect(await w.index.generation()).toMatchObject({ generation: 1, state: 'complete', repositories: 2, tags: 2, referrers: 1 });
  });

  it('a database from an earlier run is never trusted: storage changed behind its back is what answers', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const v1 = await pushImage(w.indexed, APP, 'v1', 'a');
    await pushImage(w.indexed, APP, 'v2', 'b');
    await pushReferrer(w.indexed, APP, v1, 'application/sig');
    await w.index.close();
    // Behind its back: a tag removed, a referrer removed, a repository added.
    await w.walked.repository(APP).manifests.delete({ tag: parseTag('v2') });
    for (const d of (await w.walked.repository(APP).referrers(v1, {})).map((r) => r.digest)) {
      await w.walked.repository(APP).manifests.delete({ digest: d });
    }
    await pushImage(w.walked, parseRepoName('copied/in'), 'x', 'c');

    const index = await w.reopen();
    expect(await index.generation()).toMatchObject({ generation: 1, state: 'complete' });
    expect(await index.repositories({})).toBeUndefined();
    expect(await index.tags(APP, {})).toBeUndefined();
    expect(await index.referrers(APP, v1)).toBeUndefined();
    expect(await w.indexed.repository(APP).tags()).toEqual(['v1']);
    await index.rebuild();
    expect(await index.generation()).toMatchObject({ generation: 2, state: 'complete' });
    await expectIndexAgrees(w, [[APP, v1]]);
    expect(await index.referrers(APP, v1)).toEqual([]);
  });

  it('a rebuild killed half-way (a database left `building`) is rebuilt at the next start', async () => {
    const w = await makeWorld();
    await pushImage(w.walked, APP, 'v1', 'a');
    const held = gate();
    const index = await w.reopen((s) => ({ ...s, tagNames: async (r, o) => (await held.promise, s.tagNames(r, o)) }));
    void index.rebuild();
    await new Promise((r) => setTimeout(r, 20));
    expect(await index.generation()).toMatchObject({ generation: 1, state: 'building' });
    const closing = index.close(); // as far as the database knows, the process died here
    held.open();
    await closing;
    const again = await w.reopen();
    expect(await again.repositories({})).toBeUndefined();
    expect(await again.rebuild()).toMatchObject({ generation: 2, tags: 1 });
    await expectIndexAgrees(w);
  });
});

describe('index changes', () => {
  it('keeps up with pushes, re-tags, deletes by tag and by digest, blob deletes and mounts', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const app = w.indexed.repository(APP);
    const v1 = await pushImage(w.indexed, APP, 'v1', 'a');
    const subjects: [RepoName, Digest][] = [[APP, v1]];
    await expectIndexAgrees(w, subjects);

    await pushImage(w.indexed, APP, 'v2', 'b');
    await app.manifests.put({ tag: parseTag('latest') }, (await app.manifests.get({ digest: v1 })).content, undefined);
    const sig = await pushReferrer(w.indexed, APP, v1, 'application/sig');
    await pushReferrer(w.indexed, APP, v1, 'application/sbom');
    await expectIndexAgrees(w, subjects);
    expect((await w.index.referrers(APP, v1))?.length).toBe(2);

    await pushImage(w.indexed, APP, 'latest', 'c'); // re-tag
    await app.manifests.delete({ tag: parseTag('v2') });
    await app.manifests.delete({ digest: sig });
    await expectIndexAgrees(w, subjects);

    await app.manifests.delete({ digest: v1 }); // removes v1 (and nothing else points at it now)
    const nested = parseRepoName('team/app/nested');
    const config = await pushBlob(w.indexed, APP, 'mounted');
    await w.indexed.repository(nested).blobs.mountFrom(APP, config);
    await w.indexed.repository(parseRepoName('team')).blobs.mountExisting(config);
    await expectIndexAgrees(w, subjects);
    expect(await w.index.repositories({})).toEqual(['team', 'team/app', 'team/app/nested']);

    // The memory driver has no empty folders: unlinking a repository's only blob removes the repository.
    await w.indexed.repository(nested).blobs.delete(config);
    await expectIndexAgrees(w, subjects, ['team/app/nested']);
    expect(await w.index.repositories({})).toEqual(['team', 'team/app']);
  });

  it('reports that arrive in any order end as storage ends, because each one re-reads', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const d = await pushImage(w.indexed, APP, 'racy', 'a');
    // Two writers raced: the tag was removed last, but the report of the earlier write comes last.
    await w.walked.repository(APP).manifests.delete({ tag: parseTag('racy') });
    await w.index.onChange({ kind: 'tag', repo: APP, tag: parseTag('racy') });
    await w.index.onChange({ kind: 'tag', repo: APP, tag: parseTag('racy') });
    expect(await w.index.tags(APP, {})).toEqual([]);
    await w.walked.repository(APP).manifests.put({ tag: parseTag('racy') }, (await w.walked.repository(APP).manifests.get({ digest: d })).content, undefined);
    await Promise.all([w.index.onChange({ kind: 'tag', repo: APP, tag: parseTag('racy') }), w.index.onChange({ kind: 'tag', repo: APP, tag: parseTag('racy') })]);
    expect(await w.index.tags(APP, {})).toEqual(['racy']);
  });

  it('changes made during the rebuild are not lost, even where the walk read the old state', async () => {
    const w = await makeWorld();
    const v1 = await pushImage(w.walked, APP, 'v1', 'a');
    const old = await pushImage(w.walked, APP, 'old', 'b');
    const sig = await pushReferrer(w.walked, APP, v1, 'application/sig');
    const walkRead = gate();
    const release = gate();
    // The walk reads tag `old` and the referrer, then stalls before writing them.
    const slow = (s: IndexSource): IndexSource => ({
      ...s,
      tagTarget: async (r, t, o) => {
        const value = await s.tagTarget(r, t, o);
        if (t === 'old') {
          walkRead.open();
          await release.promise;
        }
        return value;
      },
    });
    const index = await w.reopen(slow);
    const rebuilt = index.rebuild();
    await walkRead.promise;
    // Meanwhile: the tag the walk read is deleted, the referrer deleted, a repository and a tag added.
    await w.indexed.repository(APP).manifests.delete({ tag: parseTag('old') });
    await w.indexed.repository(APP).manifests.delete({ digest: sig });
    await pushImage(w.indexed, APP, 'new', 'c');
    const added = parseRepoName('added/during/rebuild');
    await pushImage(w.indexed, added, 'v1', 'd');
    expect(index.state).toBe('rebuilding');
    release.open();
    expect(await rebuilt).toBeDefined();
    await expectIndexAgrees(w, [[APP, v1], [APP, old]]);
    expect(await index.tags(APP, {})).toEqual(['new', 'v1']);
    expect(await index.referrers(APP, v1)).toEqual([]);
  });

  it('a repository delete is taken in item by item, staying ready, also racing pushes to it and during a rebuild', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const v1 = await pushImage(w.indexed, APP, 'v1', 'a');
    await pushImage(w.indexed, APP, 'v2', 'b');
    await pushReferrer(w.indexed, APP, v1, 'application/sig');
    const kept = parseRepoName('team/kept');
    await pushImage(w.indexed, kept, 'v1', 'a'); // shares v1's config and manifest with team/app
    const nested = parseRepoName('team/app/nested');
    await pushImage(w.indexed, nested, 'n1', 'c');
    const generation = (await w.index.generation())?.generation;

    await w.indexed.management.deleteRepository(APP);
    expect(w.index.state).toBe('ready');
    expect(await w.index.tags(APP, {})).toBeUndefined(); // not known: storage says NAME_UNKNOWN
    expect(await w.index.referrers(APP, v1)).toBeUndefined();
    await expectIndexAgrees(w, [[APP, v1], [kept, v1]], [APP]);
    const usages = await w.index.usages({});
    expect(usages?.map((u) => u.name)).toEqual(['team/app/nested', 'team/kept']);
    expect(usages?.find((u) => u.name === kept)?.sharedBytes).toBe(0);

    // Deletes racing pushes of new tags to the same repository, many times: the index ends as storage ends.
    for (let round = 0; round < 5; round += 1) {
      await pushImage(w.indexed, APP, 'again', `r${round}`);
      // The push may lose its upload or its blob's link to the delete: refused, as a client would be.
      const lostToDelete = (err: unknown): boolean => isRegistryError(err, 'MANIFEST_BLOB_UNKNOWN') || isRegistryError(err, 'BLOB_UPLOAD_UNKNOWN');
      await Promise.all([
        w.indexed.management.deleteRepository(APP).catch((err: unknown) => (isRegistryError(err, 'NAME_UNKNOWN') ? undefined : Promise.reject(err))),
        pushImage(w.indexed, APP, `late${round}`, `l${round}`).catch((err: unknown) => (lostToDelete(err) ? undefined : Promise.reject(err))),
      ]);
      expect(w.index.state).toBe('ready');
      await expectIndexAgrees(w, [[kept, v1]], [APP]);
    }
    expect((await w.index.generation())?.generation).toBe(generation);
    const raced = await w.index.usages({});
    await w.index.rebuild();
    expect(await w.index.usages({})).toEqual(raced);

    // During a rebuild the delete is recorded, and taken in item by item when the walk is done.
    const walkRead = gate();
    const release = gate();
    const index = await w.reopen((s) => ({
      ...s,
      tagNames: async (r, o) => {
        if (r === nested) {
          walkRead.open();
          await release.promise;
        }
        return s.tagNames(r, o);
      },
    }));
    const rebuilt = index.rebuild();
    await walkRead.promise;
    await w.indexed.management.deleteRepository(kept);
    release.open();
    expect(await rebuilt).toBeDefined();
    await expectIndexAgrees(w, [[kept, v1]], [kept]);
  });

  it('a change it cannot attribute sends it back to a rebuild, and storage answers meanwhile', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    await pushImage(w.indexed, APP, 'v1', 'a');
    await pushImage(w.indexed, parseRepoName('doomed'), 'v1', 'b');
    const observed = observeDriver(w.driver, guardIndex(w.index));
    await observed.delete(paths.repo(parseRepoName('doomed')));
    expect(w.index.state).not.toBe('ready');
    expect(await w.indexed.repositories()).toEqual(['team/app']);
    expect(await w.index.ready()).toBe(true);
    await expectIndexAgrees(w, [], ['doomed']);
  });

  it('keeps blob descriptors as hints: sizes and media types from manifests, gone with the blob', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const m = await pushImage(w.indexed, APP, 'v1', 'a');
    const config = digestOf(Buffer.from('{"seed":"a"}'));
    expect(await w.index.blobHint(config)).toEqual({ size: 2, mediaType: 'application/vnd.oci.image.config.v1+json' });
    expect(await w.index.blobHint(m)).toMatchObject({ mediaType: MEDIA_TYPES.ociManifest });
    await observeDriver(w.driver, guardIndex(w.index)).delete(paths.blobDir(config));
    expect(await w.index.blobHint(config)).toBeUndefined();
  });
});

describe('index failures', () => {
  it('a repository storage cannot read is left to storage; the others are answered', async () => {
    const w = await makeWorld();
    await pushImage(w.walked, APP, 'v1', 'a');
    const bad = parseRepoName('bad');
    await pushImage(w.walked, bad, 'v1', 'b');
    const index = await w.reopen((s) => ({
      ...s,
      tagNames: async (r, o) => {
        if (r === 'bad') throw new DriverError('DRIVER_FAILURE', 'inmemory', 'EACCES');
        return s.tagNames(r, o);
      },
    }));
    await index.rebuild();
    expect(index.state).toBe('ready');
    expect(await index.tags(parseRepoName('bad'), {})).toBeUndefined();
    expect(await index.tags(APP, {})).toEqual(['v1']);
    expect(await w.indexed.repository(bad).tags()).toEqual(['v1']);
    expect(w.warnings.join('')).toContain('could not be read');
  });

  it('an index that fails turns itself off with a warning, and storage answers', async () => {
    const w = await makeWorld();
    let broken = false;
    const index = await w.reopen((s) => ({
      ...s,
      revisionFacts: async (d, o) => {
        if (broken) throw new Error('LevelDB went away');
        return s.revisionFacts(d, o);
      },
    }));
    await index.rebuild();
    broken = true;
    const v1 = await pushImage(w.indexed, APP, 'v1', 'a');
    expect(index.state).toBe('failed');
    expect(w.warnings.join('')).toContain('until restart');
    expect(await index.repositories({})).toBeUndefined();
    expect(await listings(w.indexed, [[APP, v1]])).toEqual(await listings(w.walked, [[APP, v1]]));
  });

  it('a damaged database directory is replaced (with a warning); a locked one is left alone', async () => {
    const w = await makeWorld();
    await pushImage(w.walked, APP, 'v1', 'a');
    await w.index.close();
    for (const f of await readdir(w.location)) if (f !== 'LOCK') await writeFile(join(w.location, f), 'garbage\n');
    const index = await w.reopen();
    expect(w.warnings.join('')).toContain('damaged');
    await index.rebuild();
    await expectIndexAgrees(w);

    const warned = w.warnings.length;
    const log = createLogger({ level: 'warn', format: 'json', write: (line) => w.warnings.push(line) });
    expect(await openIndexDb({ location: w.location, source: createIndexSource(w.driver), log })).toBeUndefined();
    expect(w.warnings.slice(warned).join('')).toContain('cannot open');
    expect(index.state).toBe('ready');
  });

  it('closing during a rebuild stops it quietly', async () => {
    const w = await makeWorld();
    await pushImage(w.walked, APP, 'v1', 'a');
    const held = gate();
    const index = await w.reopen((s) => ({ ...s, repositories: async (o) => (await held.promise, s.repositories(o)) }));
    const rebuilt = index.rebuild();
    const ready = index.ready();
    await index.close();
    held.open();
    expect(await rebuilt).toBeUndefined();
    expect(await ready).toBe(false);
    expect(index.state).toBe('closed');
    expect(w.warnings).toEqual([]);
  });
});
