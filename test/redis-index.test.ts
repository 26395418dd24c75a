/**
 * The listing index in Redis (src/indexdb/redis-index.ts) with a real redis-server, over one memory
 * driver shared by two "replicas" (two registries, each with its own RedisIndex on the same Redis):
 * every answer is compared with what the storage walk answers, and usage figures with what the
 * LevelDB index answers for the same tree. The three-process version on Ceph is
 * test/replicas-shared-state.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { collectGarbage } from '../src/gc/run.js';
import { openIndexDb } from '../src/indexdb/index-db.js';
import { commonPrefix, globMatcher, literalPrefix } from '../src/storage/repo-glob.js';
import type { RepoScope } from '../src/storage/indexing/index-port.js';
import { createRedisClusterLock } from '../src/coordination/cluster-lock.js';
import { type RedisClient, connectRedis } from '../src/coordination/redis-client.js';
import { type RedisIndex, createRedisIndex } from '../src/indexdb/redis-index.js';
import { createLogger } from '../src/log.js';
import { type Digest, digestOf } from '../src/storage/digest.js';
import type { StorageDriver } from '../src/storage/driver/driver.js';
import { createDriver } from '../src/storage/driver/factory.js';
import type { IndexSource } from '../src/storage/indexing/index-port.js';
import { createIndexSource } from '../src/storage/indexing/index-source.js';
import { MEDIA_TYPES } from '../src/storage/manifests/manifest-format.js';
import { type RepoName, parseRepoName, parseTag } from '../src/storage/reference.js';
import { type LocalRegistry, type Registry, createRegistry } from '../src/storage/registry.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { describeWithTool } from './helpers/tools.js';

const body = (data: string): Readable => Readable.from([Buffer.from(data)]);

async function pushBlob(reg: Registry, repo: RepoName, data: string): Promise<Digest> {
  const d = digestOf(Buffer.from(data));
  const uploads = reg.repository(repo).uploads;
  await uploads.commit((await uploads.start()).id, d, body(data));
  return d;
}

/** Pushes an image under `tag` (or, with `subject`, an artifact by digest); answers the manifest digest. */
async function pushImage(reg: Registry, repo: RepoName, tag: string | undefined, seed: string, subject?: Digest): Promise<Digest> {
  const config = await pushBlob(reg, repo, `{"seed":"${seed}"}`);
  const extra = subject ? { artifactType: 'application/sig', subject: { mediaType: MEDIA_TYPES.ociManifest, digest: subject, size: 1 } } : {};
  const desc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: config.length };
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: desc, layers: [], ...extra }));
  const ref = tag === undefined ? { digest: digestOf(content) } : { tag: parseTag(tag) };
  return (await reg.repository(repo).manifests.put(ref, content, MEDIA_TYPES.ociManifest)).digest;
}

/** Pushes an image of `layers` (blob contents) under `tag`; answers the manifest digest. */
async function pushLayered(reg: Registry, repo: RepoName, tag: string, seed: string, layers: readonly string[]): Promise<Digest> {
  const config = await pushBlob(reg, repo, `{"seed":"${seed}"}`);
  const descs = [];
  for (const data of layers) descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: await pushBlob(reg, repo, data), size: data.length });
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: `{"seed":"${seed}"}`.length };
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: configDesc, layers: descs }));
  return (await reg.repository(repo).manifests.put({ tag: parseTag(tag) }, content, MEDIA_TYPES.ociManifest)).digest;
}

const scopeOf = (globs: readonly string[]): RepoScope => ({ prefix: commonPrefix(globs.map(literalPrefix)), accepts: globMatcher(globs) });

/** Catalog (whole and paged), every repository's tags (whole and paged), and referrers of `subjects`. */
async function listings(reg: Registry, subjects: readonly [RepoName, Digest][]): Promise<unknown> {
  const catalog = await reg.repositories();
  const tags: Record<string, unknown> = {};
  for (const name of catalog) {
    const repo = reg.repository(parseRepoName(name));
    const all = await repo.tags();
    tags[name] = { all, first: await repo.tags({ limit: 1 }), rest: await repo.tags({ after: all[0], limit: 100 }) };
  }
  const referrers = await Promise.all(subjects.map(([repo, s]) => reg.repository(repo).referrers(s, {})));
  const pages = [await reg.repositories({ limit: 2 }), await reg.repositories({ after: catalog[1], limit: 2 })];
  return { catalog, pages, tags, referrers };
}

describeWithTool('redis-server', redisAvailability(), 'the listing index in Redis, shared by two replicas', () => {
  let redis: TestRedis;
  let client: RedisClient;
  const indexes: RedisIndex[] = [];
  const warnings: string[] = [];
  const log = createLogger({ level: 'info', format: 'json', write: (line) => warnings.push(line) });

  beforeAll(async () => {
    redis = await startRedis();
    client = await connectRedis({ host: '127.0.0.1', port: redis.port, db: 0, connectTimeoutMs: 2_000, commandTimeoutMs: 5_000, tls: false });
  });
  afterEach(async () => {
    for (const i of indexes.splice(0)) await i.close();
    await redis.command('FLUSHALL');
  });
  afterAll(async () => {
    await client?.close();
    await redis?.stop();
  });

  const replica = (driver: StorageDriver, wrap: (s: IndexSource) => IndexSource = (s) => s): { index: RedisIndex; reg: LocalRegistry } => {
    const lock = createRedisClusterLock({ client, key: 'berth:idx:rebuild:lock' });
    const index = createRedisIndex({ client, source: wrap(createIndexSource(driver)), lock, log });
    indexes.push(index);
    return { index, reg: createRegistry({ driver, deleteEnabled: true, index }) };
  };

  it('answers as the walk does after pushes and deletes on both replicas, by itself, and pages by range', async () => {
    const driver = createDriver({ kind: 'inmemory' });
    const walked = createRegistry({ driver, deleteEnabled: true });
    const a = replica(driver);
    const b = replica(driver);
    expect(await a.index.ready(10_000)).toBe(true);
    const subjects: [RepoName, Digest][] = [];
    for (let i = 0; i < 6; i++) {
      const on = i % 2 === 0 ? a : b;
      const repo = parseRepoName(`team/app-${i % 3}`);
      const d = await pushImage(on.reg, repo, `v${i}`, `s${i}`);
      await pushImage(on.reg, repo, `latest`, `l${i}`);
      await pushImage(on === a ? b.reg : a.reg, repo, undefined, `sig${i}`, d);
      subjects.push([repo, d]);
    }
    await b.reg.repository(parseRepoName('team/app-1')).manifests.delete({ tag: parseTag('v1') });
    const gone = subjects[2];
    if (gone) await a.reg.repository(gone[0]).manifests.delete({ digest: gone[1] });
    // The index itself answers (not the walk), for both replicas.
    expect(await a.index.repositories({})).toEqual(await walked.repositories());
    expect(await b.index.tags(parseRepoName('team/app-0'), { limit: 2 })).toEqual((await walked.repository(parseRepoName('team/app-0')).tags()).slice(0, 2));
    const expected = await listings(walked, subjects);
    expect(await listings(a.reg, subjects)).toEqual(expected);
    expect(await listings(b.reg, subjects)).toEqual(expected);
  }, 60_000);

  it('Redis flushed: not trusted (storage answers), rebuilt by a replica, and then answers as the walk does', async () => {
    const driver = createDriver({ kind: 'inmemory' });
    const walked = createRegistry({ driver, deleteEnabled: true });
    const a = replica(driver);
    expect(await a.index.ready(10_000)).toBe(true);
    for (let i = 0; i < 5; i++) await pushImage(a.reg, parseRepoName(`flush/r${i}`), 't', `f${i}`);
    await redis.command('FLUSHALL');
    expect(await a.index.repositories({})).toBeUndefined();
    expect(await a.reg.repositories()).toEqual(await walked.repositories()); // from the walk meanwhile
    expect(await a.index.ready(10_000)).toBe(true);
    expect(await a.index.repositories({})).toEqual(await walked.repositories());
    expect((await a.index.repositories({}))?.length).toBe(5);
  }, 60_000);

  it('writes on the other replica during a rebuild walk are caught up before the index is trusted', async () => {
    const driver = createDriver({ kind: 'inmemory' });
    const walked = createRegistry({ driver, deleteEnabled: true });
    const seed = createRegistry({ driver, deleteEnabled: true });
    for (let i = 0; i < 4; i++) await pushImage(seed, parseRepoName(`walk/r${i}`), 'old', `w${i}`);
    // A: the rebuilder, whose walk stops after listing repositories until B has written.
    let release!: () => void;
    const written = new Promise<void>((r) => (release = r));
    let walking!: () => void;
    const inWalk = new Promise<void>((r) => (walking = r));
    const a = replica(driver, (s) => ({
      ...s,
      async tagNames(repo, o) {
        const names = await s.tagNames(repo, o);
        walking();
        await written;
        return names;
      },
    }));
    await inWalk;
    const b = replica(driver);
    await pushImage(b.reg, parseRepoName('walk/r0'), 'new', 'n0');
    await pushImage(b.reg, parseRepoName('walk/late'), 'x', 'late');
    await b.reg.repository(parseRepoName('walk/r1')).manifests.delete({ tag: parseTag('old') });
    expect(await a.index.repositories({})).toBeUndefined(); // building: not trusted
    release();
    expect(await a.index.ready(10_000)).toBe(true);
    expect(await listings(a.reg, [])).toEqual(await listings(walked, []));
    expect(await a.index.tags(parseRepoName('walk/r0'), {})).toEqual(['new', 'old']);
  }, 60_000);

  it('keeps usage figures equal to the LevelDB index\'s for the same tree, through pushes, mounts, deletes, a collection and a repository delete on both replicas', async () => {
    const driver = createDriver({ kind: 'inmemory' });
    const a = replica(driver);
    const b = replica(driver);
    expect(await a.index.ready(10_000)).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), 'berth-redis-usage-'));
    const scopes = [scopeOf(['u/**']), scopeOf(['u/team/*']), scopeOf(['u/x', 'u/team/z'])];
    /** What a LevelDB index rebuilt from the tree answers, and what the Redis index answers (through `on`). */
    const compare = async (step: string, on: typeof a): Promise<void> => {
      const level = await openIndexDb({ location: join(dir, step.replace(/\W/g, '-')), source: createIndexSource(driver), log });
      if (!level || !(await level.rebuild())) throw new Error('the LevelDB index did not rebuild');
      try {
        const want = await level.usages({});
        expect(want?.length, step).toBeGreaterThan(0);
        expect(await on.index.usages({}), step).toEqual(want);
        expect(await on.index.usages({ prefix: 'u/team/', limit: 1 }), step).toEqual(await level.usages({ prefix: 'u/team/', limit: 1 }));
        expect(await on.index.usages({ after: 'u/team/y' }), step).toEqual(await level.usages({ after: 'u/team/y' }));
        for (const name of ['u/x', 'u/team/y', 'u/team/z']) expect(await on.index.usage(parseRepoName(name)), `${step} ${name}`).toEqual(await level.usage(parseRepoName(name)));
        for (const scope of scopes) expect(await on.index.scopeUsage(scope), step).toEqual(await level.scopeUsage(scope));
        for (const d of probes) for (const scope of scopes) expect(await on.index.scopeLinks(scope, d), step).toEqual(await level.scopeLinks(scope, d));
      } finally {
        await level.close();
      }
    };
    const probes: Digest[] = [];
    const x = parseRepoName('u/x');
    const y = parseRepoName('u/team/y');
    const z = parseRepoName('u/team/z');
    try {
      // Shared layers between x and y (pushed on different replicas), one mounted into z, own layers each.
      probes.push(await pushLayered(a.reg, x, 'v1', 'x1', ['shared-1', 'shared-2', 'x-own']));
      probes.push(await pushLayered(b.reg, y, 'v1', 'y1', ['shared-1', 'shared-2', 'y-own']));
      await pushLayered(b.reg, x, 'v2', 'x2', ['x-two']);
      const mounted = digestOf(Buffer.from('y-own'));
      probes.push(mounted, digestOf(Buffer.from('shared-1')));
      expect(await b.reg.repository(z).blobs.mountFrom(y, mounted)).toBeDefined();
      await pushLayered(a.reg, z, 'latest', 'z1', ['y-own', 'z-own']);
      const sig = await pushImage(b.reg, z, undefined, 'zsig', probes[0]);
      probes.push(sig);
      await compare('pushed', b);
      // A tag delete, a manifest delete by digest, a layer link removed.
      await a.reg.repository(x).manifests.delete({ tag: parseTag('v2') });
      await b.reg.repository(z).manifests.delete({ digest: sig });
      await a.reg.repository(y).blobs.delete(digestOf(Buffer.from('shared-2')));
      await compare('deleted', a);
      await collectGarbage(b.reg, { graceMs: 0, deleteUntagged: true, dryRun: false });
      await compare('collected', b);
      // A repository delete: taken in item by item, the index stays complete throughout.
      await a.reg.management.deleteRepository(y);
      expect(await client.call('HGET', 'berth:idx:meta', 'state')).toBe('complete');
      expect(a.index.state).toBe('ready');
      await compare('repository deleted', b);
      expect(await b.index.repositories({})).toEqual(['u/team/z', 'u/x']);
      expect(await b.index.tags(y, {})).toBeUndefined();
      // A rebuild gives the same.
      const before = await a.index.usages({});
      expect(await a.index.rebuild()).toBeDefined();
      expect(await b.index.usages({})).toEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('forgets the tickets of refreshes no longer in flight, and a refresh that outlived the trim reads again', async () => {
    const driver = createDriver({ kind: 'inmemory' });
    const a = replica(driver);
    expect(await a.index.ready(10_000)).toBe(true);
    for (let i = 0; i < 5; i++) await pushImage(a.reg, parseRepoName(`trim/r${i}`), 't', `t${i}`);
    const before = Number(await client.call('HLEN', 'berth:idx:applied'));
    expect(before).toBeGreaterThan(10);
    expect(await a.index.trim(true)).toBe(before);
    expect(Number(await client.call('HLEN', 'berth:idx:applied'))).toBe(0);
    expect(Number(await client.call('ZCARD', 'berth:idx:inflight'))).toBe(0);
    // The index still answers as the walk does, and takes new writes.
    await pushImage(a.reg, parseRepoName('trim/r0'), 'again', 'again');
    expect(await a.index.tags(parseRepoName('trim/r0'), {})).toEqual(['again', 't']);
    // A refresh whose in-flight record was given up on is refused by APPLY and reads again with a new ticket.
    let stall!: () => void;
    const stalled = new Promise<void>((r) => (stall = r));
    let reading!: () => void;
    const inRead = new Promise<void>((r) => (reading = r));
    let first = true;
    const slow = replica(driver, (s) => ({
      ...s,
      async tagTarget(repo, tag, o) {
        if (first && tag === 'slow') {
          first = false;
          reading();
          await stalled;
        }
        return s.tagTarget(repo, tag, o);
      },
    }));
    expect(await slow.index.ready(10_000)).toBe(true);
    const pushing = pushImage(slow.reg, parseRepoName('trim/r1'), 'slow', 'slow');
    await inRead;
    await client.call('DEL', 'berth:idx:inflight'); // as TRIM_FLOOR does to a refresh older than REFRESH_MAX_MS
    const ticket = Number(await client.call('GET', 'berth:idx:ticket'));
    stall();
    await pushing;
    expect(Number(await client.call('GET', 'berth:idx:ticket'))).toBeGreaterThan(ticket);
    expect(await a.index.tags(parseRepoName('trim/r1'), {})).toEqual(['slow', 't']);
  }, 60_000);

  it('gives quotas their figures: a push into a quota\'s glob lists no repository folder, and a push over the limit is refused', async () => {
    const memory = createDriver({ kind: 'inmemory' });
    const listed: string[] = [];
    const driver: StorageDriver = { ...memory, name: memory.name, list: (path, o) => (listed.push(path), memory.list(path, o)) };
    const index = createRedisIndex({ client, source: createIndexSource(driver), lock: createRedisClusterLock({ client, key: 'berth:idx:rebuild:lock' }), log });
    indexes.push(index);
    const reg = createRegistry({ driver, deleteEnabled: true, index, quotas: [{ repositories: ['q/**'], storageBytes: 2200 }] });
    expect(await index.ready(10_000)).toBe(true);
    await pushLayered(reg, parseRepoName('q/a'), 'v1', 'q1', ['a'.repeat(400)]);
    listed.length = 0;
    // The second repository shares q/a's layer (it costs nothing more) and adds one of its own.
    await pushLayered(reg, parseRepoName('q/b'), 'v1', 'q2', ['a'.repeat(400), 'b'.repeat(300)]);
    expect(listed.filter((path) => path.includes('/_layers') || path.includes('/_manifests/revisions')), 'folders the quota walk would list').toEqual([]);
    expect(await index.scopeUsage(scopeOf(['q/**']))).toMatchObject({ repositories: 2 });
    // 400 + 300 bytes of layers, two small configs and two manifests (some 1,500 bytes): another image of 1,000 does not fit in 2,200.
    await expect(pushLayered(reg, parseRepoName('q/c'), 'v1', 'q3', ['c'.repeat(600)])).rejects.toMatchObject({ code: 'DENIED' });
  }, 60_000);
});
