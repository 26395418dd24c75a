/**
 * What replicas over one S3 bucket (Ceph RGW) share beyond the blobs (issue #18): three `berth serve`
 * processes with one Redis, behind the round-robin proxy of test/helpers/replicas.ts.
 *
 * - One issuer key: the built-in issuer with no `signingkey` file. The replicas start at the same
 *   moment, each finds no key in the bucket, generates one and writes it with `If-None-Match: *`; one
 *   write wins and the others read the winner's back. A token from replica 1 then works on replica 3,
 *   and on a replica restarted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bearer, getToken, pushImageWith, writeHtpasswd } from './helpers/auth.js';
import { type S3TestSettings, createBucket, deleteBucket, describeWithS3, listKeys } from './helpers/ceph.js';
import { makeImage, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Cluster, type StorageSetup, startCluster } from './helpers/replicas.js';
import { describeWithTools } from './helpers/tools.js';

const TOOLS = { 'redis-server': 'redis-server' };

/** A bucket of its own; nothing is written behind the replicas' backs here. */
async function bucketStorage(s3: S3TestSettings, bucket: string): Promise<StorageSetup> {
  await createBucket(s3, bucket);
  return {
    name: 's3',
    yaml: [
      '  s3:', `    region: ${s3.region}`, `    regionendpoint: ${s3.endpoint}`, `    bucket: ${bucket}`,
      `    accesskey: ${s3.accessKey}`, `    secretkey: ${s3.secretKey}`, '    rootdirectory: /registry',
    ],
    writeOrphans: () => Promise.reject(new Error('not used here')),
  };
}

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
});
