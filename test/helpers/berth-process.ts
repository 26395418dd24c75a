/**
 * A real `berth serve` process (node + tsx + src/main.ts) with a config file of the test's making, for
 * tests that need what only a whole process shows: signals, exit codes, another user's permissions.
 * The process is killed by its PID when the test process exits; REGISTRY_* variables of the test
 * process are not passed on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hasExited, killAtExit, sleep, stopChild } from './process.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(PROJECT, 'src/main.ts');
const TSX = pathToFileURL(createRequire(join(PROJECT, 'package.json')).resolve('tsx')).href;

export interface BerthProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr (its log) so far. */
  log(): string;
  /** Resolves with the exit code and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once it is gone. */
  stop(): Promise<void>;
}

export interface BerthProcessOptions {
  /** The whole config.yml. */
  readonly config: string;
  /** Where to write it. */
  readonly configPath: string;
  readonly env?: Record<string, string>;
  /** Run as this user and group (the test must be root to ask). */
  readonly uid?: number;
  readonly gid?: number;
  /** Resolve once the log contains this (default: the `listening` line); rejects if it exits first. */
  readonly readyWhen?: RegExp;
  readonly readyTimeoutMs?: number;
}

export async function startBerthProcess(o: BerthProcessOptions): Promise<BerthProcess> {
  await writeFile(o.configPath, o.config);
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined };
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', o.configPath], {
    cwd: PROJECT,
    env: { ...env, ...o.env },
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(o.uid !== undefined && { uid: o.uid }),
    ...(o.gid !== undefined && { gid: o.gid }),
  });
  killAtExit(child);
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('close', (code, signal) => res({ code, signal }));
  });
  const ready = o.readyWhen ?? /listening/;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 30_000);
  while (!ready.test(log)) {
    if (hasExited(child)) throw new Error(`berth serve exited before it was ready:\n${log}`);
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`berth serve not ready within ${o.readyTimeoutMs ?? 30_000} ms:\n${log}`);
    }
    await sleep(25);
  }
  return { child, log: () => log, exited, stop: () => stopChild(child) };
}
