/**
 * The Redis link gate and cluster lock (src/coordination/) against a real redis-server, each "replica"
 * with its own connection: the orderings of src/storage/maintenance/link-gate.test.ts across replicas, leases that
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
import { type GateWait, createRedisLinkGate } from '../src/coordination/redis-link-gate.js';
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

/** The waits a gate reports (its onWait hook): `next(op)` resolves once an operation of that kind has found its digests held. */
function waits(): { onWait: (w: GateWait) => void; next(op: GateWait['op']): Promise<GateWait> } {
  const seen: GateWait[] = [];
  const pending: { op: GateWait['op']; resolve: (w: GateWait) => void }[] = [];
  return {
    onWait(w) {
      const i = pending.findIndex((p) => p.op === w.op);
      if (i >= 0) pending.splice(i, 1)[0]!.resolve(w);
      else seen.push(w);
    },
    next(op) {
      const i = seen.findIndex((w) => w.op === op);
      if (i >= 0) return Promise.resolve(seen.splice(i, 1)[0]!);
      return new Promise((resolve) => pending.push({ op, resolve }));
    },
  };
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
  const gate = async (o: { leaseMs?: number; maxLinkTimes?: number; onWait?: (w: GateWait) => void } = {}) =>
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
    const twoWaits = waits();
    const [one, two] = [await gate(), await gate({ onWait: twoWaits.onWait })];
    const before = await one.now();
    const linkGo = deferred();
    const linkIn = deferred();
    const order: string[] = [];
    const linking = one.link([A, B], async () => {
      order.push('link start');
      linkIn.resolve();
      await linkGo.promise;
      order.push('link end');
    });
    await linkIn.promise;
    let seen: number | undefined;
    const sweeping = two.sweep(A, async (last) => {
      seen = last;
      order.push('sweep');
    });
    expect(await twoWaits.next('sweep')).toEqual({ op: 'sweep', digests: [A] }); // it tried, and found A held
    expect(order).toEqual(['link start']);
    linkGo.resolve();
    await Promise.all([linking, sweeping]);
    expect(order).toEqual(['link start', 'link end', 'sweep']);
    expect(seen).toBeGreaterThanOrEqual(before);
    expect(seen).toBeLessThanOrEqual(await two.now());
  });

  it('a link on one replica waits for a sweep on another; links share a digest; other digests are never blocked', async () => {
    const twoWaits = waits();
    const [one, two] = [await gate(), await gate({ onWait: twoWaits.onWait })];
    const sweepGo = deferred();
    const sweepIn = deferred();
    const order: string[] = [];
    const sweeping = one.sweep(A, async () => {
      order.push('sweep start');
      sweepIn.resolve();
      await sweepGo.promise;
      order.push('sweep end');
    });
    await sweepIn.promise;
    const linking = two.link([B, A], async () => void order.push('link'));
    const linkWaits = twoWaits.next('link');
    expect(await two.sweep(C, async () => 'other digest')).toBe('other digest');
    let inside = 0;
    let most = 0;
    const hold = deferred();
    const bothIn = deferred();
    const shared = [one, two].map((g) => g.link([C], async () => {
      inside += 1;
      most = Math.max(most, inside);
      if (inside === 2) bothIn.resolve();
      await hold.promise;
      inside -= 1;
    }));
    await bothIn.promise; // both shared holders are inside at once
    expect(await linkWaits).toEqual({ op: 'link', digests: [A, B] }); // the link tried, and found A swept
    expect(order).toEqual(['sweep start']);
    expect(most).toBe(2);
    hold.resolve();
    sweepGo.resolve();
    await Promise.all([sweeping, linking, ...shared]);
    expect(order).toEqual(['sweep start', 'sweep end', 'link']);
  });

  it('a waiting sweep is not starved by later links; a failed operation releases its lock and records nothing', async () => {
    const [oneWaits, twoWaits] = [waits(), waits()];
    const [one, two] = [await gate({ onWait: oneWaits.onWait }), await gate({ onWait: twoWaits.onWait })];
    const first = deferred();
    const l1In = deferred();
    const order: string[] = [];
    const l1 = one.link([A], () => {
      l1In.resolve();
      return first.promise;
    });
    await l1In.promise;
    const s = two.sweep(A, async () => void order.push('sweep'));
    await twoWaits.next('sweep'); // the sweep found A held, and has claimed it
    const l2 = one.link([A], async () => void order.push('late link'));
    await oneWaits.next('link'); // the late link found the claim, and waits behind the sweep
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
    const held = deferred();
    const linking = crashing.link([A], () => {
      held.resolve();
      return never.promise;
    });
    await held.promise;
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
    const held = deferred();
    const linking = slow.link([A], () => {
      held.resolve();
      return sleep(700); // the long operation itself: several leases of 150 ms
    });
    await held.promise;
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
      await clockPast(g, times.at(-1)!); // each digest gets a time of its own
    }
    expect(Number((await redis.command('ZCARD berth:gate:linked')).slice(1))).toBeLessThanOrEqual(4);
    // The first digests' times are gone: the gate answers a time no earlier than theirs.
    expect(await g.sweep(digests[0]!, async (l) => l)).toBeGreaterThanOrEqual(times[0]!);
    expect(await g.sweep(digests[5]!, async (l) => l)).toBeGreaterThanOrEqual(times[4]!);
    g.touch(A);
    await until(async () => !(await redis.command(`ZSCORE berth:gate:linked ${A}`)).startsWith('$-1')); // the touch has landed
    const cut = await g.now();
    g.forgetBefore(cut + 1);
    await until(async () => (await redis.command(`ZSCORE berth:gate:linked ${A}`)).startsWith('$-1')); // and is forgotten
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
    const lost = new Promise<void>((resolve) => {
      if (next?.signal.aborted) resolve();
      next?.signal.addEventListener('abort', () => resolve());
    });
    await redis.command('FLUSHALL');
    await lost; // the lock's next renewal finds it gone
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

/** Resolves once `g`'s clock reads later than `t`. */
async function clockPast(g: { now(): Promise<number> }, t: number): Promise<void> {
  await until(async () => (await g.now()) > t);
}

/** Resolves once `check` answers true, asking again after each answer (failing the test after 5 s). */
async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the awaited state never came');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
