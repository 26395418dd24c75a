/**
 * What a collection leaves and says (issue #14), with real `berth` processes:
 *   - after an ordinary manifest delete and a collection (offline `garbage-collect`, and the online
 *     collector), `berth check` is clean: the collector removed the `_layers` links of the blobs it
 *     deleted (before, check exited 1 with dangling-layer-link problems);
 *   - its report says how many unreferenced blobs the grace period kept (`kept 12 younger than 1h`);
 *   - a dry run says "would free", never "freed".
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { blob, makeImage, pushBlob, pushImage, raw } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const dirs: string[] = [];
const running: BerthProcess[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) await b.stop();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

interface Site { readonly config: string; readonly url: string; readonly debug: string; readonly berth: BerthProcess }

async function serveSite(gc: string): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-gc-tidy-'));
  dirs.push(dir);
  const [port, debugPort] = [await freePort(), await freePort()];
  const config = join(dir, 'config.yml');
  const text = rootConfig(join(dir, 'root'), [
    '  delete: {enabled: true}',
    `  maintenance: {gc: ${gc}}`,
    `http: {addr: "127.0.0.1:${port}", secret: gc-tidy, debug: {addr: "127.0.0.1:${debugPort}"}}`,
  ]);
  await writeFile(config, text);
  const berth = await startBerthProcess({ config: text, configPath: config });
  running.push(berth);
  return { config, url: `http://127.0.0.1:${port}`, debug: `http://127.0.0.1:${debugPort}`, berth };
}

/** Pushes two images and deletes the first by digest: its config and layers become garbage. */
async function pushAndDelete(url: string): Promise<void> {
  const gone = makeImage(71, { layerCount: 3 });
  const res = await pushImage(url, 'app', 'old', gone);
  await pushImage(url, 'app', 'new', makeImage(72));
  const deleted = await raw(url, 'DELETE', `/v2/app/manifests/${res.header('Docker-Content-Digest') ?? ''}`);
  expect(deleted.status).toBe(202);
}

describe('after an ordinary delete and a collection, check is clean', () => {
  it('offline garbage-collect', async () => {
    const s = await serveSite('{graceperiod: 1h}');
    await pushAndDelete(s.url);
    await s.berth.stop();
    running.splice(0);
    const gc = await runBerthCli(['garbage-collect', s.config]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/\n4 blobs marked, 5 blobs and 0 manifests eligible for deletion\n/);
    expect(gc.stderr).toMatch(/garbage collection done: marked 4; swept 5 blobs \(freed [\d.]+ KiB\)/);
    const check = await runBerthCli(['check', s.config]);
    console.log(`check after garbage-collect:\n${check.stdout}`);
    expect(check.stdout).toMatch(/: 0 problems, 0 orphaned blobs\n$/);
    expect(check.code).toBe(0);
  });

  it('the online collector', async () => {
    const s = await serveSite('{graceperiod: 0s}');
    await pushAndDelete(s.url);
    const res = await raw(s.debug, 'POST', '/debug/gc');
    expect(res.json()).toMatchObject({ swept: 5, layerLinksRemoved: 4, leftoversRemoved: 0 });
    const check = await runBerthCli(['check', s.config]);
    expect(check.stdout).toMatch(/: 0 problems, 0 orphaned blobs\n$/);
    expect(check.code).toBe(0);
  });
});

describe('what the report says', () => {
  it('how many blobs the grace period kept', async () => {
    const s = await serveSite('{graceperiod: 1h}');
    for (let i = 0; i < 12; i++) await pushBlob(s.url, 'app', blob(`young and unreferenced ${i}`));
    const res = await raw(s.debug, 'POST', '/debug/gc');
    expect(res.json()).toMatchObject({ swept: 0, keptYoung: 12 });
    expect(s.berth.log()).toContain('garbage collection done: marked 0; swept 0 blobs (freed 0 B); kept 12 younger than 1h');
  });

  it('a dry run would free, and frees nothing', async () => {
    const s = await serveSite('{graceperiod: 0s, dryrun: true}');
    const loose = blob('unreferenced, and kept by the dry run');
    await pushBlob(s.url, 'app', loose);
    const res = await raw(s.debug, 'POST', '/debug/gc');
    expect(res.json()).toMatchObject({ swept: 1, dryRun: true, bytesFreed: loose.size });
    const done = s.berth.log().split('\n').find((l) => l.includes('garbage collection done')) ?? '';
    expect(done).toContain(`would sweep 1 blobs (would free ${loose.size} B)`);
    expect(done).not.toMatch(/\bfreed\b/);
    expect((await raw(s.url, 'HEAD', `/v2/app/blobs/${loose.digest}`)).status).toBe(200);
  });
});
