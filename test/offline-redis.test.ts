/**
 * The offline commands that write (garbage-collect, check --repair) with `redis` configured tell the
 * replicas' index in Redis what they removed (test/replicas-usage.test.ts shows that on Ceph). When
 * that Redis cannot be reached they still run, as they always could without Redis, and say that the
 * index in Redis must then be rebuilt.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { freePort } from './helpers/tools.js';

describe('offline commands with an unreachable redis', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('garbage-collect and check --repair run, and say that `berth index rebuild` must follow', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-offline-redis-'));
    dirs.push(dir);
    const nobody = await freePort(); // nothing listens there
    const config = join(dir, 'config.yml');
    await writeFile(config, rootConfig(join(dir, 'root'), ['redis:', `  addr: 127.0.0.1:${nobody}`, '  dialtimeout: 2s']));
    for (const args of [['garbage-collect', config], ['check', '--repair', config]]) {
      const run = await runBerthCli(args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
      expect(run.stderr, args.join(' ')).toMatch(/redis cannot be reached: the index in redis will not hear of this command's changes; run `berth index rebuild` after it/);
    }
    // A dry run writes nothing, so it does not ask for Redis at all.
    const dry = await runBerthCli(['garbage-collect', '--dry-run', config]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).not.toMatch(/redis/);
  }, 60_000);
});
