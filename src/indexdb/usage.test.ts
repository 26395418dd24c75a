/**
 * The usage tables (usage.ts) over the memory driver and a real LevelDB: `usage`, `usages`,
 * `scopeUsage` and `scopeLinks` against a computation from the tree itself, after racing pushes,
 * mounts, unlinks, manifest deletes and blob data removals, and again after a rebuild.
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
import { type IndexSource, type RepoScope, type ScopeUsage, type UsageFigures, guardIndex } from '../storage/indexing/index-port.js';
import { observeDriver } from '../storage/indexing/index-observer.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import { MEDIA_TYPES } from '../storage/manifests/manifest-format.js';
import { paths } from '../storage/paths.js';
import { type RepoName, parseRepoName, parseTag } from '../storage/reference.js';
import { type Registry, createRegistry } from '../storage/registry.js';
import { type IndexDb, openIndexDb } from './index-db.js';

let dir: string;
let index: IndexDb | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-usage-'));
});
afterEach(async () => {
  await index?.close();
  index = undefined;
  await rm(dir, { recursive: true, force: true });
});

interface World {
  readonly driver: StorageDriver;
  readonly source: IndexSource;
  readonly index: IndexDb;
  readonly reg: Registry;
  /** The driver as the registry writes through it (observed), for what the collector would delete. */
  readonly observed: StorageDriver;
}

async function makeWorld(): Promise<World> {
  const driver = createDriver({ kind: 'inmemory' });
  const source = createIndexSource(driver);
  const log = createLogger({ level: 'error', format: 'json', write: () => undefined });
  const opened = await openIndexDb({ location: join(dir, 'index'), source, log });
  if (!opened) throw new Error('index did not open');
  index = opened;
  return { driver, source, index: opened, reg: createRegistry({ driver, deleteEnabled: true, index: opened }), observed: observeDriver(driver, guardIndex(opened)) };
}

const content = (n: number): Buffer => Buffer.from(`blob number ${n} `.repeat(n + 1));
const BLOBS = Array.from({ length: 6 }, (_, i) => content(i));
const dig = (b: Buffer): Digest => digestOf(b);

async function pushBlob(reg: Registry, repo: RepoName, data: Buffer): Promise<Digest> {
  const uploads = reg.repository(repo).uploads;
  await uploads.commit((await uploads.start()).id, dig(data), Readable.from([data]));
  return dig(data);
}

/** An OCI manifest whose config is `config` and whose layers are `layers` (all pushed to `repo` first). */
async function pushManifest(reg: Registry, repo: RepoName, tag: string, config: Buffer, layers: readonly Buffer[]): Promise<Digest> {
  for (const b of [config, ...layers]) await pushBlob(reg, repo, b);
  const desc = (b: Buffer, mediaType: string): object => ({ mediaType, digest: dig(b), size: b.length });
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: desc(config, 'application/vnd.oci.image.config.v1+json'),
    layers: layers.map((l) => desc(l, 'application/vnd.oci.image.layer.v1.tar')),
  };
  const put = await reg.repository(repo).manifests.put({ tag: parseTag(tag) }, Buffer.from(JSON.stringify(doc)), MEDIA_TYPES.ociManifest);
  return put.digest;
}

/** What the tree says, computed from scratch: each repository's links, and the sizes of their blobs. */
async function fromTree(source: IndexSource): Promise<Map<string, { links: Set<Digest>; manifests: number; tags: number }>> {
  const out = new Map<string, { links: Set<Digest>; manifests: number; tags: number }>();
  for (const repo of await source.repositories()) {
    const links = new Set<Digest>();
    let manifests = 0;
    for await (const d of source.layers(repo)) links.add(d);
    for await (const d of source.revisions(repo)) {
      links.add(d);
      manifests += 1;
    }
    out.set(repo, { links, manifests, tags: (await source.tagNames(repo)).length });
  }
  return out;
}

async function expectedFigures(source: IndexSource): Promise<UsageFigures[]> {
  const tree = await fromTree(source);
  const users = new Map<Digest, number>();
  for (const { links } of tree.values()) for (const d of links) users.set(d, (users.get(d) ?? 0) + 1);
  const figures: UsageFigures[] = [];
  for (const [name, { links, manifests, tags }] of tree) {
    let logicalBytes = 0;
    let sharedBytes = 0;
    for (const d of links) {
      const size = (await source.blob(d))?.size ?? 0;
      logicalBytes += size;
      if ((users.get(d) ?? 0) > 1) sharedBytes += size;
    }
    figures.push({ name: parseRepoName(name), logicalBytes, sharedBytes, exclusiveBytes: logicalBytes - sharedBytes, tags, manifests });
  }
  return figures;
}

async function expectedScope(source: IndexSource, scope: RepoScope): Promise<ScopeUsage & { linked: Set<Digest> }> {
  const linked = new Set<Digest>();
  let repositories = 0;
  for (const [name, { links }] of await fromTree(source)) {
    if (!name.startsWith(scope.prefix) || !scope.accepts(parseRepoName(name))) continue;
    repositories += 1;
    for (const d of links) linked.add(d);
  }
  let bytes = 0;
  for (const d of linked) bytes += (await source.blob(d))?.size ?? 0;
  return { bytes, repositories, linked };
}

/** A glob-like scope: names under `prefix` that `test` admits. */
const scope = (prefix: string, test: (name: string) => boolean = () => true): RepoScope => ({ prefix, accepts: test });

const A = parseRepoName('team/a');
const B = parseRepoName('team/b');
const C = parseRepoName('teamx/c');
const D = parseRepoName('other/d');

describe('usage tables', () => {
  it('answer nothing before the index is ready, then figures, scope bytes and scope links', async () => {
    const w = await makeWorld();
    expect(await w.index.usage(A)).toBeUndefined();
    expect(await w.index.scopeUsage(scope('team/'))).toBeUndefined();
    await w.index.rebuild();
    const [b0, b1, b2, b3] = BLOBS as [Buffer, Buffer, Buffer, Buffer];
    const ma = await pushManifest(w.reg, A, 'v1', b0, [b1, b2]);
    const mb = await pushManifest(w.reg, B, 'v1', b0, [b1]);
    await pushBlob(w.reg, C, b3);
    await pushBlob(w.reg, D, b2);

    const a = await w.index.usage(A);
    const maSize = (await w.source.blob(ma))?.size ?? 0;
    expect(a).toEqual({
      name: A, tags: 1, manifests: 1,
      logicalBytes: b0.length + b1.length + b2.length + maSize,
      sharedBytes: b0.length + b1.length + b2.length, // b0, b1 with team/b; b2 with other/d
      exclusiveBytes: maSize,
    });
    expect(await w.index.usage(parseRepoName('never/pushed'))).toBeUndefined();

    // `team/` holds a and b (not teamx/c): b0, b1, b2 once each, and both manifests.
    const mbSize = (await w.source.blob(mb))?.size ?? 0;
    expect(await w.index.scopeUsage(scope('team/'))).toEqual({ bytes: b0.length + b1.length + b2.length + maSize + mbSize, repositories: 2 });
    // A prefix only narrows; `accepts` decides.
    expect(await w.index.scopeUsage(scope('team', (n) => n.startsWith('teamx/')))).toEqual({ bytes: b3.length, repositories: 1 });
    expect(await w.index.scopeUsage(scope('nobody/'))).toEqual({ bytes: 0, repositories: 0 });

    expect(await w.index.scopeLinks(scope('team/'), dig(b2))).toBe(true);
    expect(await w.index.scopeLinks(scope('team/'), dig(b3))).toBe(false);
    expect(await w.index.scopeLinks(scope('', (n) => n === 'other/d'), dig(b2))).toBe(true);
    expect(await w.index.scopeLinks(scope('', (n) => n === 'other/d'), dig(b1))).toBe(false);
    // other/d's only link to b2 goes: team/a holds b2 alone now.
    await w.reg.repository(D).blobs.delete(dig(b2));
    expect(await w.index.scopeLinks(scope('other/'), dig(b2))).toBe(false);
    expect(await w.index.usage(A)).toMatchObject({ sharedBytes: b0.length + b1.length, exclusiveBytes: b2.length + maSize });
  });

  it('end as the tree ends after racing pushes, mounts, unlinks, deletes and data removals, and after a rebuild', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    const repos = [A, B, C, D];
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
    const ops: (() => Promise<unknown>)[] = [];
    for (let i = 0; i < 160; i += 1) {
      const repo = pick(repos);
      const data = pick(BLOBS);
      switch (rand(6)) {
        case 0:
          ops.push(() => pushBlob(w.reg, repo, data));
          break;
        case 1:
          ops.push(() => w.reg.repository(repo).blobs.mountFrom(pick(repos), dig(data)));
          break;
        case 2:
          ops.push(() => w.reg.repository(repo).blobs.delete(dig(data)));
          break;
        case 3:
          ops.push(() => pushManifest(w.reg, repo, pick(['v1', 'v2']), data, [pick(BLOBS)]));
          break;
        case 4:
          ops.push(async () => {
            const tags = await w.reg.repository(repo).tags();
            const tag = tags[0];
            if (tag !== undefined) await w.reg.repository(repo).manifests.delete({ tag: parseTag(tag) });
          });
          break;
        default:
          // What the collector does to a blob nobody should link (here, maybe someone does).
          ops.push(() => w.observed.delete(paths.blobDir(dig(data))));
      }
    }
    // Eight at a time, racing; failures (a link or tag already gone) are part of the game.
    for (let i = 0; i < ops.length; i += 8) await Promise.allSettled(ops.slice(i, i + 8).map((op) => op()));
    // And at least one blob that is linked loses its data, racing a push of another.
    const linked = [...((await fromTree(w.source)).get(A)?.links ?? [])];
    expect(linked.length).toBeGreaterThan(0);
    await Promise.all([w.observed.delete(paths.blobDir(linked[0] as Digest)), pushBlob(w.reg, A, Buffer.from('late'))]);

    const want = await expectedFigures(w.source);
    expect(want.length).toBeGreaterThan(1);
    expect(await w.index.usages({})).toEqual(want);
    for (const s of [scope(''), scope('team/'), scope('team', (n) => n !== 'team/b')]) {
      const { bytes, repositories, linked } = await expectedScope(w.source, s);
      expect(await w.index.scopeUsage(s)).toEqual({ bytes, repositories });
      for (const data of BLOBS) expect(await w.index.scopeLinks(s, dig(data))).toBe(linked.has(dig(data)));
    }
    await w.index.rebuild();
    expect(await w.index.usages({})).toEqual(want);
  });

  it('pages usages by prefix, after and limit, filling a page from the names `include` admits', async () => {
    const w = await makeWorld();
    await w.index.rebuild();
    for (const repo of [A, B, C, D, parseRepoName('team'), parseRepoName('team-z/e')]) await pushBlob(w.reg, repo, BLOBS[0] as Buffer);
    const names = async (q: Parameters<IndexDb['usages']>[0]): Promise<string[] | undefined> => (await w.index.usages(q))?.map((u) => u.name);
    expect(await names({})).toEqual(['other/d', 'team', 'team-z/e', 'team/a', 'team/b', 'teamx/c']);
    expect(await names({ prefix: 'team/' })).toEqual(['team/a', 'team/b']);
    expect(await names({ prefix: 'team' })).toEqual(['team', 'team-z/e', 'team/a', 'team/b', 'teamx/c']);
    expect(await names({ prefix: 'team', after: 'team/a', limit: 1 })).toEqual(['team/b']);
    expect(await names({ after: 'a', limit: 2 })).toEqual(['other/d', 'team']);
    expect(await names({ include: (n) => n.endsWith('/c') || n === 'team', limit: 5 })).toEqual(['team', 'teamx/c']);
    expect(await names({ prefix: 'zzz' })).toEqual([]);
  });
});
