/**
 * Each tag's writes take turns across replicas (src/coordination/redis-tag-lanes.ts): two `berth serve`
 * processes on one filesystem root with one Redis, an immutable-tag rule, and in each round the first
 * pushes of one tag sent at once to both replicas, naming two different manifests. Exactly one is
 * stored and the other refused with 403 DENIED, and the tag names the one that was stored.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACCEPT_ALL, makeImage, pushBlob, putManifest, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Cluster, filesystemStorage, startCluster } from './helpers/replicas.js';
import { describeWithTools } from './helpers/tools.js';

const TOOLS = { 'redis-server': 'redis-server' };
const REPO = 'frozen/app';

describeWithTools(TOOLS, 'the first pushes of an immutable tag racing on two replicas', () => {
  let work = '';
  let redis: TestRedis;
  let cluster: Cluster;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-replica-lanes-'));
    await mkdir(join(work, 'root'));
    redis = await startRedis();
    const storage = filesystemStorage(join(work, 'root'), ['  immutabletags:', '    - repositories: ["frozen/**"]', `      patterns: ["^v"]`]);
    cluster = await startCluster({ n: 2, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h' });
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
    await redis?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('stores exactly one of them, every round', async () => {
    for (let round = 0; round < 12; round++) {
      const a = makeImage(19_100 + 2 * round);
      const b = makeImage(19_101 + 2 * round);
      for (const blob of [a.config, ...a.layers, b.config, ...b.layers]) await pushBlob(cluster.url(0), REPO, blob);
      const tag = `v${round}`;
      const [ra, rb] = await Promise.all([
        putManifest(cluster.url(0), REPO, tag, a.manifest, a.mediaType),
        putManifest(cluster.url(1), REPO, tag, b.manifest, b.mediaType),
      ]);
      expect([ra.status, rb.status].sort()).toEqual([201, 403]);
      const winner = ra.status === 201 ? a : b;
      const loser = ra.status === 201 ? rb : ra;
      expect(loser.body.toString()).toContain('immutable');
      const got = await raw(cluster.url(1), 'GET', `/v2/${REPO}/manifests/${tag}`, { headers: { Accept: ACCEPT_ALL } });
      expect(got.header('Docker-Content-Digest')).toBe(winner.manifest.digest);
    }
  }, 120_000);
});
