/**
 * The real `berth` command line as a child process (node + tsx + src/main.ts): `serve` with a config
 * file, with REGISTRY_* overrides, and with neither (./data under its cwd); one-line config errors with
 * exit 1; `help` and unknown commands; a clean exit 0 on SIGTERM and SIGINT.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { blobData as blobDataPath, layerLink, uploadsDir, v2 } from './helpers/layout.js';
import { answersV2, blob, errorCode, pushBlob, raw } from './helpers/oci.js';
import { freePort, hasExited, killAtExit, sleep, stopChild } from './helpers/tools.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(PROJECT, 'src/main.ts');
/** tsx's loader by absolute URL, so the CLI also starts from a cwd outside the project. */
const TSX = pathToFileURL(createRequire(join(PROJECT, 'package.json')).resolve('tsx')).href;
const READY_MS = 20_000;
const EXIT_MS = 10_000;

interface Cli {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
}

const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children) await stopChild(child);
  children.clear();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** process.env without any REGISTRY_* variable (nor NODE_OPTIONS), plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('REGISTRY_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return { ...env, ...extra };
}

function runCli(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Cli {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd: opts.cwd ?? PROJECT,
    env: opts.env ?? cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  // Should this test process end before afterEach ran (a crash, an interrupted run), it is killed by PID.
  killAtExit(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  return { child, stdout: () => out, stderr: () => err };
}

/** Resolves with the exit code and signal; rejects after `ms`. */
function exited(cli: Cli, ms = EXIT_MS): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const { child } = cli;
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained: wait for 'close' so stdout/stderr are complete.
      resolve({ code: child.exitCode, signal: child.signalCode });
    };
    const timer = setTimeout(() => {
      child.off('close', done);
      reject(new Error(`berth did not exit within ${ms} ms; stderr: ${cli.stderr()}`));
    }, ms);
    if (hasExited(child)) {
      if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return done();
    }
    child.once('close', done);
  });
}

/** Waits until `GET <url>/v2/` answers 200; fails early, with the output, if the process exits. */
async function ready(cli: Cli, url: string): Promise<void> {
  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (hasExited(cli.child)) {
      throw new Error(`berth exited (${String(cli.child.exitCode)}) before serving; stderr: ${cli.stderr()}`);
    }
    if (await answersV2(url)) return;
    await sleep(50);
  }
  throw new Error(`berth did not answer GET ${url}/v2/ within ${READY_MS} ms; stderr: ${cli.stderr()}`);
}

async function startServing(args: readonly string[], url: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Cli> {
  const cli = runCli(args, opts);
  await ready(cli, url);
  return cli;
}

const blobData = (root: string, digest: string): string => join(v2(root), blobDataPath(digest));

function configFile(o: { port: number; root: string }): string {
  return ['version: 0.1', 'log:', '  level: warn', 'http:', `  addr: 127.0.0.1:${o.port}`, 'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(o.root)}`, ''].join('\n');
}

async function writeConfig(dir: string, text: string): Promise<string> {
  const file = join(dir, 'config.yml');
  await writeFile(file, text);
  return file;
}

/** Pushes a blob and checks it landed under `root` with the same bytes. */
async function pushAndFind(url: string, root: string, seed: string): Promise<string> {
  const b = blob(`cli test blob ${seed}`);
  await pushBlob(url, 'cli/repo', b);
  expect(await readFile(blobData(root, b.digest))).toEqual(b.bytes);
  const link = join(v2(root), layerLink('cli/repo', b.digest));
  expect(await readFile(link, 'latin1')).toBe(b.digest);
  return b.digest;
}

describe('berth serve with a config file', () => {
  it('serves GET /v2/ with the API version header and stores pushed blobs under rootdirectory', async () => {
    const dir = await tempDir('berth-cli-');
    const root = join(dir, 'root');
    const port = await freePort();
    const file = await writeConfig(dir, configFile({ port, root }));
    const url = `http://127.0.0.1:${port}`;
    const cli = await startServing(['serve', file], url);
    const res = await raw(url, 'GET', '/v2/');
    expect(res.status).toBe(200);
    expect(res.header('Docker-Distribution-API-Version')).toBe('registry/2.0');
    const digest = await pushAndFind(url, root, 'file');
    // With a file, storage.delete.enabled defaults to false, as in registry:2.
    const del = await raw(url, 'DELETE', `/v2/cli/repo/blobs/${digest}`);
    expect(del.status).toBe(405);
    expect(errorCode(del)).toBe('UNSUPPORTED');
    expect(cli.child.exitCode).toBeNull();
  });

  it('takes a lone .yml argument as `serve <file>`, as registry:2\'s image does', async () => {
    const dir = await tempDir('berth-cli-bare-');
    const port = await freePort();
    const file = await writeConfig(dir, configFile({ port, root: join(dir, 'root') }));
    const url = `http://127.0.0.1:${port}`;
    const cli = await startServing([file], url);
    expect((await raw(url, 'GET', '/v2/')).status).toBe(200);
    expect(cli.child.exitCode).toBeNull();
  });
});

describe('REGISTRY_* environment overrides', () => {
  it('REGISTRY_HTTP_ADDR and REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY work with no file', async () => {
    const dir = await tempDir('berth-cli-env-');
    const root = join(dir, 'env-root');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = cleanEnv({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root });
    await startServing(['serve'], url, { cwd: dir, env });
    await pushAndFind(url, root, 'env');
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('REGISTRY_CONFIGURATION_PATH names the file when no argument does', async () => {
    const dir = await tempDir('berth-cli-path-');
    const root = join(dir, 'file-root');
    const port = await freePort();
    const file = await writeConfig(dir, configFile({ port, root }));
    const url = `http://127.0.0.1:${port}`;
    await startServing(['serve'], url, { cwd: dir, env: cleanEnv({ REGISTRY_CONFIGURATION_PATH: file }) });
    await pushAndFind(url, root, 'path');
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('overrides win over the file named by REGISTRY_CONFIGURATION_PATH', async () => {
    const dir = await tempDir('berth-cli-both-');
    const fileRoot = join(dir, 'file-root');
    const envRoot = join(dir, 'env-root');
    const filePort = await freePort();
    const envPort = await freePort();
    const file = await writeConfig(dir, configFile({ port: filePort, root: fileRoot }));
    const url = `http://127.0.0.1:${envPort}`;
    const env = cleanEnv({
      REGISTRY_CONFIGURATION_PATH: file,
      REGISTRY_HTTP_ADDR: `127.0.0.1:${envPort}`,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: envRoot,
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    });
    await startServing(['serve'], url, { cwd: dir, env });
    const digest = await pushAndFind(url, envRoot, 'both');
    expect(existsSync(fileRoot)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${filePort}/v2/`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
    expect((await raw(url, 'DELETE', `/v2/cli/repo/blobs/${digest}`)).status).toBe(202);
  });
});

describe('berth serve with no file and no environment', () => {
  it('stores under ./data relative to its cwd, with deletes enabled', async () => {
    const cwd = await tempDir('berth-cli-cwd-');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await startServing(['serve'], url, { cwd, env: cleanEnv({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }) });
    const digest = await pushAndFind(url, join(cwd, 'data'), 'default');
    expect(existsSync(blobData(join(cwd, 'data'), digest))).toBe(true);
    const del = await raw(url, 'DELETE', `/v2/cli/repo/blobs/${digest}`);
    expect(del.status, del.body.toString()).toBe(202);
    expect((await raw(url, 'GET', `/v2/cli/repo/blobs/${digest}`)).status).toBe(404);
  });
});

describe('an invalid configuration stops start-up: exit 1 and one line naming the key or file', () => {
  const valid = (port: number, root: string): string => configFile({ port, root });
  const cases: { name: string; names: (file: string) => string; make: (port: number, root: string) => string | undefined; viaEnv?: boolean }[] = [
    { name: 'unknown key http.adr', names: () => 'http.adr', make: (p, r) => valid(p, r).replace('http:\n', 'http:\n  adr: 127.0.0.1:1\n') },
    { name: 'bad log.level: loud', names: () => 'log.level', make: (p, r) => valid(p, r).replace('level: warn', 'level: loud') },
    { name: 'YAML syntax error', names: (file) => file, make: (p, r) => `${valid(p, r)}  bad: [unclosed\n: : :\n` },
    { name: 'missing file (argument)', names: (file) => file, make: () => undefined },
    { name: 'missing file (REGISTRY_CONFIGURATION_PATH)', names: (file) => file, make: () => undefined, viaEnv: true },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await tempDir('berth-cli-bad-');
      const port = await freePort();
      const text = c.make(port, join(dir, 'root'));
      const file = join(dir, 'config.yml');
      if (text !== undefined) await writeFile(file, text);
      const started = Date.now();
      const cli = c.viaEnv === true
        ? runCli(['serve'], { cwd: dir, env: cleanEnv({ REGISTRY_CONFIGURATION_PATH: file }) })
        : runCli(['serve', file], { cwd: dir });
      const { code } = await exited(cli);
      expect(code, cli.stderr()).toBe(1);
      expect(Date.now() - started).toBeLessThan(EXIT_MS);
      const lines = cli.stderr().split('\n').filter((l) => l.trim() !== '');
      expect(lines, cli.stderr()).toHaveLength(1);
      expect(lines[0]).toContain(c.names(file));
      expect(lines[0]).not.toMatch(/^\s+at /);
      expect(existsSync(join(dir, 'root'))).toBe(false);
    });
  }
});

describe('commands', () => {
  it('help prints the usage on stdout and exits 0', async () => {
    const cli = runCli(['help']);
    expect((await exited(cli)).code).toBe(0);
    expect(cli.stdout()).toMatch(/^usage: berth /);
    expect(cli.stdout()).toContain('serve [config.yml]');
  });

  it('an unknown command, or serve with two files, prints the usage on stderr and exits 2', async () => {
    for (const args of [['frobnicate'], [], ['serve', 'a.yml', 'b.yml']]) {
      const cli = runCli(args);
      expect((await exited(cli)).code, args.join(' ')).toBe(2);
      // What is wrong comes first (`berth: unknown command "frobnicate"`), then the usage.
      expect(cli.stderr(), args.join(' ')).toMatch(/^(berth: [^\n]+\n)?usage: berth /);
      expect(cli.stdout()).toBe('');
    }
  });
});

describe('signals', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} makes it exit 0, even with an idle keep-alive connection open`, async () => {
      const dir = await tempDir('berth-cli-sig-');
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const cli = await startServing(['serve', await writeConfig(dir, configFile({ port, root: join(dir, 'root') }))], url);
      const agent = new Agent({ keepAlive: true });
      try {
        await new Promise<void>((resolveGet, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/v2/', agent }, (res) => {
            res.resume();
            res.on('end', () => resolveGet());
          });
          req.on('error', reject);
          req.end();
        });
        const pid = cli.child.pid;
        if (pid === undefined) throw new Error('no pid');
        process.kill(pid, signal);
        const { code, signal: killedBy } = await exited(cli, 5_000);
        expect({ code, killedBy }).toEqual({ code: 0, killedBy: null });
      } finally {
        agent.destroy();
      }
    });
  }

  it('after SIGTERM the port is closed, the exit code is 0 and what was pushed stays on disk', async () => {
    const dir = await tempDir('berth-cli-stop-');
    const root = join(dir, 'root');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const cli = await startServing(['serve', await writeConfig(dir, configFile({ port, root }))], url);
    const digest = await pushAndFind(url, root, 'stop');
    await stopChild(cli.child);
    expect(cli.child.exitCode).toBe(0);
    await expect(fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
    expect(existsSync(blobData(root, digest))).toBe(true);
    expect(await readdir(join(v2(root), uploadsDir('cli/repo'))).catch(() => [])).toEqual([]);
  });
});
