/**
 * What replicas over one S3 bucket (Ceph RGW) share beyond the blobs (issue #18): three `berth serve`
 * processes with one Redis, behind the round-robin proxy of test/helpers/replicas.ts.
 *
 * - One issuer key: the built-in issuer with no `signingkey` file. The replicas start at the same
 *   moment, each finds no key in the bucket, generates one and writes it with `If-None-Match: *`; one
 *   write wins and the others read the winner's back. A token from replica 1 then works on replica 3,
 *   and on a replica restarted afterwards.
 * - One listing index, in Redis: images pushed and deleted through all three replicas, and the
 *   catalog and tag lists (whole and paged) the replicas answer from Redis equal what a fourth Berth
 *   without Redis (which walks the bucket) answers. Redis flushed: listings stay right (from storage)
 *   and the index is rebuilt by a replica.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bearer, getToken, pushImageWith, writeHtpasswd } from './helpers/auth.js';
import { deleteBucket, describeWithS3, listKeys } from './helpers/ceph.js';
import { makeImage, pushImage, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { type Cluster, bucketStorage, startCluster } from './helpers/replicas.js';
import { freePort } from './helpers/tools.js';
import { describeWithTools } from './helpers/tools.js';

const TOOLS = { 'redis-server': 'redis-server' };

describeWithS3('replicas on S3 share state', (s3) => {
  describeWithTools(TOOLS, 'one issuer key for three replicas started together (built-in issuer, no signingkey)', () => {
    let work = '';
    let redis: TestRedis;
    let cluster: Cluster;
    const bucket = `berth-key-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-shared-key-'));
      const htpasswd = await writeHtpasswd(work, { alice: 'wonderland' });
      const storage = await bucketStorage(s3, bucket);
      redis = await startRedis();
      const auth = [
        'auth:', '  builtin:', `    htpasswd: ${JSON.stringify(htpasswd)}`, '    service: berth', '    issuer: berth',
        '    rules:', '      - repositories: ["**"]', '        users: [alice]', '        actions: ["*"]', '        catalog: true',
      ];
      cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h', extraYaml: auth, together: true });
    }, 180_000);

    afterAll(async () => {
      await cluster?.close();
      await redis?.stop();
      await deleteBucket(s3, bucket).catch(() => undefined);
      if (work !== '') await rm(work, { recursive: true, force: true });
    }, 60_000);

    it('the key is one object in the bucket, outside docker/registry/v2, and every replica publishes its public half', async () => {
      const keys = await listKeys(s3, bucket, 'registry/berth/');
      expect(keys).toEqual(['registry/berth/token-signing-key.pem']);
      const jwks = await Promise.all([0, 1, 2].map(async (i) => (await raw(cluster.url(i), 'GET', '/auth/jwks')).body.toString()));
      // One key: the same JWKS on every replica.
      expect(new Set(jwks).size).toBe(1);
      expect(JSON.parse(jwks[0] ?? '{}')).toMatchObject({ keys: [{ kty: 'EC', crv: 'P-256' }] });
    });

    it('a token from replica 1 is accepted by replica 3 (and 2), for reads and pushes', async () => {
      const scope = 'repository:shared/key:pull,push';
      const answer = await getToken(cluster.url(0), { user: 'alice', password: 'wonderland', service: 'berth', scopes: [scope] });
      expect(answer.status).toBe(200);
      for (const i of [2, 1]) {
        const v2 = await raw(cluster.url(i), 'GET', '/v2/', { headers: bearer(answer.token) });
        expect(v2.status, `replica ${i + 1}: ${v2.body.toString()}`).toBe(200);
      }
      await pushImageWith(cluster.url(2), 'shared/key', 'v1', makeImage(18_001), bearer(answer.token));
      const pulled = await raw(cluster.url(1), 'GET', '/v2/shared/key/manifests/v1', { headers: bearer(answer.token) });
      expect(pulled.status).toBe(200);
      // Without a token the same request is refused: the check is real.
      expect((await raw(cluster.url(2), 'GET', '/v2/shared/key/manifests/v1')).status).toBe(401);
    }, 60_000);

    it('a replica restarted later reads the stored key: tokens issued before still work on it', async () => {
      const answer = await getToken(cluster.url(1), { user: 'alice', password: 'wonderland', service: 'berth', scopes: ['repository:shared/key:pull'] });
      expect(answer.status).toBe(200);
      await cluster.kill(2);
      await cluster.start(2);
      const res = await raw(cluster.url(2), 'GET', '/v2/shared/key/manifests/v1', { headers: bearer(answer.token) });
      expect(res.status).toBe(200);
      expect(await listKeys(s3, bucket, 'registry/berth/')).toEqual(['registry/berth/token-signing-key.pem']);
    }, 120_000);
  });

  describeWithTools(TOOLS, 'one listing index in Redis for three replicas', () => {
    let work = '';
    let redis: TestRedis;
    let cluster: Cluster;
    let walker: BerthProcess;
    let walkerUrl = '';
    const bucket = `berth-index-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-shared-index-'));
      const storage = await bucketStorage(s3, bucket);
      redis = await startRedis();
      cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h' });
      const port = await freePort();
      walkerUrl = `http://127.0.0.1:${port}`;
      const config = ['version: 0.1', 'log:', '  level: info', 'http:', `  addr: 127.0.0.1:${port}`, '  secret: one-secret-for-every-replica', 'storage:', ...storage.yaml, ''];
      walker = await startBerthProcess({ config: config.join('\n'), configPath: join(work, 'walker.yml'), readyTimeoutMs: 60_000 });
    }, 180_000);

    afterAll(async () => {
      await walker?.stop();
      await cluster?.close();
      await redis?.stop();
      await deleteBucket(s3, bucket).catch(() => undefined);
      if (work !== '') await rm(work, { recursive: true, force: true });
    }, 60_000);

    /** Catalog whole and in pages of 2 (following Link), and every repository's tags whole and in pages of 3. */
    const listings = async (base: string): Promise<unknown> => {
      const get = async (path: string): Promise<{ body: unknown; next: string | undefined }> => {
        const res = await raw(base, 'GET', path);
        if (res.status !== 200) throw new Error(`${path}: ${res.status} ${res.body.toString()}`);
        const link = res.headers['link'];
        const next = typeof link === 'string' ? /<([^>]+)>/.exec(link)?.[1] : undefined;
        return { body: res.json(), next };
      };
      const paged = async (first: string): Promise<unknown[]> => {
        const pages: unknown[] = [];
        for (let path: string | undefined = first; path !== undefined && pages.length < 100;) {
          const page = await get(path);
          pages.push(page.body);
          path = page.next;
        }
        return pages;
      };
      const catalog = (await get('/v2/_catalog')).body as { repositories: string[] };
      const tags: Record<string, unknown> = {};
      for (const repo of catalog.repositories) tags[repo] = { all: (await get(`/v2/${repo}/tags/list`)).body, pages: await paged(`/v2/${repo}/tags/list?n=3`) };
      return { catalog, pages: await paged('/v2/_catalog?n=2'), tags };
    };

    const indexReady = async (i: number): Promise<string | undefined> =>
      /^berth_index_ready (\d)/m.exec((await raw(cluster.debugUrl(i), 'GET', '/metrics')).body.toString())?.[1];

    it('pushes and deletes on all three replicas: the replicas answer from Redis what the walking Berth answers', async () => {
      const proxy = `http://127.0.0.1:${cluster.proxy.port}`;
      for (let i = 0; i < 12; i++) {
        const repo = `idx/team-${i % 4}/app`;
        const res = await pushImage(i % 3 === 0 ? proxy : cluster.url(i % 3), repo, `v${i}`, makeImage(18_100 + i));
        expect(res.status).toBe(201);
      }
      // Deletes on each replica: a tag, and a manifest by digest (its tags go with it).
      const tagged = await raw(cluster.url(1), 'GET', '/v2/idx/team-1/app/manifests/v5', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const digest = tagged.headers['docker-content-digest'];
      expect(typeof digest).toBe('string');
      expect((await raw(cluster.url(2), 'DELETE', `/v2/idx/team-1/app/manifests/${String(digest)}`)).status).toBe(202);
      expect((await raw(cluster.url(0), 'DELETE', '/v2/idx/team-2/app/manifests/v2')).status).toBe(202);
      for (const i of [0, 1, 2]) expect(await indexReady(i), `replica ${i}`).toBe('1');
      const expected = await listings(walkerUrl);
      expect(JSON.stringify(expected)).toContain('idx/team-3/app');
      expect(JSON.stringify(expected)).not.toContain('"v5"');
      for (const i of [0, 1, 2]) expect(await listings(cluster.url(i)), `replica ${i}`).toEqual(expected);
      expect(await listings(proxy)).toEqual(expected);
    }, 180_000);

    it('Redis flushed: listings stay right meanwhile, and a replica rebuilds the index from the bucket', async () => {
      await redis.command('FLUSHALL');
      const expected = await listings(walkerUrl);
      expect(await listings(cluster.url(2))).toEqual(expected);
      const deadline = Date.now() + 60_000;
      while ((await redis.command('HGET berth:idx:meta state')) !== '$8\r\ncomplete\r\n' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await redis.command('HGET berth:idx:meta state')).toBe('$8\r\ncomplete\r\n');
      const pushed = await pushImage(cluster.url(1), 'idx/after-flush', 'new', makeImage(18_200));
      expect(pushed.status).toBe(201);
      const after = await listings(walkerUrl);
      expect(JSON.stringify(after)).toContain('idx/after-flush');
      for (const i of [0, 1, 2]) expect(await listings(cluster.url(i)), `replica ${i}`).toEqual(after);
      const rebuilt = cluster.replicas.map((r) => r?.log() ?? '').join('\n');
      expect(rebuilt).toMatch(/index: rebuilt in redis from storage/);
    }, 180_000);
  });
});
