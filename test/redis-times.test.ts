/**
 * Push and pull times in a real Redis (src/indexdb/redis-times.ts): times only move forward whichever
 * replica writes last, noted pulls are answered before they are written and written by a flush, and a
 * Redis that went away loses times but fails nothing. An offline command with `redis` reads them from
 * Redis and has nothing to say about a server's per-process settings.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openOffline } from '../src/cli/offline.js';
import { type RedisClient, connectRedis } from '../src/coordination/redis-client.js';
import { createRedisTimes } from '../src/indexdb/redis-times.js';
import { createLogger } from '../src/log.js';
import { type Digest, digestOf } from '../src/storage/digest.js';
import { type RepoName, parseRepoName } from '../src/storage/reference.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { describeWithTool } from './helpers/tools.js';

const logLines: string[] = [];
const log = createLogger({ level: 'debug', format: 'json', write: (l) => logLines.push(l) });
const repo = parseRepoName('times/unit') as RepoName;
const d1: Digest = digestOf(Buffer.from('revision one'));
const d2: Digest = digestOf(Buffer.from('revision two'));

describeWithTool('redis-server', redisAvailability(), 'push and pull times in Redis', () => {
  let redis: TestRedis;
  let client: RedisClient;

  beforeAll(async () => {
    redis = await startRedis();
    client = await connectRedis({ host: '127.0.0.1', port: redis.port, db: 0, connectTimeoutMs: 2_000, commandTimeoutMs: 2_000, tls: false });
  });
  afterAll(async () => {
    await client?.close();
    await redis?.stop();
  });

  it('keeps the later of two pushes whatever order two replicas write them in', async () => {
    const a = createRedisTimes({ client, prefix: 'test:', log });
    const b = createRedisTimes({ client, prefix: 'test:', log });
    await a.recordPush(repo, d1, 2_000);
    await b.recordPush(repo, d1, 1_000); // a slower replica's older push arrives last
    expect(await b.revisionTimes(repo, d1)).toEqual({ pushedAt: 2_000 });
    await b.recordPush(repo, d1, 3_000);
    expect(await a.revisionTimes(repo, d1)).toEqual({ pushedAt: 3_000 });
    await a.close();
    await b.close();
  });

  it('answers a noted pull at once on its replica, and on the others once flushed', async () => {
    const a = createRedisTimes({ client, prefix: 'test:', log });
    const b = createRedisTimes({ client, prefix: 'test:', log });
    await a.recordPush(repo, d2, 5_000);
    a.notePull(repo, d2, 7_000);
    a.notePull(repo, d2, 6_000); // an older note does not win
    expect(await a.revisionTimes(repo, d2)).toEqual({ pushedAt: 5_000, pulledAt: 7_000 });
    expect(await b.revisionTimes(repo, d2)).toEqual({ pushedAt: 5_000 });
    await a.flushPulls();
    expect(await b.revisionTimes(repo, d2)).toEqual({ pushedAt: 5_000, pulledAt: 7_000 });
    const all = await b.repositoryRevisionTimes(repo);
    expect(all?.get(d2)).toEqual({ pushedAt: 5_000, pulledAt: 7_000 });
    expect(all?.get(d1)?.pushedAt).toBe(3_000);
    await b.setTimes(repo, d2, { pushedAt: 1_000 }); // outright, even backwards (tools and tests)
    expect(await a.revisionTimes(repo, d2)).toEqual({ pushedAt: 1_000, pulledAt: 7_000 });
    await a.close();
    await b.close();
  });

  it('answers nothing and throws nothing once Redis is gone, and says so once', async () => {
    const other = await startRedis();
    const c = await connectRedis({ host: '127.0.0.1', port: other.port, db: 0, connectTimeoutMs: 2_000, commandTimeoutMs: 1_000, tls: false });
    const times = createRedisTimes({ client: c, prefix: 'test:', log });
    await times.recordPush(repo, d1, 1_000);
    await other.stop();
    logLines.length = 0;
    await expect(times.recordPush(repo, d1, 2_000)).resolves.toBeUndefined();
    expect(await times.revisionTimes(repo, d1)).toBeUndefined();
    expect(await times.repositoryRevisionTimes(repo)).toBeUndefined();
    times.notePull(repo, d1, 3_000);
    await expect(times.close()).resolves.toBeUndefined();
    expect(logLines.filter((l) => l.includes('push and pull times')).length).toBe(1);
    await c.close().catch(() => undefined);
  }, 30_000);

  it('serves an offline command its times, without warning about a server\'s http.secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-offline-redis-'));
    try {
      const file = join(dir, 'config.yml');
      await writeFile(file, ['version: 0.1', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'root')}`, 'redis:', `  addr: 127.0.0.1:${redis.port}`, ''].join('\n'));
      const lines: string[] = [];
      const offline = await openOffline(file, {}, (l) => lines.push(l), undefined, { times: true });
      await offline.close();
      expect(offline.timesKnown).toBe(true);
      expect(lines.filter((l) => l.includes('http.secret') || l.includes('replicas:'))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
