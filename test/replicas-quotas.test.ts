/**
 * A quota's last room taken by replicas (src/coordination/redis-quota-locks.ts): two `berth serve`
 * processes on one Ceph S3 bucket with one Redis and a storage quota of 10 KiB. In each round two
 * uploads of 6 KiB, each of which fits alone and which do not fit together, are opened (POST) one on
 * each replica, then completed (PUT with the whole body) at once, one on each replica. Every round
 * exactly one is stored and the other refused with 403 DENIED naming the quota, and the refused blob
 * is nowhere; then the stored one is deleted (its layer link, so the quota's usage is 0 again) for the
 * next round. Without the shared lock each replica checks against the same usage and both are stored.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type S3TestSettings, createBucket, deleteBucket, describeWithS3, s3StorageYaml } from './helpers/ceph.js';
import { blob, errorCode, locationPath, randomBytesSeeded, raw } from './helpers/oci.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { type Cluster, type StorageSetup, startCluster } from './helpers/replicas.js';

const KIB = 1024;
const ROUNDS = 12;

describeWithS3('a quota racing on two replicas over S3 with Redis', (s3: S3TestSettings) => {
  let work = '';
  let bucket = '';
  let redis: TestRedis | undefined;
  let cluster: Cluster | undefined;
  let unavailable = '';

  beforeAll(async () => {
    const availability = redisAvailability();
    if (!availability.ok) {
      if (process.env['CI'] === 'true') throw new Error(`redis-server is needed: ${availability.reason}`);
      unavailable = availability.reason;
      console.warn(`skipping the replica quota race: ${unavailable}`);
      return;
    }
    work = await mkdtemp(join(tmpdir(), 'berth-replica-quotas-'));
    bucket = `berth-quotas-${randomBytes(4).toString('hex')}`;
    await createBucket(s3, bucket);
    redis = await startRedis();
    const storage: StorageSetup = {
      name: 's3',
      yaml: [
        ...s3StorageYaml(s3, bucket),
        '  quotas:', '    - repositories: ["race/**"]', '      storage: 10KiB',
      ],
      writeOrphans: () => Promise.reject(new Error('not used here')),
    };
    cluster = await startCluster({ n: 2, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h' });
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
    await redis?.stop();
    if (bucket !== '') await deleteBucket(s3, bucket).catch(() => undefined);
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('admits exactly one of two completions that together pass the limit, every round', async (ctx) => {
    if (cluster === undefined) return ctx.skip(unavailable);
    const replicas = cluster;
    const outcomes: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const repos = [`race/a${round}`, `race/b${round}`];
      const blobs = [blob(randomBytesSeeded(6 * KIB, 7000 + 2 * round)), blob(randomBytesSeeded(6 * KIB, 7001 + 2 * round))];
      const posts = await Promise.all(repos.map((repo, i) => raw(replicas.url(i), 'POST', `/v2/${repo}/blobs/uploads/`)));
      expect(posts.map((p) => p.status)).toEqual([202, 202]);
      const puts = await Promise.all(posts.map((post, i) =>
        raw(replicas.url(i), 'PUT', `${locationPath(post)}&digest=${encodeURIComponent(blobs[i]?.digest ?? '')}`, {
          headers: { 'Content-Type': 'application/octet-stream' },
          body: blobs[i]?.bytes,
        })));
      outcomes.push(puts.map((p) => p.status).join('/'));
      expect(puts.map((p) => p.status).sort(), `round ${round}: ${outcomes.join(' ')}`).toEqual([201, 403]);
      const won = puts.findIndex((p) => p.status === 201);
      const lost = 1 - won;
      const refused = puts[lost];
      expect(refused && errorCode(refused)).toBe('DENIED');
      expect(refused?.body.toString()).toContain('quota exceeded: storage of race/** would be 12 KiB, limit 10 KiB (storage.quotas[0])');
      for (const i of [0, 1]) {
        const head = await raw(replicas.url(i), 'HEAD', `/v2/${repos[lost]}/blobs/${blobs[lost]?.digest}`);
        expect(head.status).toBe(404);
      }
      // Back to no usage: the stored blob's link goes, so the next round races for the same room.
      const deleted = await raw(replicas.url(won), 'DELETE', `/v2/${repos[won]}/blobs/${blobs[won]?.digest}`);
      expect(deleted.status).toBe(202);
    }
    console.log(`replica quota race: ${ROUNDS} rounds, completions (replica 0/replica 1): ${outcomes.join(' ')}`);
  }, 240_000);
});
