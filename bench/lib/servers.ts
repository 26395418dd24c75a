/**
 * The two registries under comparison, each as a child process on 127.0.0.1 over its own storage root:
 * Berth (`node --import tsx src/main.ts serve <config>`, from this checkout) and Debian's docker-registry
 * (CNCF distribution 2.8). Both get equivalent configs: filesystem storage, deletes enabled, errors-only
 * logging where possible, no access log, upload purging off. Berth's log level is `info` while serving,
 * because readiness is its `index: rebuilt from storage` line; that also logs one JSON line per request
 * (a few microseconds each, counted against Berth).
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Server, freePort, runCommand, startServer, which } from './proc.js';

/** The checkout's root (the directory holding package.json and src/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const REGISTRY2 = 'docker-registry';

export type Target = 'berth' | 'registry2';
export const TARGET_LABEL: Record<Target, string> = { berth: 'Berth', registry2: 'registry:2' };

export interface Running {
  readonly target: Target;
  readonly server: Server;
  readonly url: string;
  /** Milliseconds from spawn until it was ready (for Berth: the index rebuild done). */
  readonly readyMs: number;
}

const SECRET = 'berth-bench-secret';

/** Berth's config.yml for `root`; `port` undefined for offline commands. */
export function berthConfig(root: string, port: number, level: 'info' | 'error'): string {
  return [
    'version: 0.1',
    'log:',
    `  level: ${level}`,
    '  formatter: json',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${SECRET}`,
    '',
  ].join('\n');
}

/** docker-registry's config.yml for `root`. */
export function registry2Config(root: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${SECRET}`,
    '',
  ].join('\n');
}

export function registry2Binary(): string {
  const bin = which(REGISTRY2);
  if (bin === undefined) throw new Error(`${REGISTRY2} not found on PATH (apt-get install -y docker-registry installs CNCF distribution 2.8)`);
  return bin;
}

/** The first line of `docker-registry --version`. */
export async function registry2Version(): Promise<string> {
  const r = await runCommand(registry2Binary(), ['--version'], { timeoutMs: 10_000 });
  return (r.stdout.trim() || r.stderr.trim()).split('\n')[0] ?? 'unknown';
}

async function answersV2(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function waitForV2(server: Server, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (server.exited()) throw new Error(`server exited before answering GET /v2/; output:\n${server.output().trim()}`);
    if (await answersV2(server.url)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${server.url} did not answer GET /v2/ within ${ms} ms; output:\n${server.output().trim()}`);
}

/**
 * Starts Berth over `root` (config written into `confDir`) and waits, at most `readyMs`, until it has
 * rebuilt its listing index from storage, so that listings are served from the index.
 */
export async function startBerth(root: string, confDir: string, readyMs = 300_000): Promise<Running> {
  const port = await freePort();
  const config = join(confDir, 'berth-serve.yml');
  await writeFile(config, berthConfig(root, port, 'info'));
  const started = Date.now();
  const server = startServer(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', config], `http://127.0.0.1:${port}`, REPO_ROOT);
  try {
    await server.waitFor(/index: rebuilt from storage/, readyMs);
    await waitForV2(server, 10_000);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { target: 'berth', server, url: server.url, readyMs: Date.now() - started };
}

/** Starts docker-registry over `root` and waits, at most `readyMs`, until `GET /v2/` answers 200. */
export async function startRegistry2(root: string, confDir: string, readyMs = 30_000): Promise<Running> {
  const port = await freePort();
  const config = join(confDir, 'registry2-serve.yml');
  await writeFile(config, registry2Config(root, port));
  const started = Date.now();
  const server = startServer(registry2Binary(), ['serve', config], `http://127.0.0.1:${port}`);
  try {
    await waitForV2(server, readyMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { target: 'registry2', server, url: server.url, readyMs: Date.now() - started };
}

/** Starts `target` over `root`. */
export function startTarget(target: Target, root: string, confDir: string): Promise<Running> {
  return target === 'berth' ? startBerth(root, confDir) : startRegistry2(root, confDir);
}
