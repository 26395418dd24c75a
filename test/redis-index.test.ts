/**
 * The listing index in Redis (src/indexdb/redis-index.ts) with a real redis-server, over one memory
 * driver shared by two "replicas" (two registries, each with its own RedisIndex on the same Redis):
 * every answer is compared with what the storage walk answers. The three-process version on Ceph is
 * test/replicas-shared-state.test.ts.
 */
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
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
import { type Registry, createRegistry } from '../src/storage/registry.js';
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

  const replica = (driver: StorageDriver, wrap: (s: IndexSource) => IndexSource = (s) => s): { index: RedisIndex; reg: Registry } => {
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
});
