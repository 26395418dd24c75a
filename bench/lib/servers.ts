/**
 * The two registries under comparison, each as a child process on 127.0.0.1 over its own storage root:
 * Berth from this checkout and Debian's docker-registry (CNCF distribution 2.8). Both get equivalent
 * configs: filesystem storage, deletes enabled, no access log, upload purging off, registry:2 logging
 * errors only and Berth warnings only — except where a family needs Berth's `index: rebuilt from
 * storage` line to know it is ready (listing), which is logged at `info` (and so, until the access log
 * can be switched off, one JSON line per request).
 *
 * Berth runs as it does in production, built (`buildBerth`: the bundle of scripts/build-server.ts into
 * a temporary directory, then `node <dir>/dist/main.js`), or straight from the sources through tsx (`BERTH_TSX`, quicker to start
 * a development run). Either may get extra Node flags (`--cpu-prof`, `--heap-prof`).
 */
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildServer } from '../../scripts/build-server.js';
import { type Server, freePort, run, runResult, startServer, which } from './proc.js';

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

/** How to run Berth: `cmd ...args <subcommand> …`. */
export interface BerthCommand {
  /** What the results say Berth ran as. */
  readonly label: string;
  readonly cmd: string;
  /** Everything before the subcommand (`serve`, `garbage-collect`, …). */
  readonly args: readonly string[];
}

/** Berth from its TypeScript sources through tsx, from the checkout's root. */
export const BERTH_TSX: BerthCommand = {
  label: 'node --import tsx src/main.ts (from source)',
  cmd: process.execPath,
  args: ['--import', 'tsx', 'src/main.ts'],
};

/**
 * Builds the checkout as `npm run build` does (scripts/build-server.ts: the bundle) into `dir`/dist and
 * answers the command running it. The type check runs first, as in `npm run build`, but does not stop
 * the run (others may be mid-edit in a shared tree): the run goes on with what was built, and the
 * label says so.
 * @throws when nothing runnable was built
 */
export async function buildBerth(dir: string, log: (line: string) => void): Promise<BerthCommand> {
  await mkdir(dir, { recursive: true });
  // The bundle loads classic-level (a native addon, outside it) from node_modules, as the image does.
  await symlink(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const out = join(dir, 'dist');
  const r = await runResult(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json'), '--noEmit'], {
    cwd: REPO_ROOT,
    timeoutMs: 300_000,
  });
  await buildServer(out);
  const main = join(out, 'main.js');
  if (!existsSync(main)) throw new Error(`the build wrote no ${main}`);
  let label = 'node dist/main.js (built as npm run build does: the bundle)';
  if (r.code !== 0) {
    const files = [...new Set([...r.stdout.matchAll(/^(\S+?)\(\d+,\d+\): error/gm)].map((m) => m[1]))];
    log(`warning: tsc reported type errors in ${files.join(', ') || 'the checkout'}; benchmarking what was built`);
    label += ` with type errors reported in ${files.join(', ') || '?'}`;
  }
  return { label, cmd: process.execPath, args: [main] };
}

/**
 * The end every benchmark config shares, for Berth and registry:2 alike: deletes on and upload purging
 * off (under `storage:`), then `sections` (top-level), then the listener on `port` with `secret`.
 */
export function configTail(port: number, sections: readonly string[] = [], secret = SECRET, httpLines: readonly string[] = []): string[] {
  return [
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    ...sections,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${secret}`,
    ...httpLines,
    '',
  ];
}

/**
 * Berth's config.yml for `root`, with top-level `sections` (e.g. a `proxy:` block) before the listener.
 * `accessLog`: one line per request, as a default install writes (`level` must be info for it to show).
 */
export function berthConfig(root: string, port: number, level: 'info' | 'warn' | 'error', sections: readonly string[] = [], accessLog = false, httpLines: readonly string[] = []): string {
  return [
    'version: 0.1',
    'log:',
    `  level: ${level}`,
    '  formatter: json',
    '  accesslog:',
    `    disabled: ${!accessLog}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    ...configTail(port, sections, SECRET, httpLines),
  ].join('\n');
}

/** docker-registry's config.yml for `root`, with top-level `sections`. */
export function registry2Config(root: string, port: number, sections: readonly string[] = []): string {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    ...configTail(port, sections),
  ].join('\n');
}

export function registry2Binary(): string {
  const bin = which(REGISTRY2);
  if (bin === undefined) throw new Error(`${REGISTRY2} not found on PATH (apt-get install -y docker-registry installs CNCF distribution 2.8)`);
  return bin;
}

/** The first line of `docker-registry --version`. */
export async function registry2Version(): Promise<string> {
  const r = await run(registry2Binary(), ['--version'], { timeoutMs: 10_000 });
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

/** Waits (at most `ms`) until `server` answers `GET /v2/` with 200. @throws when it exits first or the time runs out */
export async function waitForV2(server: Server, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (server.exited()) throw new Error(`server exited before answering GET /v2/; output:\n${server.output().trim()}`);
    if (await answersV2(server.url)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${server.url} did not answer GET /v2/ within ${ms} ms; output:\n${server.output().trim()}`);
}

/** How a family wants Berth started. */
export interface BerthStart {
  readonly command: BerthCommand;
  /**
   * `info` waits (at most `readyMs`) for the `index: rebuilt from storage` line, so that listings are
   * served from the index; `warn` waits only for `GET /v2/` (for families that list nothing).
   */
  readonly level: 'info' | 'warn';
  /** Node flags before the script (e.g. `--cpu-prof --cpu-prof-dir <dir>`). */
  readonly nodeFlags?: readonly string[];
  readonly readyMs?: number;
  /** Top-level config sections (YAML lines), e.g. `proxy:` and what is under it. */
  readonly sections?: readonly string[];
  /** Logs at info with the access log on (a default install), whatever `level` waits for. */
  readonly accessLog?: boolean;
  /** A debug listener on this port serving Prometheus metrics at `/metrics`. */
  readonly metricsPort?: number;
  /**
   * `http.workers` above 1: that many worker processes, coordinating through the Redis at `redisAddr`
   * (required then). With `level` info (or the access log on) start-up waits for the primary's
   * `listening` line, logged once every worker is ready.
   */
  readonly workers?: { readonly count: number; readonly redisAddr: string };
}

/** Starts Berth over `root` (config written into `confDir`) and waits until it is ready. */
export async function startBerth(root: string, confDir: string, how: BerthStart): Promise<Running> {
  const port = await freePort();
  const config = join(confDir, 'berth-serve.yml');
  const debug = how.metricsPort === undefined ? [] : ['  debug:', `    addr: 127.0.0.1:${how.metricsPort}`, '    prometheus:', '      enabled: true', '      path: /metrics'];
  const workers = how.workers === undefined ? [] : [`  workers: ${how.workers.count}`];
  const sections = [...(how.sections ?? []), ...(how.workers === undefined ? [] : ['redis:', `  addr: ${how.workers.redisAddr}`])];
  const level = how.accessLog === true ? 'info' : how.level;
  await writeFile(config, berthConfig(root, port, level, sections, how.accessLog === true, [...debug, ...workers]));
  const started = Date.now();
  const args = [...(how.nodeFlags ?? []), ...how.command.args, 'serve', config];
  const server = startServer(how.command.cmd, args, `http://127.0.0.1:${port}`, REPO_ROOT);
  const readyMs = how.readyMs ?? 300_000;
  try {
    if (how.workers !== undefined && level === 'info') await server.waitFor(/"msg":"listening"/, readyMs);
    else if (how.level === 'info') await server.waitFor(/index: rebuilt from storage/, readyMs);
    await waitForV2(server, how.level === 'info' ? 10_000 : readyMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { target: 'berth', server, url: server.url, readyMs: Date.now() - started };
}

/**
 * Starts docker-registry over `root` and waits, at most `readyMs`, until `GET /v2/` answers 200.
 * `sections`: top-level config sections (e.g. `proxy:` for its pull-through cache mode).
 */
export async function startRegistry2(root: string, confDir: string, readyMs = 30_000, sections: readonly string[] = []): Promise<Running> {
  const port = await freePort();
  const config = join(confDir, 'registry2-serve.yml');
  await writeFile(config, registry2Config(root, port, sections));
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
export function startTarget(target: Target, root: string, confDir: string, berth: BerthStart): Promise<Running> {
  return target === 'berth' ? startBerth(root, confDir, berth) : startRegistry2(root, confDir);
}
