/**
 * Push and pull times shared by replicas (issues #16 and #18): three `berth serve` processes on one
 * filesystem root with one Redis keep the times in Redis (src/indexdb/redis-times.ts). An image is
 * pushed through replica 0 and pulled through replica 1, which is then stopped (a clean stop writes the
 * pulls it noted); retention run on replica 2 keeps the tag that was pulled and would delete the one
 * that was not, which it can tell only from the times replica 1 recorded.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ACCEPT_ALL, makeImage, pushImage, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Cluster, filesystemStorage, startCluster } from './helpers/replicas.js';
import { describeWithTools } from './helpers/tools.js';

const TOOLS = { 'redis-server': 'redis-server' };
const REPO = 'times/app';

interface GcAnswer {
  readonly retention?: { readonly deletions: readonly { readonly kind: string; readonly tag?: string; readonly reason: string }[] };
}

describeWithTools(TOOLS, 'push and pull times shared by replicas through Redis', () => {
  let work = '';
  let redis: TestRedis;
  let cluster: Cluster;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-replica-times-'));
    await mkdir(join(work, 'root'));
    redis = await startRedis();
    const storage = filesystemStorage(join(work, 'root'));
    const retention = [
      '    retention:', '      policies:', `        - repositories: ["times/**"]`, '          keeptags:',
      `            - patterns: [".*"]`, '              pulledwithin: 1h',
    ];
    cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h', maintenanceYaml: retention });
  }, 180_000);

  afterAll(async () => {
    await cluster?.close();
    await redis?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('retention on one replica keeps the tag pulled through another, and drops the one nobody pulled', async () => {
    const pulled = makeImage(18_700);
    const unpulled = makeImage(18_701);
    await pushImage(cluster.url(0), REPO, 'pulled', pulled);
    await pushImage(cluster.url(0), REPO, 'unpulled', unpulled);
    // The push times are in Redis, recorded by replica 0.
    const hash = await redis.command(`HGETALL berth:idx:times:${REPO}`);
    expect(hash).toContain(`push:${pulled.manifest.digest}`);
    expect(hash).toContain(`push:${unpulled.manifest.digest}`);

    const get = await raw(cluster.url(1), 'GET', `/v2/${REPO}/manifests/pulled`, { headers: { Accept: ACCEPT_ALL } });
    expect(get.status).toBe(200);
    await cluster.stop(1); // a clean stop writes the pulls replica 1 noted
    expect(await redis.command(`HGETALL berth:idx:times:${REPO}`)).toContain(`pull:${pulled.manifest.digest}`);

    const res = await raw(cluster.url(2), 'POST', '/berth/v1/gc?dryrun=true');
    expect(res.status).toBe(200);
    const deletions = (res.json() as GcAnswer).retention?.deletions ?? [];
    const tags = deletions.filter((d) => d.kind === 'tag').map((d) => d.tag);
    expect(tags).toEqual(['unpulled']);
  }, 120_000);
});
