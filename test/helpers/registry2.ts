/**
 * The reference registry in tests: CNCF distribution 2.8 (`docker-registry`, Debian's package of
 * registry:2) as a child process on 127.0.0.1 over a given root, for layout and migration tests.
 *
 * Also the rule for tests that need an external tool: under CI=true a missing tool fails the run;
 * elsewhere the tests are skipped with a printed reason, never silently.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, it } from 'vitest';

export type ToolAvailability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface Registry2 {
  /** e.g. `http://127.0.0.1:40123` */
  readonly url: string;
  /** The storage root directory it serves (rootdirectory). */
  readonly root: string;
  /** The process id of the registry (what `close()` kills). */
  readonly pid: number;
  /** What the process wrote to stdout and stderr so far (its log), capped. */
  output(): string;
  /** Stops exactly this process (SIGTERM, then SIGKILL after 5 s) and waits for its exit. */
  close(): Promise<void>;
}

export interface Registry2Options {
  /** rootdirectory of the filesystem driver; the layout lives under `<root>/docker/registry/v2`. */
  readonly root: string;
  /** http.secret, which signs upload `_state` tokens; give Berth the same one to take over uploads. */
  readonly secret?: string;
  /** How long to wait for `GET /v2/` to answer 200. Default 10 s. */
  readonly readyTimeoutMs?: number;
}

const BINARY = 'docker-registry';
const OUTPUT_CAP = 64 * 1024;
const EXIT_WAIT_MS = 5_000;

/**
 * Registries this test process started and has not stopped. Should the process end without closing
 * them (a crash, an interrupted run), they are killed on its way out, each by its own PID.
 */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** The absolute path of the docker-registry binary on PATH (or /usr/bin), or undefined. */
export function registry2Binary(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, BINARY);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function registry2Available(): ToolAvailability {
  return registry2Binary() === undefined
    ? { ok: false, reason: `${BINARY} not found on PATH (apt-get install -y docker-registry installs CNCF distribution 2.8)` }
    : { ok: true };
}

/**
 * `describe(title, body)` when the tool is available. When it is not: under CI=true a suite whose
 * beforeAll throws (the run fails, naming the tool and the reason); otherwise `describe.skip` with a
 * console.warn saying what was skipped and why.
 */
export function describeWithTool(tool: string, availability: ToolAvailability, title: string, body: () => void): void {
  if (availability.ok) {
    describe(title, body);
    return;
  }
  const message = `${tool} is required by "${title}" but is unavailable: ${availability.reason}`;
  if (process.env['CI'] === 'true') {
    describe(title, () => {
      beforeAll(() => {
        throw new Error(`${message} (CI=true: a missing tool fails the run instead of skipping)`);
      });
      it(`has ${tool}`, () => undefined);
    });
    return;
  }
  console.warn(`SKIPPED: ${message}`);
  describe.skip(title, body);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

function configYaml(root: string, port: number, secret: string | undefined): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
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
  ];
  if (secret !== undefined) lines.push(`  secret: ${JSON.stringify(secret)}`);
  return `${lines.join('\n')}\n`;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Stops one child by its PID: SIGTERM, then SIGKILL if it has not exited after EXIT_WAIT_MS. */
export async function stopChild(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(child, EXIT_WAIT_MS)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  if (!(await waitForExit(child, EXIT_WAIT_MS))) throw new Error(`process ${pid} did not exit after SIGKILL`);
}

async function answers200(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts docker-registry over `root`; resolves once `GET /v2/` answers 200. */
export async function startRegistry2(opts: Registry2Options): Promise<Registry2> {
  const binary = registry2Binary();
  if (binary === undefined) throw new Error(`${BINARY} not found on PATH`);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  let lastError = '';
  // The port is free when picked but could be taken before the registry binds it: retry then.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'registry2-conf-'));
    const port = await freePort();
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, configYaml(opts.root, port, opts.secret));
    const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.once('exit', () => running.delete(child));
    let output = '';
    const collect = (chunk: Buffer): void => {
      if (output.length < OUTPUT_CAP) output += chunk.toString('utf8');
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    const url = `http://127.0.0.1:${port}`;
    const cleanup = async (): Promise<void> => {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    };
    const deadline = Date.now() + readyTimeoutMs;
    let ready = false;
    while (Date.now() < deadline) {
      if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) break;
      if (await answers200(url)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (ready) {
      const pid = child.pid;
      if (pid === undefined) throw new Error('docker-registry has no pid');
      return { url, root: opts.root, pid, output: () => output, close: cleanup };
    }
    const exited = child.exitCode !== null || child.signalCode !== null;
    await cleanup();
    lastError =
      `docker-registry on ${url} ` +
      (spawnError !== undefined
        ? `could not be started: ${spawnError.message}`
        : exited
          ? `exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)}) before answering GET /v2/`
          : `did not answer GET /v2/ with 200 within ${readyTimeoutMs} ms`) +
      `; its output:\n${output.trim() || '(nothing)'}`;
    if (!/address already in use/i.test(output)) break;
  }
  throw new Error(lastError);
}
