import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFiles, sectionLoader } from './suite/helpers.js';

const files = configFiles('berth-redis-config-');
beforeAll(files.open);
afterAll(files.close);
const { load, errorOf } = sectionLoader(files, 'redis');

describe('the redis section', () => {
  it("reads registry:2's keys, durations as Go writes them (a bare integer is nanoseconds)", async () => {
    const { redis, warnings } = await load(`redis:
  addr: redis.example:6380
  username: berth
  password: s3cret
  db: 2
  dialtimeout: 250ms
  readtimeout: 1500000000
  writetimeout: 3s
  tls:
    enabled: true
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
`);
    expect(warnings).toEqual([]);
    expect(redis).toEqual({
      host: 'redis.example', port: 6380, username: 'berth', password: 's3cret', db: 2,
      dialtimeoutMs: 250, commandtimeoutMs: 1500, tls: true,
      pool: { maxidle: 16, maxactive: 64, idletimeoutMs: 300_000 },
    });
  });

  it('has defaults; v3 addrs with one entry, IPv6 in brackets, and REGISTRY_REDIS_* overrides', async () => {
    const { redis } = await load('redis:\n  addrs: ["[::1]:6379"]\n');
    expect(redis).toMatchObject({ host: '::1', port: 6379, db: 0, dialtimeoutMs: 10_000, commandtimeoutMs: 5_000, tls: false });
    expect(redis?.password).toBeUndefined();
    const env = await load('', { REGISTRY_REDIS_ADDR: '127.0.0.1:7379', REGISTRY_REDIS_PASSWORD: '0123', REGISTRY_REDIS_WRITETIMEOUT: '2s' });
    expect(env.redis).toMatchObject({ host: '127.0.0.1', port: 7379, password: '0123', commandtimeoutMs: 2000 });
  });

  it('without an address means nothing, as in registry:2 (the other keys are still checked)', async () => {
    expect((await load('redis:\n  addr: ""\n  db: 1\n')).redis).toBeUndefined();
    expect((await load('')).redis).toBeUndefined();
    expect(await errorOf('redis:\n  db: -1\n')).toBe('config: redis.db: expected a whole number, zero or more, got -1');
  });

  it('warns about go-redis tuning keys of registry:2 v3 and refuses what it cannot honour', async () => {
    const { warnings } = await load('redis:\n  addr: r:6379\n  poolsize: 10\n');
    expect(warnings).toEqual(['config: redis.poolsize: ignored: not supported yet by Berth']);
    expect(await errorOf('redis:\n  addrs: [a:1, b:2]\n')).toMatch(/^config: redis\.addrs: Berth connects to one Redis server; got 2 addresses/);
    expect(await errorOf('redis:\n  addr: r:6379\n  mastername: m\n')).toBe('config: redis.mastername: not supported yet by Berth');
    expect(await errorOf('redis:\n  addr: r:6379\n  tls: {rootcas: [/ca.pem]}\n')).toBe('config: redis.tls.rootcas: not supported yet by Berth');
    expect(await errorOf('redis:\n  addr: r:6379\n  bogus: 1\n')).toBe('config: redis.bogus: unknown key');
  });

  it("loads config.example.yaml's commented section once uncommented, with the values its comments state", async () => {
    const example = await readFile(fileURLToPath(new URL('../../config.example.yaml', import.meta.url)), 'utf8');
    const lines = example.split('\n');
    const start = lines.indexOf('# redis:');
    expect(start).toBeGreaterThan(0);
    const end = lines.indexOf('', start);
    const section = lines.slice(start, end).map((l) => l.replace(/^# ?/, '')).join('\n');
    const { redis, warnings } = await load(`${section}\n`);
    expect(warnings).toEqual([]);
    expect(redis).toEqual({
      host: 'redis.internal', port: 6379, username: 'berth', password: 's3cret', db: 0, dialtimeoutMs: 10_000, commandtimeoutMs: 5_000,
      tls: false, pool: { maxidle: 16, maxactive: 64, idletimeoutMs: 300_000 },
    });
  });

  it.each([
    ['redis:\n  addr: localhost\n', 'config: redis.addr: expected host:port, got "localhost"'],
    ['redis:\n  addr: "h:70000"\n', 'config: redis.addr: expected host:port, got "h:70000"'],
    ['redis:\n  addr: r:1\n  addrs: [r:2]\n', 'config: redis.addrs: give redis.addr or redis.addrs, not both'],
    ['redis:\n  addr: r:1\n  dialtimeout: soon\n', 'config: redis.dialtimeout: expected a duration like "10ms" or "5s", got "soon"'],
    ['redis:\n  addr: r:1\n  readtimeout: -1s\n', 'config: redis.readtimeout: must be zero or more, got "-1s"'],
    ['redis:\n  addr: r:1\n  tls: {enabled: maybe}\n', 'config: redis.tls.enabled: expected true or false, got "maybe"'],
    ['redis:\n  addr: r:1\n  pool: {maxactive: lots}\n', 'config: redis.pool.maxactive: expected a whole number, zero or more, got "lots"'],
  ])('refuses %j', async (section, message) => {
    expect(await errorOf(section)).toBe(message);
  });
});
