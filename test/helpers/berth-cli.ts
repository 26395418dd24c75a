/**
 * The real `berth` command line run to completion (node + tsx + src/main.ts), for the offline commands
 * (`garbage-collect`, `check`): exit code, stdout and stderr. REGISTRY_* variables of the test process
 * are not passed on, so only the given config file and `env` count.
 */
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type RunResult, runResult } from './tools.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(PROJECT, 'src/main.ts');
const TSX = pathToFileURL(createRequire(join(PROJECT, 'package.json')).resolve('tsx')).href;

/** Runs `berth <args>`; answers whatever the exit code. */
export function runBerthCli(
  args: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { NODE_OPTIONS: undefined };
  for (const k of Object.keys(process.env)) if (k.startsWith('REGISTRY_')) env[k] = undefined;
  return runResult(process.execPath, ['--import', TSX, MAIN, ...args], {
    env: { ...env, ...opts.env },
    cwd: PROJECT,
    timeoutMs: opts.timeoutMs ?? 60_000,
    ...(opts.input !== undefined && { input: opts.input }),
  });
}

/** A minimal config.yml for a filesystem root. */
export function rootConfig(root: string, extra: readonly string[] = []): string {
  return ['version: 0.1', 'log:', '  level: info', 'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(root)}`, ...extra, ''].join('\n');
}
