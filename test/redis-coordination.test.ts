/**
 * The Redis link gate and cluster lock (src/coordination/) against a real redis-server, each "replica"
 * with its own connection: the orderings of src/storage/link-gate.test.ts across replicas, leases that
 * outlive a crashed holder and are renewed for a long operation, link times on Redis's clock, what the
 * gate answers after Redis lost its data, the bound on what it keeps, and one collector lock holder at
 * a time. Then `berth serve` with `redis`: start-up refuses an unreachable Redis, and while Redis is down
 * pushes fail with 503 and pulls go on, until it is back.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { serve } from '../src/cli/serve.js';
import { collectGarbage } from '../src/gc/run.js';
import { createDriver } from '../src/storage/driver/factory.js';
import { paths } from '../src/storage/paths.js';
import { parseRepoName } from '../src/storage/reference.js';
import { createRegistry } from '../src/storage/registry.js';
import { createRedisClusterLock } from '../src/coordination/cluster-lock.js';
import { type RedisClient, connectRedis } from '../src/coordination/redis-client.js';
import { createRedisLinkGate } from '../src/coordination/redis-link-gate.js';
import { isRegistryError } from '../src/errors.js';
import type { Digest } from '../src/storage/digest.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { blob, makeImage, pushImage, raw } from './helpers/oci.js';
import { describeWithTool, freePort, sleep } from './helpers/tools.js';

const A = `sha256:${'a'.repeat(64)}` as Digest;
const B = `sha256:${'b'.repeat(64)}` as Digest;
const C = `sha256:${'c'.repeat(64)}` as Digest;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describeWithTool('redis-server', redisAvailability(), 'the Redis link gate and collector lock', () => {
  let redis: TestRedis;
  const clients: RedisClient[] = [];
  const errors: string[] = [];
  const client = async (): Promise<RedisClient> => {
    const c = await connectRedis({ host: '127.0.0.1', port: redis.port, db: 0, connectTimeoutMs: 2_000, commandTimeoutMs: 2_000, tls: false });
    clients.push(c);
    return c;
  };
  const gate = async (o: { leaseMs?: number; maxLinkTimes?: number } = {}) =>
    createRedisLinkGate({ client: await client(), ...o, onError: (msg) => errors.push(msg) });

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await redis?.stop();
  });
  beforeEach(async () => {
    await redis.command('FLUSHALL');
    errors.length = 0;
  });

  it('a sweep on one replica waits for a link on another, and sees its time on the gate clock', async () => {
    const [one, two] = [await gate(), await gate()];
    const before = await one.now();
    const linkGo = deferred();
    const order: string[] = [];
    const linking = one.link([A, B], async () => {
      order.push('link start');
      await linkGo.promise;
      order.push('link end');
    });
    await sleep(20);
    let seen: number | undefined;
    const sweeping = two.sweep(A, async (last) => {
      seen = last;
      order.push('sweep');
    });
    await sleep(50);
    expect(order).toEqual(['link start']);
    linkGo.resolve();
    await Promise.all([linking, sweeping]);
    expect(order).toEqual(['link start', 'link end', 'sweep']);
    expect(seen).toBeGreaterThanOrEqual(before);
    expect(seen).toBeLessThanOrEqual(await two.now());
  });

  it('a link on one replica waits for a sweep on another; links share a digest; other digests are never blocked', async () => {
    const [one, two] = [await gate(), await gate()];
    const sweepGo = deferred();
    const order: string[] = [];
    const sweeping = one.sweep(A, async () => {
      order.push('sweep start');
      await sweepGo.promise;
      order.push('sweep end');
    });
    await sleep(20);
    const linking = two.link([B, A], async () => void order.push('link'));
    expect(await two.sweep(C, async () => 'other digest')).toBe('other digest');
    let inside = 0;
    let most = 0;
    const hold = deferred();
    const shared = [one, two].map((g) => g.link([C], async () => {
      inside += 1;
      most = Math.max(most, inside);
      await hold.promise;
      inside -= 1;
    }));
    await sleep(50);
    expect(order).toEqual(['sweep start']);
    expect(most).toBe(2);
    hold.resolve();
    sweepGo.resolve();
    await Promise.all([sweeping, linking, ...shared]);
    expect(order).toEqual(['sweep start', 'sweep end', 'link']);
  });

  it('a waiting sweep is not starved by later links; a failed operation releases its lock and records nothing', async () => {
    const [one, two] = [await gate(), await gate()];
    const first = deferred();
    const order: string[] = [];
    const l1 = one.link([A], () => first.promise);
    await sleep(20);
    const s = two.sweep(A, async () => void order.push('sweep'));
    await sleep(30); // the sweep has claimed the digest
    const l2 = one.link([A], async () => void order.push('late link'));
    await sleep(30);
    first.resolve();
    await Promise.all([l1, s, l2]);
    expect(order).toEqual(['sweep', 'late link']);
    const since = await two.now();
    await expect(one.link([B], async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await two.sweep(B, async (last) => last)).toBeLessThan(since); // not recorded as linked
  });

  it("a crashed replica's locks expire after one lease; its late release fails instead of acknowledging", async () => {
    const crashingClient = await client();
    const crashing = createRedisLinkGate({ client: crashingClient, leaseMs: 300 });
    const survivor = await gate();
    const never = deferred();
    const linking = crashing.link([A], () => never.promise);
    await sleep(20);
    await crashingClient.close(); // the replica's connection dies: no more renewals
    const t0 = Date.now();
    expect(await survivor.sweep(A, async () => 'swept')).toBe('swept');
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThan(150);
    expect(waited).toBeLessThan(3_000);
    never.resolve();
    const late = await linking.then(() => undefined, (e: unknown) => e);
    expect(isRegistryError(late, 'UNAVAILABLE')).toBe(true);
  });

  it('a long link operation renews its lease: a sweep waits for it past several leases', async () => {
    const [slow, sweeper] = [await gate({ leaseMs: 150 }), await gate()];
    const linking = slow.link([A], () => sleep(700));
    await sleep(20);
    const t0 = Date.now();
    await sweeper.sweep(A, async () => undefined);
    expect(Date.now() - t0).toBeGreaterThan(500);
    await linking;
    expect(errors).toEqual([]);
  });

  it('after Redis lost its data, a sweep is told "linked since the loss" and keeps the blob; the clock never goes back', async () => {
    const g = await gate();
    await g.link([A], async () => undefined);
    const runStart = await g.now();
    await redis.command('FLUSHALL'); // a restart without persistence
    const last = await g.sweep(A, async (l) => l);
    expect(last).toBeGreaterThanOrEqual(runStart);
    const never = await g.sweep(B, async (l) => l);
    expect(never).toBeGreaterThanOrEqual(runStart);
    await redis.command(`SET berth:gate:clock ${Date.now() + 60_000}`); // Redis's wall clock stepped back a minute
    const t1 = await g.now();
    await g.link([C], async () => undefined);
    expect(await g.sweep(C, async (l) => l)).toBeGreaterThanOrEqual(t1);
  });

  it('keeps at most maxLinkTimes link times (the oldest go, and are answered conservatively); forgetBefore drops old ones', async () => {
    const g = await gate({ maxLinkTimes: 3 });
    const digests = Array.from({ length: 6 }, (_, i) => `sha256:${String(i).repeat(64)}` as Digest);
    const times: number[] = [];
    for (const d of digests) {
      await g.link([d], async () => undefined);
      times.push(await g.now());
      await sleep(3);
    }
    expect(Number((await redis.command('ZCARD berth:gate:linked')).slice(1))).toBeLessThanOrEqual(4);
    // The first digests' times are gone: the gate answers a time no earlier than theirs.
    expect(await g.sweep(digests[0]!, async (l) => l)).toBeGreaterThanOrEqual(times[0]!);
    expect(await g.sweep(digests[5]!, async (l) => l)).toBeGreaterThanOrEqual(times[4]!);
    g.touch(A);
    await sleep(20);
    const cut = await g.now();
    g.forgetBefore(cut + 1);
    await sleep(20);
    expect(await g.sweep(A, async (l) => l)).toBe(cut + 1);
  });

  it("a collection takes its start from the gate's clock: a replica whose own clock is an hour ahead still keeps a blob linked during its run", async () => {
    // Two replicas on one storage: each with its own registry and gate, one Redis connection between
    // them, so the link the second sends when the first has listed its candidates reaches Redis first.
    const shared = await client();
    const driver = createDriver({ kind: 'inmemory' });
    const [collecting, pushing] = [0, 1].map(() =>
      createRegistry({ driver, deleteEnabled: true, linkGate: createRedisLinkGate({ client: shared }) }));
    const gateOf = (r: typeof collecting) => r!.linkGate as ReturnType<typeof createRedisLinkGate>;
    const run = async (readStart: boolean): Promise<boolean> => {
      const orphan = blob(`orphan ${String(readStart)}`);
      await driver.putContent(paths.blobData(orphan.digest as Digest), orphan.bytes);
      let linking: Promise<unknown> = Promise.resolve();
      await collectGarbage(collecting!, {
        graceMs: 0, deleteUntagged: false, dryRun: false,
        now: () => Date.now() + 3_600_000, // this replica's clock is an hour ahead
        ...(readStart && { startedAt: () => gateOf(collecting).now() }),
        onEvent: (e) => {
          if (e.type === 'summary') linking = pushing!.repository(parseRepoName('other/replica')).blobs.mountExisting(orphan.digest as Digest);
        },
      });
      expect(await linking).toBeDefined();
      return (await driver.stat(paths.blobData(orphan.digest as Digest)).then(() => true, () => false));
    };
    expect(await run(true)).toBe(true);
    // Its own clock as the start: the link (on Redis's clock) looks older than the run, and is lost.
    expect(await run(false)).toBe(false);
  });

  it('the collector lock: one holder at a time, released to the next, and lost when Redis forgets it', async () => {
    const lockOf = async () => createRedisClusterLock({ client: await client(), key: 'berth:gc:lock', leaseMs: 200 });
    const [one, two] = [await lockOf(), await lockOf()];
    const held = await one.tryAcquire();
    expect(held).toBeDefined();
    expect(await two.tryAcquire()).toBeUndefined();
    await sleep(400); // renewed past its lease
    expect(await two.tryAcquire()).toBeUndefined();
    await held?.release();
    const next = await two.tryAcquire();
    expect(next).toBeDefined();
    expect(next?.signal.aborted).toBe(false);
    await redis.command('FLUSHALL');
    await sleep(150);
    expect(next?.signal.aborted).toBe(true);
    await next?.release();
  });
});

describeWithTool('redis-server', redisAvailability(), 'berth serve with redis', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-serve-redis-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const configFor = async (redisPort: number): Promise<string> => {
    const file = join(dir, `config-${redisPort}.yml`);
    await writeFile(file, [
      'version: 0.1', 'log:', '  level: error', 'http:', '  addr: 127.0.0.1:0', '  secret: s',
      'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`,
      'redis:', `  addr: 127.0.0.1:${redisPort}`, '  dialtimeout: 1s', '  readtimeout: 1s', '',
    ].join('\n'));
    return file;
  };

  it('refuses to start when Redis cannot be reached, naming redis.addr', async () => {
    const port = await freePort();
    const err: unknown = await serve(await configFor(port), {}).then((s) => s.stop(), (e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^config: redis\\.addr: cannot connect to Redis at 127\\.0\\.0\\.1:${port}/0`));
  });

  it('while Redis is down pushes answer 503 and pulls go on; once it is back pushes work again', async () => {
    let redis = await startRedis();
    const serving = await serve(await configFor(redis.port), {});
    try {
      const base = serving.running.url;
      const image = makeImage(5);
      expect((await pushImage(base, 'down/app', 'v1', image)).status).toBe(201);
      await redis.stop();
      const b = blob('pushed while redis is down');
      const push = await raw(base, 'POST', `/v2/down/app/blobs/uploads/?digest=${b.digest}`, { body: b.bytes });
      expect(push.status).toBe(503);
      expect(push.json()).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
      expect((await raw(base, 'GET', '/v2/down/app/manifests/v1', { headers: { Accept: image.mediaType } })).status).toBe(200);
      expect((await raw(base, 'GET', `/v2/down/app/blobs/${image.layers[0]!.digest}`)).status).toBe(200);
      redis = await startRedis(redis.port);
      let status = 0;
      for (let i = 0; i < 100 && status !== 201; i++) {
        await sleep(100);
        status = (await raw(base, 'POST', `/v2/down/app/blobs/uploads/?digest=${b.digest}`, { body: b.bytes })).status;
      }
      expect(status).toBe(201);
    } finally {
      await serving.stop();
      await redis.stop();
    }
  }, 60_000);
});
