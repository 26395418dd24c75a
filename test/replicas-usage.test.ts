/**
 * Usage figures and repository deletes with the index in Redis (issue #18): three `berth serve`
 * replicas over one Ceph RGW bucket and one Redis, behind the round-robin proxy.
 *
 * - Usage: images sharing layers pushed, mounted and deleted through all three replicas; every
 *   replica's `GET /berth/v1/usage` and `…/repositories/<name>/usage` equal what a LevelDB index (the
 *   single-node index, src/indexdb/index-db.ts, opened here over the same bucket and rebuilt from it)
 *   answers for the same tree.
 * - A repository delete on one replica: the index in Redis takes it in item by item, so it stays
 *   complete (same generation) and `berth_index_ready` stays 1 on every replica, and the catalog, tags
 *   and usage every replica answers right after the 202 are right.
 * - The offline `garbage-collect --delete-untagged`, run with a replica's configuration while the
 *   replicas idle: what it removes reaches the index in Redis (still complete, same generation), so
 *   every replica's listings and usage are right after it; `berth usage` reads the index in Redis.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openIndexDb } from '../src/indexdb/index-db.js';
import { createLogger } from '../src/log.js';
import { openDriver } from '../src/storage/driver/factory.js';
import type { UsageFigures } from '../src/storage/indexing/index-port.js';
import { createIndexSource } from '../src/storage/indexing/index-source.js';
import { deleteBucket, describeWithS3, s3DriverOptions } from './helpers/ceph.js';
import { makeImage, pushBlob, pushImage, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Cluster, bucketStorage, startCluster } from './helpers/replicas.js';
import { runBerthCli } from './helpers/berth-cli.js';
import { describeWithTools } from './helpers/tools.js';
import type { UsageJson } from './helpers/usage.js';

const TOOLS = { 'redis-server': 'redis-server' };

describeWithS3('replicas on S3: usage in the index in Redis', (s3) => {
  describeWithTools(TOOLS, 'usage figures and repository delete, three replicas with the index in Redis', () => {
    let work = '';
    let redis: TestRedis;
    let cluster: Cluster;
    const bucket = `berth-usage-${randomBytes(4).toString('hex')}`;
    const shared = makeImage(18_301, { layerCount: 3 });
    const own = makeImage(18_302);
    const other = makeImage(18_303, { layerCount: 2 });

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-replicas-usage-'));
      const storage = await bucketStorage(s3, bucket);
      redis = await startRedis();
      cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h' });
    }, 180_000);

    afterAll(async () => {
      await cluster?.close();
      await redis?.stop();
      await deleteBucket(s3, bucket).catch(() => undefined);
      if (work !== '') await rm(work, { recursive: true, force: true });
    }, 60_000);

    /** What the single-node LevelDB index answers for the bucket as it is now (rebuilt from it). */
    const levelUsages = async (): Promise<UsageFigures[]> => {
      const driver = await openDriver({ kind: 's3', ...s3DriverOptions(s3, '/registry', { bucket }) });
      const log = createLogger({ level: 'warn', format: 'json', write: () => undefined });
      const index = await openIndexDb({ location: await mkdtemp(join(work, 'level-')), source: createIndexSource(driver), log });
      if (!index || !(await index.rebuild())) throw new Error('the LevelDB index did not rebuild');
      try {
        return (await index.usages({})) ?? [];
      } finally {
        await index.close();
      }
    };
    const figuresOf = (u: UsageJson): Omit<UsageJson, 'lastPush' | 'lastPull'> => {
      const { lastPush: _push, lastPull: _pull, ...figures } = u;
      return figures;
    };
    const usagesOn = async (base: string): Promise<Omit<UsageJson, 'lastPush' | 'lastPull'>[]> => {
      const res = await raw(base, 'GET', '/berth/v1/usage?n=1000');
      expect(res.status, `${base}: ${res.body.toString()}`).toBe(200);
      return (res.json() as { repositories: UsageJson[] }).repositories.map(figuresOf);
    };
    const indexReady = async (i: number): Promise<string | undefined> =>
      /^berth_index_ready (\d)/m.exec((await raw(cluster.debugUrl(i), 'GET', '/metrics')).body.toString())?.[1];
    const generation = async (): Promise<string> => redis.command('HGET berth:idx:meta gen');

    it('every replica answers the usage figures a LevelDB index gives for the same bucket, after pushes, mounts and deletes on all three', async () => {
      const proxy = `http://127.0.0.1:${cluster.proxy.port}`;
      // One image in two repositories (pushed on different replicas), one of them holding another of its own.
      expect((await pushImage(cluster.url(0), 'use/a', 'v1', shared)).status).toBe(201);
      expect((await pushImage(cluster.url(1), 'use/b', 'v1', shared)).status).toBe(201);
      expect((await pushImage(cluster.url(2), 'use/b', 'v2', own)).status).toBe(201);
      expect((await pushImage(proxy, 'use/c', 'v1', other)).status).toBe(201);
      expect((await pushImage(proxy, 'use/c', 'v2', own)).status).toBe(201);
      // A layer of `other` mounted into a, and a blob uploaded into a alone (linked, in no manifest).
      const layer = other.layers[0];
      if (layer === undefined) throw new Error('no layer');
      expect((await raw(cluster.url(1), 'POST', `/v2/use/a/blobs/uploads/?mount=${layer.digest}&from=use/c`)).status).toBe(201);
      await pushBlob(cluster.url(2), 'use/a', own.config);
      // Deletes on each replica: a tag, a manifest by digest, a layer link.
      expect((await raw(cluster.url(0), 'DELETE', '/v2/use/c/manifests/v2')).status).toBe(202);
      expect((await raw(cluster.url(1), 'DELETE', `/v2/use/b/manifests/${own.manifest.digest}`)).status).toBe(202);
      expect((await raw(cluster.url(2), 'DELETE', `/v2/use/c/blobs/${other.layers[1]?.digest ?? ''}`)).status).toBe(202);

      const want = await levelUsages();
      expect(want.map((u) => u.name)).toEqual(['use/a', 'use/b', 'use/c']);
      expect(want.find((u) => u.name === 'use/b')).toMatchObject({ sharedBytes: want.find((u) => u.name === 'use/b')?.logicalBytes });
      for (const i of [0, 1, 2]) {
        expect(await usagesOn(cluster.url(i)), `replica ${i}`).toEqual(want);
        for (const u of want) {
          const one = await raw(cluster.url(i), 'GET', `/berth/v1/repositories/${u.name}/usage`);
          expect(one.status).toBe(200);
          expect(figuresOf(one.json() as UsageJson), `replica ${i} ${u.name}`).toEqual(u);
        }
      }
    }, 180_000);

    it('a repository delete keeps the index complete and ready on every replica, with catalog, tags and usage right at once', async () => {
      for (const i of [0, 1, 2]) expect(await indexReady(i), `replica ${i}`).toBe('1');
      const before = await generation();
      const deleted = await raw(cluster.url(1), 'DELETE', '/berth/v1/repositories/use/b');
      expect(deleted.status).toBe(202);
      const catalogs = await Promise.all([0, 1, 2].map(async (i) => (await raw(cluster.url(i), 'GET', '/v2/_catalog')).json()));
      for (const i of [0, 1, 2]) expect(await indexReady(i), `replica ${i}`).toBe('1');
      expect(await redis.command('HGET berth:idx:meta state')).toBe('$8\r\ncomplete\r\n');
      expect(await generation()).toBe(before);
      for (const catalog of catalogs) expect(catalog).toEqual({ repositories: ['use/a', 'use/c'] });
      const want = await levelUsages();
      // What use/a shared only with use/b is its own now.
      expect(want.find((u) => u.name === 'use/a')?.exclusiveBytes).toBeGreaterThan(0);
      for (const i of [0, 1, 2]) {
        expect((await raw(cluster.url(i), 'GET', '/v2/use/b/tags/list')).status, `replica ${i}`).toBe(404);
        expect((await raw(cluster.url(i), 'GET', '/berth/v1/repositories/use/b/usage')).status, `replica ${i}`).toBe(404);
        expect(await usagesOn(cluster.url(i)), `replica ${i}`).toEqual(want);
      }
    }, 180_000);

    it('an offline garbage-collect --delete-untagged reaches the index in Redis: every replica answers right after it, and berth usage reads the index', async () => {
      // use/c's tag v1 moves to a new image: the old one is untagged, for the collector to remove.
      const moved = makeImage(18_304);
      expect((await pushImage(cluster.url(0), 'use/c', 'v1', moved)).status).toBe(201);
      const before = await generation();
      const config = join(work, 'replica-1.yml');
      const gc = await runBerthCli(['garbage-collect', '--delete-untagged', config], { timeoutMs: 120_000 });
      expect(gc.code, gc.stderr).toBe(0);
      expect(gc.stdout).toContain(`manifest eligible for deletion: ${other.manifest.digest}`);
      expect(await generation()).toBe(before);
      expect(await redis.command('HGET berth:idx:meta state')).toBe('$8\r\ncomplete\r\n');
      const want = await levelUsages();
      // use/c's untagged manifests (other, and own whose tag was deleted) are gone.
      expect(want.find((u) => u.name === 'use/c')).toMatchObject({ manifests: 1, tags: 1 });
      for (const i of [0, 1, 2]) {
        expect(await indexReady(i), `replica ${i}`).toBe('1');
        expect(await usagesOn(cluster.url(i)), `replica ${i}`).toEqual(want);
        const gone = await raw(cluster.url(i), 'GET', `/v2/use/c/manifests/${other.manifest.digest}`);
        expect(gone.status, `replica ${i}`).toBe(404);
      }
      const table = await runBerthCli(['usage', 'use/', config], { timeoutMs: 60_000 });
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/^use\/c\s/m);
      expect(table.stdout).toContain('2 repositories');
    }, 240_000);
  });
});
