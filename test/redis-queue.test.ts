/**
 * An endpoint's queue as a Redis Stream shared by replicas (src/notifications/redis-queue.ts), with a
 * real redis-server: two queues on one stream play two replicas. One delivers (it holds the lease);
 * when it stops without acknowledging (a replica frozen or killed mid-delivery), the other takes over
 * once the lease lapses and delivers that event first, then the rest, in order. Consumers of closed
 * and long-gone processes are deleted from the group.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRedisClusterLock } from '../src/coordination/cluster-lock.js';
import { type RedisClient, connectRedis } from '../src/coordination/redis-client.js';
import { createLogger } from '../src/log.js';
import type { EventQueue } from '../src/notifications/queue.js';
import { openRedisQueue } from '../src/notifications/redis-queue.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { describeWithTool } from './helpers/tools.js';

describeWithTool('redis-server', redisAvailability(), 'a notification queue in a Redis Stream, shared by two replicas', () => {
  let redis: TestRedis;
  const clients: RedisClient[] = [];
  const log = createLogger({ level: 'error', format: 'json', write: () => undefined });

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await redis?.stop();
  });

  /** A replica's view: its own connection, queue and lease (1 s, so a take-over is quick). */
  const replicaQueue = async (staleConsumerMs?: number): Promise<EventQueue> => {
    const client = await connectRedis({ host: '127.0.0.1', port: redis.port, db: 0, connectTimeoutMs: 2_000, commandTimeoutMs: 5_000, tls: false });
    clients.push(client);
    const lock = createRedisClusterLock({ client, key: 'berth:notify:q:lease', leaseMs: 1_000 });
    return openRedisQueue({ client, key: 'berth:notify:q', lock, maxBytes: 1 << 20, log, ...(staleConsumerMs !== undefined && { staleConsumerMs }) });
  };

  it('journals appends from both, delivers through one at a time, and hands unacknowledged events over', async () => {
    const a = await replicaQueue();
    const b = await replicaQueue();
    for (let i = 0; i < 3; i++) {
      const from = i % 2 === 0 ? a : b;
      const appended = from.append(JSON.stringify({ n: i }));
      expect(appended.accepted).toBe(true);
      await appended.durable;
    }
    expect(Number(/:(\d+)/.exec(await redis.command('XLEN berth:notify:q'))?.[1])).toBe(3);
    const first = await a.next();
    expect(first?.line).toBe('{"n":0}');
    a.ack(first!);
    const second = await a.next();
    expect(second?.line).toBe('{"n":1}');
    // A stops here without acknowledging n=1 (killed mid-delivery); B cannot deliver while A's lease holds.
    const stopB = new AbortController();
    const early = await Promise.race([b.next(stopB.signal), new Promise<undefined>((r) => setTimeout(() => r(undefined), 300))]);
    expect(early).toBeUndefined();
    stopB.abort();
    // The lease lapses only if A stops renewing: close A's connection (its renewals fail) and wait.
    await clients[0]?.close();
    const taken = await b.next();
    expect(taken?.line).toBe('{"n":1}');
    b.ack(taken!);
    const third = await b.next();
    expect(third?.line).toBe('{"n":2}');
    b.ack(third!);
    await b.close();
    expect(Number(/:(\d+)/.exec(await redis.command('XLEN berth:notify:q'))?.[1])).toBe(0);
    // B deleted its own consumer as it closed; A's (killed, nothing pending since B claimed its event) stays.
    expect(await consumers()).toHaveLength(1);
    // The next replica to take the lease deletes consumers idle past the limit with nothing pending.
    const c = await replicaQueue(0);
    await c.append('{"n":3}').durable;
    const fourth = await c.next();
    expect(fourth?.line).toBe('{"n":3}');
    expect(await consumers()).toHaveLength(1);
    c.ack(fourth!);
    await c.close();
    expect(await consumers()).toHaveLength(0);
  }, 60_000);

  /** The names of the group's consumers. */
  const consumers = async (): Promise<string[]> => {
    const reply = await clients[1]!.call('XINFO', 'CONSUMERS', 'berth:notify:q', 'berth');
    return (reply as unknown[][]).map((fields) => String(fields[fields.indexOf('name') + 1]));
  };
});
