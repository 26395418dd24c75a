/**
 * Running real tools (docker, skopeo, podman, buildah, docker-registry, dockerd) from tests.
 *
 * - `toolAvailable(cmd)`: the command is on PATH and answers `--version`; what `describeWithTool` takes
 *   (under CI=true a missing tool fails the run, elsewhere the suite is skipped with a printed reason,
 *   never silently). `describeWithTools` checks several commands at once.
 * - `run(cmd, args, opts)`: spawn without a shell, bounded by a timeout (the child is killed by its PID
 *   when it expires), stdout and stderr captured; throws a RunError carrying both on a non-zero exit.
 *   `runResult` is the same but answers a non-zero exit instead of throwing (for expected failures).
 * - Long-running children (servers, daemons): `freePort()` to give them a port, `killAtExit(child)` so
 *   they never outlive the test process, `waitForExit` and `stopChild` to stop exactly one of them.
 * - Those process helpers live in process.ts (no vitest import, so bench/ can use them) and are
 *   re-exported here unchanged.
 * - `containersStore(dir)`: the flags and environment that keep podman and buildah entirely inside one
 *   temporary directory (see its comment for what each one is for and what was verified here).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, it } from 'vitest';
import { type ToolAvailability, toolVersion, toolsAvailable } from './process.js';

// The vitest-free part lives in process.ts (benchmarks use it too); tests keep importing it from here.
export {
  RunError, freePort, hasExited, killAtExit, run, runResult, sleep, stopChild, toolAvailable, toolVersion, toolsAvailable,
  waitForExit, which,
} from './process.js';
export type { RunOptions, RunResult, ToolAvailability } from './process.js';

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

/** describeWithTool over several commands (`{ cmd: aptPackage }`), named by all of them. */
export function describeWithTools(tools: Readonly<Record<string, string>>, title: string, body: () => void): void {
  describeWithTool(Object.keys(tools).join(' + '), toolsAvailable(tools), title, body);
}

/** Prints `client versions: <cmd>: <first line of --version>` for each tool (for the README's interoperability table). */
export function logToolVersions(cmds: readonly string[]): void {
  for (const cmd of cmds) console.log(`client version: ${cmd}: ${toolVersion(cmd)}`);
}

// ---- podman and buildah ----

/** Flags and environment that keep podman and buildah inside one directory. */
export interface ContainersStore {
  readonly dir: string;
  /** Global flags for podman, before the subcommand. */
  readonly podmanArgs: readonly string[];
  /** Global flags for buildah, before the subcommand. */
  readonly buildahArgs: readonly string[];
  /**
   * Global flags for skopeo, before the subcommand: `--registries-conf` (skopeo 1.9 does not read
   * CONTAINERS_REGISTRIES_CONF; verified: with only the variable it went to registry-1.docker.io).
   */
  readonly skopeoArgs: readonly string[];
  /** Environment for both (pass as RunOptions.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A `[[registry.mirror]]` of registries.conf: pulls of `prefix` images go to `location` first. */
export interface RegistryMirror {
  /** The registry whose images are mirrored, e.g. `docker.io`. */
  readonly prefix: string;
  /** host:port, optionally with a path prefix (`127.0.0.1:PORT/docker.io`); always plain HTTP here (`insecure = true`). */
  readonly location: string;
}

/** registries.conf: no search registries, and for each mirror a `[[registry]]` with its `[[registry.mirror]]`. */
export function registriesConf(mirrors: readonly RegistryMirror[]): string {
  const lines = ['unqualified-search-registries = []'];
  for (const m of mirrors) {
    lines.push(
      '',
      '[[registry]]',
      `prefix = ${JSON.stringify(m.prefix)}`,
      `location = ${JSON.stringify(m.prefix)}`,
      '[[registry.mirror]]',
      `location = ${JSON.stringify(m.location)}`,
      'insecure = true',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Podman and buildah with all their state under `dir`. Verified on Debian bookworm (podman 4.3.1,
 * buildah 1.28.2) as root; without these, they write to /run/libpod, /run/containers/networks,
 * /etc/containers/networks and /var/lib/containers/storage.
 *
 * - `--root`, `--runroot`, `--storage-driver vfs` (and the same in `CONTAINERS_STORAGE_CONF`, so
 *   /etc/containers/storage.conf is not read): image store and its run-time locks under `dir`; vfs needs
 *   no overlay mount (no fuse-overlayfs, no kernel overlay inside a container).
 * - `CONTAINERS_CONF` → a containers.conf in `dir` that sets `engine.tmp_dir` (podman's /run/libpod state),
 *   `engine.events_logger = "file"` with `events_logfile_path` (no journald here), `engine.cgroup_manager =
 *   "cgroupfs"` (no systemd), `engine.volume_path` and `network.network_config_dir` (otherwise netavark's
 *   lock goes to /etc/containers/networks). Podman 4.3 has flags for some of these (`--tmpdir`,
 *   `--events-backend`, `--cgroup-manager`, `--network-config-dir`), buildah 1.28 does not, so the file serves both.
 * - `TMPDIR` under `dir`: c/image's temporary copies of blobs (otherwise /var/tmp).
 * - `CONTAINERS_REGISTRIES_CONF` → a registries.conf with no search registries and the `mirrors` given
 *   (none by default); every reference in the tests is fully qualified (`127.0.0.1:PORT/repo:tag`, or
 *   `docker.io/library/x:1` through a mirror). Pass `--tls-verify=false` per command for the plain-HTTP
 *   Berth (a mirror's `insecure = true` covers it). Verified with skopeo 1.9 (given `skopeoArgs`) and podman
 *   4.3: a mirror location with a path (`127.0.0.1:PORT/docker.io`) makes them ask for `/v2/docker.io/library/x/…`.
 * - No user namespaces, no `--isolation chroot` needed: the tests never run a container (`buildah from
 *   scratch`, `copy`, `config`, `commit`, `push`; `podman pull/push/tag/image inspect`).
 * - Not redirected: c/image's blob-info cache (/var/lib/containers/cache/blob-info-cache-v1.boltdb for
 *   root; no flag or variable moves it). It holds only hints keyed by registry host:port and repository.
 * - The signature policy is the package's /etc/containers/policy.json (insecureAcceptAnything).
 */
export async function containersStore(dir: string, mirrors: readonly RegistryMirror[] = []): Promise<ContainersStore> {
  const paths = {
    root: join(dir, 'storage'),
    runroot: join(dir, 'run'),
    tmp: join(dir, 'tmp'),
    libpodTmp: join(dir, 'libpod-tmp'),
    events: join(dir, 'events', 'events.log'),
    volumes: join(dir, 'volumes'),
    networks: join(dir, 'networks'),
  };
  for (const d of [paths.root, paths.runroot, paths.tmp, paths.libpodTmp, join(dir, 'events'), paths.volumes, paths.networks]) {
    await mkdir(d, { recursive: true });
  }
  const conf = join(dir, 'containers.conf');
  await writeFile(
    conf,
    [
      '[network]',
      `network_config_dir = ${JSON.stringify(paths.networks)}`,
      '[engine]',
      `tmp_dir = ${JSON.stringify(paths.libpodTmp)}`,
      'events_logger = "file"',
      `events_logfile_path = ${JSON.stringify(paths.events)}`,
      'cgroup_manager = "cgroupfs"',
      `volume_path = ${JSON.stringify(paths.volumes)}`,
      '',
    ].join('\n'),
  );
  const storageConf = join(dir, 'storage.conf');
  await writeFile(
    storageConf,
    ['[storage]', 'driver = "vfs"', `graphroot = ${JSON.stringify(paths.root)}`, `runroot = ${JSON.stringify(paths.runroot)}`, ''].join('\n'),
  );
  const registries = join(dir, 'registries.conf');
  await writeFile(registries, registriesConf(mirrors));
  const storageArgs = ['--root', paths.root, '--runroot', paths.runroot, '--storage-driver', 'vfs'];
  return {
    dir,
    podmanArgs: [...storageArgs, '--tmpdir', paths.libpodTmp, '--events-backend', 'file', '--cgroup-manager', 'cgroupfs'],
    buildahArgs: storageArgs,
    skopeoArgs: ['--registries-conf', registries],
    env: {
      CONTAINERS_CONF: conf,
      CONTAINERS_REGISTRIES_CONF: registries,
      TMPDIR: paths.tmp,
      CONTAINERS_STORAGE_CONF: storageConf,
      // Never let an outer setting point them elsewhere.
      CONTAINER_HOST: undefined,
      CONTAINER_CONNECTION: undefined,
      BUILDAH_ISOLATION: undefined,
    },
  };
}
