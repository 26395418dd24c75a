/**
 * A private Docker daemon for tests, started the way /work/shared/ENVIRONMENT.md describes: no
 * bridge, no iptables, the vfs storage driver, and its data root, exec root (with the containerd it
 * starts), pidfile, socket and daemon.json all under one temporary directory. Nothing here touches a
 * daemon it did not start: every docker command gets `DOCKER_HOST=unix://<dir>/docker.sock` (and its
 * own DOCKER_CONFIG) in its own environment; the process environment is never changed.
 *
 * Registries: `--insecure-registry 127.0.0.1:<port>` and `localhost:<port>` are passed for each port
 * given. (Verified with docker.io 20.10.24: without them docker also talks plain HTTP to 127.0.0.1:<port>
 * and localhost:<port>, because 127.0.0.0/8 is insecure by default; passing them keeps the test
 * independent of that default.)
 *
 * What is not under the directory: dockerd 20.10 creates /run/docker/plugins (a fixed path) and reads
 * /etc/docker/certs.d for registry certificates; `--config-file` points at a daemon.json in the
 * directory (empty, or holding `registry-mirrors`), so /etc/docker/daemon.json is never read.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type RunOptions, type RunResult, type ToolAvailability, hasExited, killAtExit, run, runResult, sleep, stopChild, toolVersion,
  toolsAvailable, which,
} from './process.js';

/** The commands a private daemon needs, each with the apt package that installs it. */
export const DOCKER_TOOLS: Readonly<Record<string, string>> = {
  docker: 'docker.io',
  dockerd: 'docker.io',
  containerd: 'containerd',
  runc: 'runc',
};

export function dockerAvailable(): ToolAvailability {
  return toolsAvailable(DOCKER_TOOLS);
}

export interface Dockerd {
  /** The PID of dockerd (what `close()` stops). */
  readonly pid: number;
  /** The temporary directory holding all its state. */
  readonly dir: string;
  /** `unix://<dir>/docker.sock` */
  readonly host: string;
  /** Environment for a docker CLI talking to this daemon (DOCKER_HOST, DOCKER_CONFIG; context, TLS unset). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `docker <args>` against this daemon. @throws RunError on a non-zero exit or timeout. */
  docker(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** The same, answering a non-zero exit instead of throwing. */
  dockerResult(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Rewrites daemon.json's `registry-mirrors`, sends dockerd SIGHUP (it reloads them without a restart)
   * and resolves once `docker info` reports the new list.
   */
  setRegistryMirrors(mirrors: readonly string[]): Promise<void>;
  /** The last part of what dockerd logged. */
  output(): string;
  /** Stops dockerd by its PID (SIGTERM, SIGKILL after 20 s), then the containerd it started if still alive, and removes the directory. */
  close(): Promise<void>;
}

export interface DockerdOptions {
  /** Berth ports: each becomes `--insecure-registry 127.0.0.1:<port>` and `localhost:<port>`. */
  readonly registryPorts?: readonly number[];
  /**
   * `registry-mirrors` (e.g. `http://127.0.0.1:<port>`), written to the daemon.json it reads: docker then
   * asks the first that answers for Docker Hub images (`docker pull alpine:1` as `library/alpine`),
   * falling back to docker.io itself (unreachable here, so a pull that succeeds came through a mirror).
   * `setRegistryMirrors` changes them on the running daemon.
   */
  readonly registryMirrors?: readonly string[];
  /** How long to wait for `docker info` to succeed. Default 60 s. */
  readonly readyTimeoutMs?: number;
}

const LOG_TAIL = 32 * 1024;
const STOP_GRACE_MS = 20_000;

function dockerdArgs(dir: string, ports: readonly number[]): string[] {
  const args = [
    '--config-file', join(dir, 'daemon.json'),
    '--iptables=false', '--ip6tables=false', '--bridge=none', '--storage-driver=vfs',
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'exec'),
    '--pidfile', join(dir, 'dockerd.pid'),
    '--host', `unix://${join(dir, 'docker.sock')}`,
  ];
  for (const port of ports) args.push('--insecure-registry', `127.0.0.1:${port}`, '--insecure-registry', `localhost:${port}`);
  return args;
}

function daemonJson(mirrors: readonly string[]): string {
  return `${JSON.stringify(mirrors.length > 0 ? { 'registry-mirrors': mirrors } : {})}\n`;
}

type DockerRun = (args: readonly string[], o?: RunOptions) => Promise<RunResult>;

async function reloadMirrors(pid: number, dir: string, mirrors: readonly string[], dockerResult: DockerRun): Promise<void> {
  await writeFile(join(dir, 'daemon.json'), daemonJson(mirrors));
  process.kill(pid, 'SIGHUP');
  // docker info shows each mirror with a trailing slash
  const want = JSON.stringify(mirrors.map((m) => (m.endsWith('/') ? m : `${m}/`)));
  let seen = '';
  for (let i = 0; i < 100; i++) {
    const info = await dockerResult(['info', '--format', '{{json .RegistryConfig.Mirrors}}'], { timeoutMs: 10_000 });
    seen = info.stdout.trim();
    if (seen === want || (mirrors.length === 0 && (seen === 'null' || seen === '[]'))) return;
    await sleep(100);
  }
  throw new Error(`dockerd did not take registry-mirrors ${want} after SIGHUP (docker info says ${seen})`);
}

/** Is `pid` alive and a containerd whose command line names `dir` (so one this daemon started)? */
async function isOurContainerd(pid: number, dir: string): Promise<boolean> {
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
    return cmdline.includes('containerd') && cmdline.includes(dir);
  } catch {
    return false;
  }
}

async function stopContainerd(dir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8'), 10);
  } catch {
    return; // never started or already cleaned up by dockerd
  }
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (!Number.isInteger(pid) || !(await isOurContainerd(pid, dir))) return;
    try {
      process.kill(pid, signal);
    } catch {
      return; // exited meanwhile
    }
    for (let i = 0; i < 50 && (await isOurContainerd(pid, dir)); i++) await sleep(100);
  }
}

async function stopDockerd(child: ChildProcess, dir: string): Promise<void> {
  await stopChild(child, STOP_GRACE_MS);
  await stopContainerd(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** dockerd as a child process, its log tail collected, SIGTERM'd by PID if the test process exits without closing it. */
function spawnDockerd(
  binary: string,
  dir: string,
  opts: DockerdOptions,
): { child: ChildProcess; log: () => string; spawnError: () => Error | undefined } {
  const child = spawn(binary, dockerdArgs(dir, opts.registryPorts ?? []), { stdio: ['ignore', 'pipe', 'pipe'] });
  killAtExit(child, 'SIGTERM'); // dockerd then stops the containerd it started
  let log = '';
  let error: Error | undefined;
  const collect = (c: Buffer): void => {
    log = (log + c.toString('utf8')).slice(-LOG_TAIL);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (err) => {
    error = err;
  });
  return { child, log: () => log, spawnError: () => error };
}

/**
 * Starts a private dockerd and resolves once `docker info` answers through its socket.
 * @throws Error saying why it could not start (exit code and signal, the end of its log) or that it did not get ready in time.
 */
export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  const binary = which('dockerd');
  const cli = which('docker');
  if (binary === undefined || cli === undefined) throw new Error('docker and dockerd must be on PATH (apt-get install -y docker.io)');
  const dir = await mkdtemp(join(tmpdir(), 'berth-dockerd-'));
  await writeFile(join(dir, 'daemon.json'), daemonJson(opts.registryMirrors ?? []));
  await mkdir(join(dir, 'client-config'));
  const env = {
    DOCKER_HOST: `unix://${join(dir, 'docker.sock')}`,
    DOCKER_CONFIG: join(dir, 'client-config'),
    DOCKER_CONTEXT: undefined,
    DOCKER_TLS_VERIFY: undefined,
    DOCKER_CERT_PATH: undefined,
  };
  const docker = (args: readonly string[], o: RunOptions = {}): Promise<RunResult> => run(cli, args, { ...o, env: { ...o.env, ...env } });
  const dockerResult = (args: readonly string[], o: RunOptions = {}): Promise<RunResult> =>
    runResult(cli, args, { ...o, env: { ...o.env, ...env } });
  const { child, log, spawnError } = spawnDockerd(binary, dir, opts);

  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + readyTimeoutMs;
  let lastInfo = '';
  while (Date.now() < deadline && spawnError() === undefined && !hasExited(child) && child.pid !== undefined) {
    const info = await dockerResult(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 }).catch((e: Error) => e);
    if (!(info instanceof Error) && info.code === 0) {
      const pid = child.pid;
      const setRegistryMirrors = (mirrors: readonly string[]): Promise<void> => reloadMirrors(pid, dir, mirrors, dockerResult);
      return { pid, dir, host: env.DOCKER_HOST, env, docker, dockerResult, setRegistryMirrors, output: log, close: () => stopDockerd(child, dir) };
    }
    lastInfo = info instanceof Error ? info.message : `${info.stdout}${info.stderr}`.trim();
    await sleep(250);
  }
  const err = spawnError();
  const why =
    err !== undefined
      ? `could not be started: ${err.message}`
      : hasExited(child)
        ? `exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)}) before docker info answered`
        : `did not answer docker info within ${readyTimeoutMs} ms (last: ${lastInfo})`;
  await stopDockerd(child, dir);
  throw new Error(`dockerd (${toolVersion('dockerd')}) ${why}; the end of its log:\n${log().trim() || '(nothing)'}`);
}

/**
 * For a test file's beforeAll: the started daemon, or why it could not start. Under CI=true a daemon
 * that cannot start is a failure (this throws); elsewhere the reason is printed with console.warn
 * and returned, for the tests to skip with it (`ctx.skip(reason)`).
 */
export async function startDockerdOrReason(opts: DockerdOptions = {}): Promise<{ dockerd: Dockerd } | { reason: string }> {
  try {
    return { dockerd: await startDockerd(opts) };
  } catch (err) {
    const reason = `a private dockerd cannot run here: ${(err as Error).message}`;
    if (process.env['CI'] === 'true') throw new Error(`${reason} (CI=true: this fails the run instead of skipping)`);
    console.warn(`SKIPPED: ${reason}`);
    return { reason };
  }
}
