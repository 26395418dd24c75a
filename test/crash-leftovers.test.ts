/**
 * What a crash leaves behind (issue #14): a real `berth serve` is killed with SIGKILL while 20 clients
 * push, then restarted. Beside whatever the kill happened to cut short, the test plants one leftover of
 * each kind exactly as a crash leaves it (so the test never passes on an empty tree): a temporary
 * `.data.<16 hex>.tmp` in a blob's folder, a `.link.<16 hex>.tmp` in `_layers`, and a tag folder with an
 * `index` link but no `current/link`. `berth check` reports them (exit 1); one collection
 * (`POST /debug/gc`, grace period 1s) removes them and the blobs the kill orphaned (with their `_layers`
 * links); then `berth check` prints 0 problems and no temporary file or unfinished tag is left.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { v2 } from './helpers/layout.js';
import { makeImage, pushImage, raw, sha256 } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const PUSHERS = 20;
const TEMP_FILE = /^\..*\.[0-9a-f]{16}\.tmp$/;
const dirs: string[] = [];
const running: BerthProcess[] = [];
afterAll(async () => {
  for (const b of running.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Every file under `dir` whose name is one of the filesystem driver's temporary names. */
async function tempFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && TEMP_FILE.test(e.name)) found.push(join(e.parentPath, e.name));
  }
  return found;
}

/** Tag folders (`…/_manifests/tags/<tag>`) without `current/link`. */
async function unfinishedTags(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isDirectory() && e.parentPath.endsWith('/_manifests/tags') && !existsSync(join(e.parentPath, e.name, 'current', 'link'))) {
      found.push(join(e.parentPath, e.name));
    }
  }
  return found;
}

/** Sets the times of `dir` and everything under it to `when`. */
async function ageTree(dir: string, when: Date): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) await utimes(join(e.parentPath, e.name), when, when);
  await utimes(dir, when, when);
}

describe('crash leftovers after kill -9 under concurrent pushes', () => {
  it('are reported by check, removed by one collection, and check then prints 0 problems', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-crash-'));
    dirs.push(dir);
    const root = join(dir, 'root');
    const [port, debugPort] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${port}`;
    const configPath = join(dir, 'config.yml');
    const config = rootConfig(root, [
      '  delete: {enabled: true}',
      '  maintenance: {gc: {graceperiod: 1s}}',
      `http: {addr: "127.0.0.1:${port}", secret: crash-leftovers, debug: {addr: "127.0.0.1:${debugPort}"}}`,
    ]);
    const first = await startBerthProcess({ config, configPath });
    running.push(first);

    // 20 pushers, each pushing images one after another until the server dies under them.
    let pushed = 0;
    let enough: () => void = () => undefined;
    const enoughPushed = new Promise<void>((resolve) => (enough = resolve));
    let dead = false;
    const pusher = async (p: number): Promise<void> => {
      for (let i = 0; !dead; i++) {
        try {
          await pushImage(url, `crash/p${p}`, `t${i}`, makeImage(1000 * (p + 1) + i, { layerCount: 3 }));
          pushed += 1;
          if (pushed >= PUSHERS * 3) enough();
        } catch {
          return; // the server is gone
        }
      }
    };
    const pushers = Array.from({ length: PUSHERS }, (_, p) => pusher(p));
    await enoughPushed;
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    dead = true;
    await Promise.all(pushers);
    running.splice(0);
    const leftByKill = await tempFiles(v2(root));

    // The crash happened two minutes ago, as far as the collector can tell: it leaves alone leftovers
    // younger than a minute, whatever the grace period, as they may be writes in progress.
    const old = new Date(Date.now() - 120_000);
    for (const f of leftByKill) await utimes(f, old, old);
    // And one of each kind, as a crash leaves it, last written then.
    const hex = sha256('a blob whose write was cut short').slice('sha256:'.length);
    const planted = [
      join(v2(root), 'blobs/sha256', hex.slice(0, 2), hex, '.data.0123456789abcdef.tmp'),
      join(v2(root), 'repositories/crash/p0/_layers/sha256', hex, '.link.fedcba9876543210.tmp'),
      join(v2(root), 'repositories/crash/p0/_manifests/tags/half/index/sha256', hex, 'link'),
    ];
    for (const f of planted) {
      await mkdir(join(f, '..'), { recursive: true });
      await writeFile(f, f.endsWith('link') ? `sha256:${hex}` : 'partial');
      await utimes(f, old, old);
    }
    for (const tag of await unfinishedTags(v2(root))) await ageTree(tag, old);

    const before = await runBerthCli(['check', configPath]);
    console.log(`kill -9 after ${pushed} pushes; temporary files it left: ${leftByKill.length}\n--- check before the collection ---\n${before.stdout}`);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain(`leftover-file: /docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/.data.0123456789abcdef.tmp: a temporary file of a write cut short`);
    expect(before.stdout).toContain(`leftover-file: /docker/registry/v2/repositories/crash/p0/_layers/sha256/${hex}/.link.fedcba9876543210.tmp`);
    expect(before.stdout).toContain('unfinished-tag: crash/p0:half: has no current link (a tag write cut short); it names nothing');

    const second = await startBerthProcess({ config, configPath });
    running.push(second);
    const gc = await raw(`http://127.0.0.1:${debugPort}`, 'POST', '/debug/gc');
    expect(gc.status).toBe(200);
    const report = gc.json() as { leftoversRemoved: number; swept: number; layerLinksRemoved: number };
    expect(report.leftoversRemoved).toBeGreaterThanOrEqual(3);

    const after = await runBerthCli(['check', configPath]);
    console.log(`--- collection: ${JSON.stringify(report)}\n--- check after one collection ---\n${after.stdout}`);
    expect(after.stdout).toMatch(/^checked \d+ blobs and \d+ repositories: 0 problems, 0 orphaned blobs\n$/m);
    expect(after.code).toBe(0);
    expect(await tempFiles(v2(root))).toEqual([]);
    expect(await unfinishedTags(v2(root))).toEqual([]);
  }, 240_000);
});
