/**
 * Child processes for benchmarks: find a binary, pick a free port on 127.0.0.1, start a long-running
 * server and stop exactly that process by its PID, and run a command to completion under a time limit.
 * Every child is remembered so that an interrupted run (SIGINT, a crash) still signals each one by its
 * PID on the way out; nothing is ever killed by name.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The absolute path of `cmd` on PATH (then /usr/local/bin, /usr/bin, /usr/sbin), or undefined. */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), '/usr/local/bin', '/usr/bin', '/usr/sbin'];
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

const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/** Children started here and still running; each is sent SIGKILL by its PID if this process exits. */
const live = new Set<ChildProcess>();
let exitHook = false;

function track(child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) {
        if (c.pid !== undefined && !hasExited(c)) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    child.once('exit', onExit);
  });
}

/** Stops one child by its PID: SIGTERM, then SIGKILL after `graceMs`. @throws if it outlives the SIGKILL by 5 s */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || hasExited(child)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitForExit(child, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  if (!(await waitForExit(child, 5_000))) throw new Error(`process ${pid} did not exit after SIGKILL`);
}

const OUTPUT_CAP = 256 * 1024;

/** A long-running child whose stdout and stderr are collected (capped) and can be waited on. */
export interface Server {
  readonly pid: number;
  readonly url: string;
  output(): string;
  exited(): boolean;
  /** Resolves once `re` matches the collected output; rejects on exit or after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** Starts `cmd args` (no shell) as a server reachable at `url`. */
export function startServer(cmd: string, args: readonly string[], url: string, cwd?: string): Server {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined && { cwd }) });
  track(child);
  let output = '';
  // Keep the head (start-up lines) and drain the rest so the pipe never blocks the child.
  const collect = (chunk: Buffer): void => {
    if (output.length < OUTPUT_CAP) output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    spawnError = err;
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${cmd} could not be started`);
  return {
    pid,
    url,
    output: () => output,
    exited: () => hasExited(child) || spawnError !== undefined,
    async waitFor(re, ms) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        const m = re.exec(output);
        if (m) return m;
        if (spawnError !== undefined) throw new Error(`${cmd}: ${spawnError.message}`);
        if (hasExited(child)) throw new Error(`${cmd} exited (${String(child.exitCode ?? child.signalCode)}); output:\n${output.trim()}`);
        await sleep(50);
      }
      throw new Error(`${cmd}: no ${String(re)} within ${ms} ms; output:\n${output.trim()}`);
    },
    stop: () => stopChild(child),
  };
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  readonly ms: number;
}

/** Runs `cmd args` to completion (no shell); kills it by PID after `timeoutMs`. @throws on a non-zero exit or timeout */
export function runCommand(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd !== undefined && { cwd: opts.cwd }) });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    let timedOut = false;
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
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) return reject(new Error(`${cmd} ${args.join(' ')}: killed after ${timeoutMs} ms`));
      if (code !== 0) {
        return reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code ?? signal)}:\n${stderr.slice(-4000)}${stdout.slice(-2000)}`));
      }
      resolve({ code: 0, stdout, stderr, ms });
    });
  });
}

/** Temporary directories made here and not yet removed; removed on the way out of an interrupted run. */
const tempDirs = new Set<string>();
let tempHook = false;

/** A new directory under the system's temporary directory, removed at exit unless removed before. */
export async function makeTempDir(prefix: string): Promise<string> {
  if (!tempHook) {
    tempHook = true;
    process.once('exit', () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}
