/**
 * What start-up says and what a failed start leaves (issue #14):
 *   - a config error from an environment variable names the variable; an unknown key suggests the
 *     nearest known one (real `berth serve` processes, exit 1, one line);
 *   - access rules and groups naming users the htpasswd file lacks are warned about, and so is Basic
 *     auth over plain HTTP on an address other hosts can reach (not on loopback);
 *   - a `serve()` that fails midway (its debug port taken) closes what it had opened: the same root
 *     and port then serve at once (before, the index lock and the listener stayed held).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { answersV2 } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const dirs: string[] = [];
const running: BerthProcess[] = [];
const servings: Serving[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) await b.stop();
  for (const s of servings.splice(0)) await s.stop();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-startup-'));
  dirs.push(dir);
  return dir;
}

/** One htpasswd line for alice (password "pw"), made by `berth htpasswd`. */
async function aliceHtpasswd(dir: string): Promise<string> {
  const line = await runBerthCli(['htpasswd', '--cost', '4', 'alice'], { input: 'pw\n' });
  expect(line.code).toBe(0);
  const path = join(dir, 'htpasswd');
  await writeFile(path, line.stdout);
  return path;
}

describe('configuration errors name their source', () => {
  it('an error from an environment variable names the variable', async () => {
    const dir = await tempDir();
    const config = join(dir, 'config.yml');
    await writeFile(config, rootConfig(join(dir, 'root'), [`http: {addr: "127.0.0.1:${await freePort()}"}`]));
    const r = await runBerthCli(['serve', config], { env: { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('config: REGISTRY_STORAGE_DELETE_ENABLED (storage.delete.enabled): expected true or false, got "maybe"\n');
  });

  it('an unknown key suggests the nearest known one', async () => {
    const dir = await tempDir();
    const config = join(dir, 'config.yml');
    await writeFile(config, `version: 0.1\nstorage:\n  filesytem:\n    rootdirectory: ${JSON.stringify(join(dir, 'root'))}\n`);
    const r = await runBerthCli(['serve', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('config: storage.filesytem: unknown key (did you mean storage.filesystem?)\n');
  });
});

describe('start-up warnings', () => {
  it('rules naming users missing from the htpasswd file, and Basic over plain HTTP on a reachable address', async () => {
    const dir = await tempDir();
    const htpasswd = await aliceHtpasswd(dir);
    const port = await freePort();
    const config = rootConfig(join(dir, 'root'), [
      // Every interface: reachable from other hosts, and plain HTTP.
      `http: {addr: "0.0.0.0:${port}", secret: startup-test}`,
      'auth:',
      '  builtin:',
      `    htpasswd: ${JSON.stringify(htpasswd)}`,
      '    groups: {admins: [alice, carol]}',
      '    rules:',
      '      - {repositories: ["**"], groups: [admins], actions: ["*"]}',
      '      - {repositories: ["team/**"], users: [alice, bob, "*"], actions: [pull]}',
    ]);
    const berth = await startBerthProcess({ config, configPath: join(dir, 'config.yml') });
    running.push(berth);
    const log = berth.log();
    // The log may be text or JSON (which escapes the quotes).
    expect(log).toMatch(/config: auth\.builtin\.rules\[1\]: names user \\?"bob\\?", who is not in the htpasswd file/);
    expect(log).toMatch(/config: auth\.builtin\.groups\.admins: names user \\?"carol\\?"/);
    expect(log).not.toMatch(/names user \\?"alice/);
    expect(log).toContain(`auth.builtin: Basic credentials (passwords) will cross the network in clear text: http.addr 0.0.0.0:${port} is plain HTTP`);
    expect(await answersV2(`http://127.0.0.1:${port}`)).toBe(false); // 401: auth is on
  });

  it('no plain-HTTP warning on loopback', async () => {
    const dir = await tempDir();
    const htpasswd = await aliceHtpasswd(dir);
    const config = rootConfig(join(dir, 'root'), [
      `http: {addr: "127.0.0.1:${await freePort()}", secret: startup-test}`,
      `auth: {htpasswd: {realm: test, path: ${JSON.stringify(htpasswd)}}}`,
    ]);
    const berth = await startBerthProcess({ config, configPath: join(dir, 'config.yml') });
    running.push(berth);
    expect(berth.log()).not.toContain('clear text');
  });
});

describe('a serve() that fails midway', () => {
  it('closes what it opened: the same root and port serve right after', async () => {
    const dir = await tempDir();
    const [port, debugPort] = [await freePort(), await freePort()];
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(debugPort, '127.0.0.1', resolve));
    const config = join(dir, 'config.yml');
    await writeFile(config, rootConfig(join(dir, 'root'), [
      `log: {level: error}`,
      `http: {addr: "127.0.0.1:${port}", secret: startup-test, debug: {addr: "127.0.0.1:${debugPort}"}}`,
    ]).replace('log:\n  level: info\n', ''));
    await expect(serve(config, {})).rejects.toThrow(/EADDRINUSE/);
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    const again = await serve(config, {});
    servings.push(again);
    expect(await answersV2(again.running.url)).toBe(true);
  });
});
