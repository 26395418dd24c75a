/**
 * The collector inside the server (`berth serve`): `storage.maintenance.gc` from the config and from
 * REGISTRY_* variables, `POST /debug/gc` on `http.debug.addr` answering the run's report (409 while a
 * run is going), and scheduled runs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { collectGarbage } from '../src/gc/run.js';
import { digestOf } from '../src/storage/digest.js';
import { createDriver } from '../src/storage/driver/factory.js';
import { parseRepoName } from '../src/storage/reference.js';
import { createRegistry } from '../src/storage/registry.js';
import { blob, makeImage, pushBlob, pushImage, raw } from './helpers/oci.js';
import { sleep } from './helpers/tools.js';

const servers: Serving[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function start(gcLines: readonly string[], env: Record<string, string> = {}): Promise<Serving> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-gc-online-'));
  dirs.push(dir);
  const config = join(dir, 'config.yml');
  await writeFile(config, [
    'version: 0.1',
    'log:',
    '  level: error',
    'http:',
    '  addr: 127.0.0.1:0',
    '  debug:',
    '    addr: 127.0.0.1:0',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    gc:',
    ...gcLines.map((l) => `      ${l}`),
    '',
  ].join('\n'));
  const serving = await serve(config, env);
  servers.push(serving);
  return serving;
}

function debugUrl(s: Serving): string {
  if (!s.debug) throw new Error('no debug listener');
  return s.debug.url;
}

describe('online garbage collection', () => {
  it('runs on POST /debug/gc and answers the report as JSON', async () => {
    const s = await start(['graceperiod: 1h'], { REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: '0s' });
    const img = makeImage(1);
    await pushImage(s.running.url, 'app', 'v1', img);
    const loose = blob('nobody references me');
    await pushBlob(s.running.url, 'app', loose);
    await sleep(5); // the run must begin after the upload's link
    const res = await raw(debugUrl(s), 'POST', '/debug/gc');
    expect(res.status).toBe(200);
    expect(res.header('Content-Type')).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      marked: 4, swept: 1, bytesFreed: loose.size, keptYoung: 0, layerLinksRemoved: 1, leftoversRemoved: 0, untaggedRemoved: 0, uploadsPurged: 0,
      durationMs: expect.any(Number), dryRun: false, warnings: [],
    });
    expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status).toBe(404);
    expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${img.layers[0]!.digest}`)).status).toBe(200);
  });

  it('keeps what is younger than the configured grace period', async () => {
    const s = await start(['graceperiod: 1h']);
    await pushBlob(s.running.url, 'app', blob('young and unreferenced'));
    const res = await raw(debugUrl(s), 'POST', '/debug/gc');
    expect(res.json()).toMatchObject({ swept: 0 });
  });

  it('answers 409 while a collection is already running, 405 to GET, 404 elsewhere', async () => {
    const s = await start([]);
    // A run elsewhere in this process, held up at its sweep by a link in progress on its only blob.
    const registry = createRegistry({ driver: createDriver({ kind: 'inmemory' }), deleteEnabled: true });
    const uploads = registry.repository(parseRepoName('x')).uploads;
    const session = await uploads.start();
    const d = digestOf(Buffer.from('held'));
    await uploads.commit(session.id, d, Readable.from([Buffer.from('held')]));
    let release = (): void => undefined;
    const held = registry.linkGate.link([d], () => new Promise<void>((r) => { release = r; }));
    await sleep(5);
    const running = collectGarbage(registry, { graceMs: 0, deleteUntagged: false, dryRun: false });
    try {
      const res = await raw(debugUrl(s), 'POST', '/debug/gc');
      expect(res.status).toBe(409);
      expect(res.json()).toEqual({ error: 'a garbage collection is already running' });
    } finally {
      release();
      await held;
      await running;
    }
    expect((await raw(debugUrl(s), 'GET', '/debug/gc')).status).toBe(405);
    expect((await raw(debugUrl(s), 'POST', '/debug/other')).status).toBe(404);
    expect((await raw(debugUrl(s), 'POST', '/debug/gc')).status).toBe(200);
  });

  it('runs on its schedule when enabled', async () => {
    const s = await start(['enabled: true', 'interval: 200ms', 'graceperiod: 0s']);
    const loose = blob('collected on schedule');
    await pushBlob(s.running.url, 'app', loose);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await raw(s.running.url, 'HEAD', `/v2/app/blobs/${loose.digest}`)).status === 200) await sleep(50);
    expect((await raw(s.running.url, 'HEAD', `/v2/app/blobs/${loose.digest}`)).status).toBe(404);
  });

  it('has no debug listener unless http.debug.addr is set', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-gc-online-'));
    dirs.push(dir);
    const config = join(dir, 'config.yml');
    await writeFile(config, `version: 0.1\nlog: {level: error}\nhttp: {addr: "127.0.0.1:0"}\nstorage: {inmemory: {}}\n`);
    const s = await serve(config, {});
    servers.push(s);
    expect(s.debug).toBeUndefined();
  });
});
