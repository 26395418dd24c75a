/**
 * Child processes and temporary directories for benchmarks. The process helpers themselves (which,
 * freePort, run, stopChild, killAtExit, …) are the tests' vitest-free ones (test/helpers/process.ts),
 * re-exported here; this module adds a long-running server whose output can be waited on, and temporary
 * directories that an interrupted run still removes. Every child is stopped by its PID, never by name:
 * killAtExit signals each one still running when this process exits (SIGINT, a crash).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasExited, killAtExit, sleep, stopChild } from '../../test/helpers/process.js';

export { freePort, run, runResult, sleep, which } from '../../test/helpers/process.js';
export type { RunResult } from '../../test/helpers/process.js';

const OUTPUT_CAP = 256 * 1024;

/** A long-running child whose stdout and stderr are collected (capped) and can be waited on. */
export interface Server {
  readonly pid: number;
  readonly url: string;
  output(): string;
  /** Calls `fn` with every later chunk of its output, past the cap too (the mirror family's MIRROR_TRACE). */
  onOutput(fn: (chunk: string) => void): void;
  exited(): boolean;
  /** Resolves once `re` matches the collected output; rejects on exit or after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray>;
  /** SIGTERM by PID, SIGKILL after `graceMs` (default 5 s; a profiled Berth needs longer to write its profile). */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `cmd args` (no shell) as a server reachable at `url`. */
export function startServer(cmd: string, args: readonly string[], url: string, cwd?: string): Server {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined && { cwd }) });
  killAtExit(child);
  let output = '';
  // Keep the head (start-up lines) and drain the rest so the pipe never blocks the child.
  const listeners: Array<(chunk: string) => void> = [];
  const collect = (chunk: Buffer): void => {
    if (output.length < OUTPUT_CAP) output += chunk.toString('utf8');
    for (const fn of listeners) fn(chunk.toString('utf8'));
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
    onOutput: (fn) => void listeners.push(fn),
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
    stop: (graceMs) => stopChild(child, graceMs),
  };
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
