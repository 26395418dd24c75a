/**
 * Health as operators and Kubernetes see it, on a real `berth serve` process: `/healthz`, `/readyz`,
 * `GET /`, registry:2's `/debug/health` on the debug listener, and the storage check that turns every
 * API request into 503 UNAVAILABLE while the storage root cannot be read, and back once it can.
 *
 * The root is made unreadable with chmod 000. Root ignores file modes, so when the tests run as root the
 * server runs as `nobody`; should `nobody` be unable to run this checkout (a clone under /root), the
 * root is instead replaced by a symlink loop, which nobody can read either (the test says which it did).
 */
import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rename, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { errorCode, makeImage, pushImage, raw } from './helpers/oci.js';
import { freePort, sleep } from './helpers/tools.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TSX = pathToFileURL(createRequire(join(PROJECT, 'package.json')).resolve('tsx')).href;
const NOBODY = 65534;

/** True when `nobody` can start Node with tsx in this checkout. */
function nobodyCanRunBerth(): boolean {
  const res = spawnSync(process.execPath, ['--import', TSX, '-e', '0'], { cwd: PROJECT, uid: NOBODY, gid: NOBODY, timeout: 30_000 });
  return res.status === 0;
}

/** Polls until `probe` answers true, for at most `ms`. */
async function eventually(probe: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(50);
  }
}

describe('health checks and probes (berth serve)', () => {
  let dir: string;
  let root: string;
  let berth: BerthProcess;
  let url: string;
  let debugUrl: string;
  let unreadable: { make(): Promise<void>; restore(): Promise<void>; how: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-health-'));
    root = join(dir, 'root');
    await mkdir(root);
    const asRoot = process.getuid?.() === 0;
    const asNobody = asRoot && nobodyCanRunBerth();
    if (asNobody) {
      await chmod(dir, 0o755);
      await chown(root, NOBODY, NOBODY);
    }
    unreadable = asRoot && !asNobody
      ? {
          how: 'root replaced by a symlink loop (nobody cannot run this checkout, and root ignores chmod)',
          make: async () => {
            await rename(root, `${root}.away`);
            await symlink(root, root);
          },
          restore: async () => {
            await rm(root);
            await rename(`${root}.away`, root);
          },
        }
      : {
          how: asNobody ? 'chmod 000 on the root, server running as nobody' : 'chmod 000 on the root',
          make: () => chmod(root, 0o000),
          restore: () => chmod(root, 0o755),
        };
    console.log(`health test: storage made unreadable by ${unreadable.how}`);
    const [port, debugPort] = [await freePort(), await freePort()];
    url = `http://127.0.0.1:${port}`;
    debugUrl = `http://127.0.0.1:${debugPort}`;
    berth = await startBerthProcess({
      configPath: join(dir, 'config.yml'),
      config: [
        'version: 0.1',
        'log: {level: info, formatter: json}',
        `http: {addr: "127.0.0.1:${port}", secret: s3cr3t, debug: {addr: "127.0.0.1:${debugPort}"}}`,
        `storage: {filesystem: {rootdirectory: ${JSON.stringify(root)}}, delete: {enabled: true}}`,
        'health: {storagedriver: {enabled: true, interval: 100ms, threshold: 2}}',
        '',
      ].join('\n'),
      ...(asNobody && { uid: NOBODY, gid: NOBODY }),
    });
  }, 60_000);

  afterAll(async () => {
    await berth?.stop();
    await unreadable?.restore().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the probes and GET / while storage is fine', async () => {
    expect((await raw(url, 'GET', '/')).status).toBe(200);
    const live = await raw(url, 'GET', '/healthz');
    expect(live.status).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
    expect((await raw(url, 'GET', '/readyz')).status).toBe(200);
    const health = await raw(debugUrl, 'GET', '/debug/health');
    expect(health.status).toBe(200);
    expect(health.json()).toEqual({});
    expect((await pushImage(url, 'healthy/app', 'v1', makeImage(1))).status).toBe(201);
  });

  it('answers 503 UNAVAILABLE to every request while the storage root cannot be read, and recovers', async () => {
    await unreadable.make();
    try {
      await eventually(async () => (await raw(url, 'GET', '/v2/')).status === 503);
      const api = await raw(url, 'GET', '/v2/healthy/app/tags/list');
      expect(api.status).toBe(503);
      expect(errorCode(api)).toBe('UNAVAILABLE');
      expect(JSON.stringify(api.json())).toContain('storagedriver_filesystem');
      expect((await raw(url, 'GET', '/')).status).toBe(503);
      const ready = await raw(url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.json()).toMatchObject({ status: 'unavailable', checks: { storagedriver_filesystem: expect.any(String) } });
      // Liveness stays up: restarting the process would not bring the storage back.
      expect((await raw(url, 'GET', '/healthz')).status).toBe(200);
      const health = await raw(debugUrl, 'GET', '/debug/health');
      expect(health.status).toBe(503);
      expect(Object.keys(health.json() as object)).toEqual(['storagedriver_filesystem']);
      expect(berth.log()).toMatch(/health check failing/);
    } finally {
      await unreadable.restore();
    }
    await eventually(async () => (await raw(url, 'GET', '/v2/')).status === 200);
    expect((await raw(url, 'GET', '/readyz')).status).toBe(200);
    expect((await raw(debugUrl, 'GET', '/debug/health')).status).toBe(200);
    const tags = await raw(url, 'GET', '/v2/healthy/app/tags/list');
    expect(tags.status).toBe(200);
    expect(tags.json()).toEqual({ name: 'healthy/app', tags: ['v1'] });
    expect(berth.log()).toMatch(/health check passes again/);
  });
});
