/**
 * The reference registry in tests: CNCF distribution 2.8 (`docker-registry`, Debian's package of
 * registry:2) as a child process on 127.0.0.1 over a given root, for layout and migration tests.
 * Tests that need it are wrapped in `describeWithTool(…, registry2Available(), …)` (test/helpers/tools.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { answersV2 } from './oci.js';
import { type ToolAvailability, freePort, hasExited, killAtExit, sleep, stopChild, which } from './tools.js';

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
  /** registry:2's proxy mode: `proxy.remoteurl` (the pull-through cache). */
  readonly proxyRemoteUrl?: string;
}

const BINARY = 'docker-registry';
const OUTPUT_CAP = 64 * 1024;

export function registry2Available(): ToolAvailability {
  return which(BINARY) === undefined
    ? { ok: false, reason: `${BINARY} not found on PATH (apt-get install -y docker-registry installs CNCF distribution 2.8)` }
    : { ok: true };
}

function configYaml(root: string, port: number, secret: string | undefined, proxyRemoteUrl?: string): string {
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
  if (proxyRemoteUrl !== undefined) lines.push('proxy:', `  remoteurl: ${JSON.stringify(proxyRemoteUrl)}`);
  return `${lines.join('\n')}\n`;
}

/** Starts docker-registry over `root`; resolves once `GET /v2/` answers 200. */
export async function startRegistry2(opts: Registry2Options): Promise<Registry2> {
  const binary = which(BINARY);
  if (binary === undefined) throw new Error(`${BINARY} not found on PATH`);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  let lastError = '';
  // The port is free when picked but could be taken before the registry binds it: retry then.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'registry2-conf-'));
    const port = await freePort();
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, configYaml(opts.root, port, opts.secret, opts.proxyRemoteUrl));
    const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    killAtExit(child);
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
      if (spawnError !== undefined || hasExited(child)) break;
      if (await answersV2(url)) {
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
    const exited = hasExited(child);
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

/**
 * Known noise of docker-registry 2.8: cancelling an upload session that never received a byte logs
 * `error closing blobwriter: … file already closed` although it answers 204.
 */
const KNOWN_NOISE = /error closing blobwriter: sync \S+\/_uploads\/[0-9a-f-]+\/data: file already closed/;

/**
 * Expects that `reg` logged nothing at level error, fatal or panic, apart from its known noise and the
 * lines `alsoAllowed` matches.
 */
export function expectNoRegistry2Errors(reg: Registry2, alsoAllowed: readonly RegExp[] = []): void {
  const known = [KNOWN_NOISE, ...alsoAllowed];
  const bad = reg.output().split('\n').filter((line) => /level=(error|fatal|panic)/.test(line) && !known.some((k) => k.test(line)));
  expect(bad, 'docker-registry logged errors').toEqual([]);
}
