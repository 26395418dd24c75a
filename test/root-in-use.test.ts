/**
 * One root, one writer (issue #14): while a `berth serve` (without redis) serves a filesystem root,
 * the offline commands that delete (`garbage-collect`, `check --repair`) refuse with exit 1 and a
 * message naming the root and the server's pid, unless `--force` (registry:2's data-loss bug
 * distribution#3045); the read-only ones (`check`, `garbage-collect --dry-run`) run. A second
 * `berth serve` on that root refuses to start, naming it and the first one's pid. With `redis`, two
 * replicas on one root both start, as before. All real processes.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { blobData, v2 } from './helpers/layout.js';
import { answersV2, blob, pushBlob } from './helpers/oci.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { describeWithTool, freePort } from './helpers/tools.js';

const dirs: string[] = [];
const running: BerthProcess[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) await b.stop();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

interface Site { readonly dir: string; readonly root: string; readonly config: string }

async function site(extra: readonly string[] = []): Promise<Site & { port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-root-in-use-'));
  dirs.push(dir);
  const root = join(dir, 'root');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  await writeFile(config, rootConfig(root, [`http: {addr: "127.0.0.1:${port}", secret: root-in-use}`, ...extra]));
  return { dir, root, config, port };
}

async function serveOn(s: Site & { port: number }, extra: readonly string[] = []): Promise<{ berth: BerthProcess; url: string }> {
  const configPath = join(s.dir, `serve-${running.length}.yml`);
  const port = running.length === 0 ? s.port : await freePort();
  const config = rootConfig(s.root, [`http: {addr: "127.0.0.1:${port}", secret: root-in-use}`, ...extra]);
  const berth = await startBerthProcess({ config, configPath });
  running.push(berth);
  return { berth, url: `http://127.0.0.1:${port}` };
}

describe('offline commands on a root a server is serving', () => {
  it('garbage-collect and check --repair refuse without --force and delete nothing; read-only runs go on', async () => {
    const s = await site();
    const { berth, url } = await serveOn(s);
    const orphan = blob('an orphan only garbage-collect would remove');
    await pushBlob(url, 'app', orphan); // linked in `app` only by _layers: no manifest marks it
    const data = join(v2(s.root), blobData(orphan.digest));
    const pid = String(berth.child.pid);

    const gc = await runBerthCli(['garbage-collect', s.config]);
    expect(gc.code).toBe(1);
    expect(gc.stderr).toContain(`berth: ${s.root} is being served by berth serve (pid ${pid} on `);
    expect(gc.stderr).toContain('--force runs anyway');
    expect(gc.stdout).toBe('');
    expect(existsSync(data)).toBe(true);

    const repair = await runBerthCli(['check', '--repair', s.config]);
    expect(repair.code).toBe(1);
    expect(repair.stderr).toContain(`is being served by berth serve (pid ${pid} on `);
    expect(repair.stdout).toBe('');

    const dry = await runBerthCli(['garbage-collect', '--dry-run', s.config]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`blob eligible for deletion: ${orphan.digest}`);
    const check = await runBerthCli(['check', s.config]);
    expect(check.code).toBe(0);
    expect(existsSync(data)).toBe(true);

    const forced = await runBerthCli(['garbage-collect', '--force', s.config]);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain(`--force: garbage-collect runs while ${s.root} is in use by berth serve (pid ${pid} on `);
    expect(existsSync(data)).toBe(false);
    expect(await answersV2(url)).toBe(true);

    await berth.stop();
    running.splice(0);
    const after = await runBerthCli(['check', '--repair', s.config]);
    expect(after.stderr).not.toContain('is being served');
    expect(after.code).toBe(0);
  });
});

describe('a second berth serve on one root', () => {
  it('without redis: refuses to start, naming the root and the first server', async () => {
    const s = await site();
    const { berth, url } = await serveOn(s);
    const other = join(s.dir, 'second.yml');
    await writeFile(other, rootConfig(s.root, [`http: {addr: "127.0.0.1:${await freePort()}", secret: root-in-use}`]));
    const second = await runBerthCli(['serve', other], { timeoutMs: 30_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`berth: ${s.root} is already in use by berth serve (pid ${String(berth.child.pid)} on `);
    expect(second.stderr).toContain('configure redis to run replicas');
    expect(await answersV2(url)).toBe(true);
  });
});

describeWithTool('redis-server', redisAvailability(), 'replicas with redis on one root', () => {
  let redis: TestRedis | undefined;
  afterAll(async () => {
    await redis?.stop();
  });
  it('both start and serve', async () => {
    redis = await startRedis();
    const s = await site();
    const extra = ['redis:', `  addr: ${redis.addr}`];
    const a = await serveOn(s, extra);
    const b = await serveOn(s, extra);
    expect(await answersV2(a.url)).toBe(true);
    expect(await answersV2(b.url)).toBe(true);
  });
});
