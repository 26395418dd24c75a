/**
 * Running real programs without a test runner: vitest-free, so benchmarks (bench/) and helpers that
 * start daemons can use it as well as tests (test/helpers/tools.ts re-exports all of it).
 *
 * - `which(cmd)`, `toolVersion(cmd)`, `toolAvailable(cmd)`, `toolsAvailable({ cmd: aptPackage })`: is a
 *   tool there, and which version.
 * - `run(cmd, args, opts)`: spawn without a shell, bounded by a timeout (the child is killed by its PID
 *   when it expires), stdout and stderr captured; throws a RunError carrying both on a non-zero exit.
 *   `runResult` is the same but answers a non-zero exit instead of throwing (for expected failures).
 * - Long-running children (servers, daemons): `freePort()` to give them a port, `killAtExit(child)` so
 *   they never outlive this process, `waitForExit` and `stopChild` to stop exactly one of them.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export type ToolAvailability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const VERSION_TIMEOUT_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 60_000;
const OUTPUT_CAP = 4 * 1024 * 1024;

/** The absolute path of `cmd` on PATH (then /usr/sbin, /usr/bin, /sbin for daemons), or undefined. */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), '/usr/local/bin', '/usr/bin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, cmd);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const versions = new Map<string, string>();

/**
 * The first line of `cmd --version` (cached). @throws when the command is missing, fails or prints nothing.
 */
export function toolVersion(cmd: string): string {
  const cached = versions.get(cmd);
  if (cached !== undefined) return cached;
  const path = which(cmd);
  if (path === undefined) throw new Error(`${cmd} not found on PATH`);
  const res = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: VERSION_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error !== undefined) throw new Error(`${path} --version: ${res.error.message}`);
  if (res.status !== 0) {
    throw new Error(`${path} --version exited ${String(res.status ?? res.signal)}: ${`${res.stdout}${res.stderr}`.trim()}`);
  }
  const line = `${res.stdout}\n${res.stderr}`.split('\n').map((l) => l.trim()).find((l) => l !== '');
  if (line === undefined) throw new Error(`${path} --version printed nothing`);
  versions.set(cmd, line);
  return line;
}

/** `{ ok: true }` when `cmd` is on PATH and `cmd --version` succeeds; otherwise the reason, with the apt package. */
export function toolAvailable(cmd: string, aptPackage: string = cmd): ToolAvailability {
  if (which(cmd) === undefined) return { ok: false, reason: `${cmd} not found on PATH (apt-get install -y ${aptPackage})` };
  try {
    toolVersion(cmd);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** Several tools, each with its apt package: the first unavailable one decides. */
export function toolsAvailable(tools: Readonly<Record<string, string>>): ToolAvailability {
  for (const [cmd, pkg] of Object.entries(tools)) {
    const a = toolAvailable(cmd, pkg);
    if (!a.ok) return a;
  }
  return { ok: true };
}

export interface RunOptions {
  /** Added to (and overriding) the inherited environment; `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Kill the child (SIGKILL, by its PID) and throw after this long. Default 60 s. */
  readonly timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string | Uint8Array;
}

export interface RunResult {
  readonly command: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** A command that failed, timed out or could not start; the message holds its stdout and stderr. */
export class RunError extends Error {
  readonly code = 'BERTH_TEST_RUN_FAILED';
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = 'RunError';
  }
}

const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

function describeRun(r: RunResult): string {
  return `$ ${r.command}\n--- stdout ---\n${r.stdout.trimEnd() || '(empty)'}\n--- stderr ---\n${r.stderr.trimEnd() || '(empty)'}`;
}

/**
 * Runs `cmd args` (no shell) and resolves with its exit code and output, whatever the code.
 * @throws RunError when it cannot be started or outlives `timeoutMs` (it is then killed by its PID).
 */
export function runResult(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  const command = [cmd, ...args].map(quote).join(' ');
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const child: ChildProcess = spawn(cmd, [...args], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const result = (code: number | null, signal: NodeJS.Signals | null): RunResult => ({
      command, code, signal, stdout, stderr, ms: Date.now() - started,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, timeoutMs);
    child.stdout?.on('data', (c: Buffer) => {
      if (stdout.length < OUTPUT_CAP) stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += c.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      const r = result(null, null);
      reject(new RunError(`could not run ${cmd}: ${err.message}\n${describeRun(r)}`, r));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r = result(code, signal);
      if (timedOut) reject(new RunError(`timed out after ${timeoutMs} ms (killed)\n${describeRun(r)}`, r));
      else resolve(r);
    });
    child.stdin?.on('error', () => undefined); // a child that exits without reading its stdin
    child.stdin?.end(opts.input);
  });
}

/**
 * Runs `cmd args` (no shell), bounded by `timeoutMs`.
 * @throws RunError with the command, exit code, stdout and stderr on a non-zero exit, a timeout or a spawn failure.
 */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runResult(cmd, args, opts);
  if (r.code !== 0) {
    throw new RunError(`exited with ${r.code === null ? `signal ${String(r.signal)}` : `code ${r.code}`}\n${describeRun(r)}`, r);
  }
  return r;
}

// ---- long-running children ----

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Where `freePort` looks. A port handed to a child is closed again before the child binds it, so it must
 * not come from the kernel's ephemeral range (Linux: 32768-60999, /proc/sys/net/ipv4/ip_local_port_range):
 * there any outgoing connection of the suite can take it as its local port in between (CI saw
 * `listen EADDRINUSE` that way). Below that range each vitest worker (VITEST_POOL_ID, unique among the
 * workers running at once) walks its own slice, so test files running side by side never hand out the
 * same port; the walk starts at a random place so that files run one after another in one slot do not
 * reuse the previous file's ports first. Outside vitest (benches, scripts) the slot is 0.
 */
const PORT_FLOOR = 20_000;
const PORT_SLICE = 500;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    return Number(low);
  } catch {
    return Number.NaN; // not Linux: no range to stay out of is known
  }
}

function portSlice(): { readonly first: number; readonly size: number } | undefined {
  const low = ephemeralLow();
  const slots = Math.floor((low - PORT_FLOOR) / PORT_SLICE);
  if (!Number.isInteger(slots) || slots < 1) return undefined;
  const pool = Number(process.env['VITEST_POOL_ID'] ?? '0');
  const slot = Number.isInteger(pool) && pool >= 0 ? pool % slots : 0;
  return { first: PORT_FLOOR + slot * PORT_SLICE, size: PORT_SLICE };
}

const slice = portSlice();
let nextInSlice = Math.floor(Math.random() * PORT_SLICE);

/** Binds `port` (0: any) on 127.0.0.1 and closes it again: the port bound, or undefined when it is taken. */
function tryPort(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (bound > 0 ? resolve(bound) : reject(new Error('no port assigned'))));
    });
  });
}

/**
 * A port that was free a moment ago on 127.0.0.1, for a child to listen on: from this worker's slice below
 * the ephemeral range (see PORT_FLOOR), or any port the kernel picks where no such range is known.
 */
export async function freePort(): Promise<number> {
  if (slice === undefined) {
    const port = await tryPort(0);
    if (port === undefined) throw new Error('no port assigned');
    return port;
  }
  for (let tried = 0; tried < slice.size; tried += 1) {
    const port = slice.first + (nextInSlice % slice.size);
    nextInSlice += 1;
    if ((await tryPort(port)) !== undefined) return port;
  }
  throw new Error(`no free port in ${slice.first}-${slice.first + slice.size - 1}`);
}

/** Has `child` exited (with a code or by a signal)? */
export const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/**
 * Children this test process started that are still running, each with the signal to send it should the
 * process end without stopping them (a crash, an interrupted run): they are signalled on its way out,
 * each by its own PID.
 */
const killOnExit = new Map<ChildProcess, NodeJS.Signals>();
let exitHookInstalled = false;

/** Registers `child` to be sent `signal` by its PID if this test process exits while it still runs. */
export function killAtExit(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const [c, sig] of killOnExit) {
        if (c.pid !== undefined && !hasExited(c)) {
          try {
            process.kill(c.pid, sig);
          } catch {
            // already gone
          }
        }
      }
    });
  }
  killOnExit.set(child, signal);
  child.once('exit', () => killOnExit.delete(child));
}

/** Resolves true once `child` has exited, false if it has not after `ms`. */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
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

const KILL_WAIT_MS = 5_000;

/**
 * Stops one child by its PID: SIGTERM, then SIGKILL if it has not exited after `graceMs` (default 5 s).
 * @throws when it has not exited 5 s after the SIGKILL either.
 */
export async function stopChild(child: ChildProcess, graceMs = KILL_WAIT_MS): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || hasExited(child)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(child, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  if (!(await waitForExit(child, KILL_WAIT_MS))) throw new Error(`process ${pid} did not exit after SIGKILL`);
}
