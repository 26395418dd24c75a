/**
 * Durable notifications with replicas (issue #18): three `berth serve` processes on one filesystem
 * root with one Redis (append-only file, so a Redis restart keeps what it held) share one queue per
 * endpoint, a Redis Stream with a consumer group (src/notifications/redis-queue.ts). A receiver counts
 * every event while it first refuses them (so deliveries are under way and retried), two replicas
 * are SIGKILLed mid-delivery, Redis is restarted, more images are pushed, the third replica is
 * killed too, and the two others restarted: every event of every acknowledged push arrives, each
 * `id` at least once.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Image, makeImage, pushImage } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Cluster, startCluster } from './helpers/replicas.js';
import { describeWithTools } from './helpers/tools.js';
import { type Webhook, startWebhook } from './helpers/webhook.js';

const TOOLS = { 'redis-server': 'redis-server' };

describeWithTools(TOOLS, 'notifications through one Redis stream per endpoint, across replica kills and a Redis restart', () => {
  let work = '';
  let redis: TestRedis;
  let cluster: Cluster;
  let hook: Webhook;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-replica-notify-'));
    await mkdir(join(work, 'root'));
    await mkdir(join(work, 'redis'));
    redis = await startRedis(undefined, { aofDir: join(work, 'redis') });
    hook = await startWebhook();
    hook.answer = () => 500; // deliveries fail (and are retried) until the test says otherwise
    const notifications = [
      'notifications:', '  endpoints:', '    - name: counter', `      url: ${hook.url}`, '      timeout: 2s',
      '      threshold: 3', '      backoff: 100ms', '      ignore:', '        actions: [pull]',
    ];
    const storage = {
      name: 'filesystem', yaml: ['  filesystem:', `    rootdirectory: ${JSON.stringify(join(work, 'root'))}`],
      writeOrphans: () => Promise.reject(new Error('not used here')),
    };
    cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h', extraYaml: notifications });
  }, 180_000);

  afterAll(async () => {
    await cluster?.close();
    await hook?.stop();
    await redis?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  /** Pushes images to `base`, retrying an image refused while Redis comes back (503); answers those acknowledged. */
  const pushAll = async (base: string, first: number, count: number): Promise<{ repo: string; tag: string; image: Image }[]> => {
    const done: { repo: string; tag: string; image: Image }[] = [];
    for (let i = first; i < first + count; i++) {
      const image = makeImage(18_300 + i);
      const repo = `notify/r${i % 3}`;
      const tag = `t${i}`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const res = await pushImage(base, repo, tag, image).catch((err: unknown) => ({ status: 0, err }));
        if (res.status === 201) break;
        if (Date.now() > deadline) throw new Error(`push ${repo}:${tag} not acknowledged: ${res.status}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      done.push({ repo, tag, image });
    }
    return done;
  };

  it('every event of every acknowledged push arrives, at least once', async () => {
    const proxy = `http://127.0.0.1:${cluster.proxy.port}`;
    const pushed = await pushAll(proxy, 0, 6);
    // Deliveries are under way and failing: some replica holds the endpoint's lease and retries.
    await hook.waitFor(() => hook.requests.length >= 3);
    expect(hook.accepted()).toEqual([]);
    await cluster.kill(0);
    await cluster.kill(1);
    await redis.stop();
    redis = await startRedis(redis.port, { aofDir: join(work, 'redis') });
    pushed.push(...(await pushAll(cluster.url(2), 6, 3)));
    await cluster.start(0);
    await cluster.start(1);
    await cluster.kill(2);
    hook.answer = () => 200;
    const expected = new Set<string>();
    for (const p of pushed) {
      expected.add(`push ${p.repo} manifest ${p.tag}`);
      for (const b of [p.image.config, ...p.image.layers]) expected.add(`push ${p.repo} blob ${b.digest}`);
    }
    const received = (): Set<string> => new Set(hook.accepted().map((e) =>
      e.target.tag !== undefined ? `${e.action} ${e.target.repository ?? ''} manifest ${e.target.tag}` : `${e.action} ${e.target.repository ?? ''} blob ${e.target.digest ?? ''}`));
    await hook.waitFor(() => [...expected].every((k) => received().has(k)), 90_000);
    const ids = hook.accepted().map((e) => e.id);
    const distinct = new Set(ids);
    console.log(`notifications across 3 kills and a Redis restart: ${expected.size} expected events, ${distinct.size} distinct ids received, ` +
      `${ids.length - distinct.size} sent again, ${hook.requests.length - hook.accepted().length} refused attempts`);
    expect(distinct.size).toBeGreaterThanOrEqual(expected.size);
  }, 240_000);
});
