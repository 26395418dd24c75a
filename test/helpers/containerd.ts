/**
 * A private containerd for tests, and `ctr` against it: its root, state, gRPC and ttrpc sockets and
 * config all live under one temporary directory (the CRI plugin is disabled, so it touches no CNI
 * paths; debug and metrics listeners are off). Verified with Debian's containerd 1.6.20: it serves
 * within a fraction of a second; the btrfs, zfs, aufs and devmapper snapshotters are skipped, `native`
 * works everywhere (overlayfs may not inside a container), so pulls use `--snapshotter native`.
 *
 * `ctr images pull --hosts-dir DIR docker.io/library/x:1` reads `DIR/docker.io/hosts.toml`
 * (`hostsToml` writes one whose only host is a plain-HTTP mirror); containerd then asks the mirror
 * for `/v2/library/x/...?ns=docker.io`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type RunOptions, type RunResult, type ToolAvailability, hasExited, killAtExit, run, runResult, sleep, stopChild, toolsAvailable, which,
} from './process.js';

/** The commands a private containerd needs, each with the apt package that installs it. */
export const CONTAINERD_TOOLS: Readonly<Record<string, string>> = { containerd: 'containerd', ctr: 'containerd' };

export function containerdAvailable(): ToolAvailability {
  return toolsAvailable(CONTAINERD_TOOLS);
}

export interface Containerd {
  readonly pid: number;
  readonly dir: string;
  /** The gRPC socket (`ctr --address`). */
  readonly address: string;
  /** `ctr --address <sock> --namespace berth-test <args>`. @throws RunError on a non-zero exit. */
  ctr(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** The same, answering a non-zero exit. */
  ctrResult(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  output(): string;
  /** Stops containerd by its PID and removes the directory. */
  close(): Promise<void>;
}

const LOG_TAIL = 32 * 1024;

function configToml(dir: string): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${JSON.stringify(join(dir, 'containerd.sock'))}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(join(dir, 'containerd-ttrpc.sock'))}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '',
  ].join('\n');
}

/** Starts a private containerd; resolves once `ctr version` answers through its socket. */
export async function startContainerd(readyTimeoutMs = 30_000): Promise<Containerd> {
  const binary = which('containerd');
  const ctrBin = which('ctr');
  if (binary === undefined || ctrBin === undefined) throw new Error('containerd and ctr must be on PATH (apt-get install -y containerd)');
  const dir = await mkdtemp(join(tmpdir(), 'berth-containerd-'));
  await writeFile(join(dir, 'config.toml'), configToml(dir));
  const address = join(dir, 'containerd.sock');
  const child: ChildProcess = spawn(binary, ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  killAtExit(child, 'SIGTERM');
  let log = '';
  const collect = (c: Buffer): void => {
    log = (log + c.toString('utf8')).slice(-LOG_TAIL);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const base = ['--address', address, '--namespace', 'berth-test'];
  const ctr = (args: readonly string[], o: RunOptions = {}): Promise<RunResult> => run(ctrBin, [...base, ...args], o);
  const ctrResult = (args: readonly string[], o: RunOptions = {}): Promise<RunResult> => runResult(ctrBin, [...base, ...args], o);
  const close = async (): Promise<void> => {
    await stopChild(child, 10_000);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline && !hasExited(child) && child.pid !== undefined) {
    const v = await ctrResult(['version'], { timeoutMs: 5_000 }).catch(() => undefined);
    if (v?.code === 0) return { pid: child.pid, dir, address, ctr, ctrResult, output: () => log, close };
    await sleep(100);
  }
  await close();
  throw new Error(`containerd did not answer ctr version within ${readyTimeoutMs} ms; the end of its log:\n${log.trim() || '(nothing)'}`);
}

/**
 * Writes `<dir>/<registry>/hosts.toml` sending pulls and resolves for `registry` (e.g. `docker.io`)
 * to the plain-HTTP mirror `mirrorUrl` (`http://127.0.0.1:PORT`, optionally with a path), with
 * `server` the registry's own endpoint (unreachable here, so a pull can only succeed through the mirror).
 */
export async function hostsToml(dir: string, registry: string, server: string, mirrorUrl: string): Promise<void> {
  await mkdir(join(dir, registry), { recursive: true });
  await writeFile(
    join(dir, registry, 'hosts.toml'),
    [`server = ${JSON.stringify(server)}`, '', `[host.${JSON.stringify(mirrorUrl)}]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
  );
}
