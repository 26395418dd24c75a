/**
 * The command line's own commands (issue #14), as real processes: `berth version` and `--version`, an
 * unknown command named as such, `--help` after a command (`serve --help` is help, not a config error),
 * and `berth htpasswd USER`, whose line a real server then accepts for Basic auth.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { raw } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const dirs: string[] = [];
const running: BerthProcess[] = [];
afterAll(async () => {
  for (const b of running.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('berth version, help and unknown commands', () => {
  it('version and --version print the package version', async () => {
    const pkg = JSON.parse(await readFile(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };
    for (const arg of ['version', '--version']) {
      const r = await runBerthCli([arg]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`berth ${pkg.version} (node ${process.version})\n`);
    }
  });

  it('an unknown command is named, with the usage, exit 2', async () => {
    const r = await runBerthCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^berth: unknown command "frobnicate"\nusage: berth <command>/);
  });

  it('serve --help and garbage-collect --help print the usage, exit 0', async () => {
    for (const cmd of ['serve', 'garbage-collect']) {
      const r = await runBerthCli([cmd, '--help']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^usage: berth <command> \[args\]/);
      expect(r.code).toBe(0);
    }
  });
});

describe('berth htpasswd', () => {
  it('prints a bcrypt line that a real server accepts for Basic auth', async () => {
    const r = await runBerthCli(['htpasswd', 'alice'], { input: 'correct horse\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^alice:\$2[aby]\$10\$[./A-Za-z0-9]{53}\n$/);
    const dir = await mkdtemp(join(tmpdir(), 'berth-htpasswd-'));
    dirs.push(dir);
    await writeFile(join(dir, 'htpasswd'), r.stdout);
    const port = await freePort();
    const config = rootConfig(join(dir, 'root'), [
      `http: {addr: "127.0.0.1:${port}", secret: htpasswd-test}`,
      `auth: {htpasswd: {realm: test, path: ${JSON.stringify(join(dir, 'htpasswd'))}}}`,
    ]);
    running.push(await startBerthProcess({ config, configPath: join(dir, 'config.yml') }));
    const url = `http://127.0.0.1:${port}`;
    const basic = (user: string, pass: string): Record<string, string> => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
    expect((await raw(url, 'GET', '/v2/', { headers: basic('alice', 'correct horse') })).status).toBe(200);
    expect((await raw(url, 'GET', '/v2/', { headers: basic('alice', 'wrong') })).status).toBe(401);
  });

  it('refuses a bad command line (exit 2) and an empty password (exit 1)', async () => {
    expect((await runBerthCli(['htpasswd'])).code).toBe(2);
    expect((await runBerthCli(['htpasswd', 'a', 'b'])).code).toBe(2);
    expect((await runBerthCli(['htpasswd', 'a:b'], { input: 'x\n' })).code).toBe(2);
    const empty = await runBerthCli(['htpasswd', 'alice'], { input: '' });
    expect(empty.code).toBe(1);
    expect(empty.stdout).toBe('');
  });
});
