/**
 * The container image, for real: a private dockerd (test/helpers/dockerd.ts) builds the Dockerfile once,
 * FROM an offline stand-in for node:20-bookworm-slim (test/helpers/node-base-image.ts, given as
 * `--build-arg NODE_IMAGE=…`, RUN steps on `--network host` so `npm ci` reaches the npm registry), then
 * runs it as a registry the way deploy/ does (read-only root, no capabilities, a named volume,
 * REGISTRY_* overrides; host network with free ports, as this daemon has no bridge) and checks:
 * the image's metadata and size; that it runs as uid/gid 1000 with node as PID 1; that its HEALTHCHECK
 * (node against /readyz) turns healthy and fails when Berth cannot be reached; that `docker push` of an
 * image made offline and `docker pull` round-trip through it; that the data lands in the volume in
 * registry:2's layout; that deploy/docker-compose.yml runs the same image; and that `docker stop`
 * (SIGTERM) ends it at once with exit code 0. Timings are printed (`timing:` lines).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { type DockerBuild, dockerBuild } from './helpers/docker-build.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { dockerArchive, singlePlatformImage } from './helpers/images.js';
import { blobData, layerLink, revisionLink, tagLinks, v2 } from './helpers/layout.js';
import { BASE_IMAGE_TOOLS, importNodeBase, nodeBaseRoot } from './helpers/node-base-image.js';
import { ACCEPT_ALL, raw, sha256 } from './helpers/oci.js';
import { describeWithTools, freePort, logToolVersions, run, runResult, sleep } from './helpers/tools.js';

const TOOLS = { ...DOCKER_TOOLS, ...BASE_IMAGE_TOOLS, 'docker-compose': 'docker-compose' };
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BASE_TAG = 'berth-test/node-base:20-bookworm-slim';
const IMAGE = 'berth-test/berth:image-test';
const CONTAINER = 'berth-image-test';
const VOLUME = 'berth-image-test-data';
const COMPOSE_PROJECT = 'berthimagetest';
const SECRET = 'image-test-secret-0123456789abcdef';

/** The packages package-lock.json marks `dev` and installs at the top of node_modules (typescript, vitest, …). */
async function devOnlyPackages(): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, p]) => p.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path))
    .map(([path]) => path.slice('node_modules/'.length));
}

interface ImageInspect {
  Size: number;
  RootFS: { Layers: string[] };
  Config: {
    User: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    Entrypoint: string[] | null;
    Cmd: string[] | null;
    WorkingDir: string;
    Healthcheck?: { Test: string[]; Interval: number; Timeout: number; Retries: number };
  };
}

interface ContainerInspect {
  State: {
    Status: string;
    ExitCode: number;
    OOMKilled: boolean;
    Pid: number;
    Health?: { Status: string; Log: { ExitCode: number; Output: string }[] };
  };
  Config: { Env: string[]; Image: string };
  HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null };
  Mounts: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[];
}

describeWithTools(TOOLS, 'the container image: built from the Dockerfile, run as a registry, pushed to and pulled from', () => {
  const img = singlePlatformImage('container-image');
  let dockerd: Dockerd | undefined;
  let unavailable = '';
  let work = '';
  let port = 0;
  let debugPort = 0;
  let build: DockerBuild | undefined;
  let pushedDigest = '';
  /** The config and layer digests of the manifest Berth holds for the push (docker compresses layers itself). */
  let pushedBlobs: string[] = [];

  const daemon = (ctx: { skip: (note?: string) => never }): Dockerd => dockerd ?? ctx.skip(unavailable);
  const base = (): string => `http://127.0.0.1:${port}`;
  const timing = (what: string, ms: number): void => console.log(`timing: ${what}: ${(ms / 1000).toFixed(1)} s`);

  async function inspectJson<T>(d: Dockerd, args: readonly string[]): Promise<T> {
    const out = await d.docker([...args, '--format', '{{json .}}']);
    return JSON.parse(out.stdout) as T;
  }

  async function waitReady(url: string, ms: number): Promise<number> {
    const started = Date.now();
    let last = '';
    while (Date.now() - started < ms) {
      try {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) return Date.now() - started;
        last = `status ${res.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(250);
    }
    throw new Error(`${url}/readyz did not answer 200 within ${ms} ms (last: ${last})`);
  }

  beforeAll(async () => {
    port = await freePort();
    debugPort = await freePort();
    work = await mkdtemp(join(tmpdir(), 'berth-image-test-'));
    const started = await startDockerdOrReason({ registryPorts: [port] });
    if ('reason' in started) {
      unavailable = started.reason;
      return;
    }
    dockerd = started.dockerd;
    logToolVersions(['dockerd', 'debootstrap', 'docker-compose']);

    const root = await nodeBaseRoot();
    timing(`base root (${root.cached ? 'from the cache' : 'made with debootstrap'}: ${root.description})`, root.ms);
    let t = Date.now();
    await importNodeBase(dockerd, root, BASE_TAG);
    timing(`docker import of the base root as ${BASE_TAG}`, Date.now() - t);

    t = Date.now();
    build = await dockerBuild(dockerd, { context: REPO_ROOT, tag: IMAGE, buildArgs: { NODE_IMAGE: BASE_TAG }, network: 'host' });
    timing(`docker build with ${build.builder}`, Date.now() - t);

    t = Date.now();
    await dockerd.docker(['volume', 'create', VOLUME]);
    await dockerd.docker([
      'run', '--detach', '--name', CONTAINER, '--network', 'host',
      '--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
      '--volume', `${VOLUME}:/var/lib/registry`,
      '--env', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`,
      '--env', `REGISTRY_HTTP_DEBUG_ADDR=127.0.0.1:${debugPort}`,
      '--env', `REGISTRY_HTTP_SECRET=${SECRET}`,
      IMAGE,
    ], { timeoutMs: 180_000 });
    const ready = await waitReady(base(), 120_000);
    timing(`docker run until /readyz answered 200 (${ready} ms of it waiting for the server)`, Date.now() - t);
  }, 45 * 60_000);

  afterAll(async () => {
    if (dockerd !== undefined) {
      const t = Date.now();
      await dockerd.dockerResult(['rm', '--force', CONTAINER], { timeoutMs: 60_000 }).catch(() => undefined);
      const dir = dockerd.dir;
      await dockerd.close().catch(async (err: Error) => {
        // Once a container has run on the host network, dockerd 20.10 leaves <exec-root>/netns/default
        // bind-mounted after it exits, so the directory cannot be removed until that is unmounted.
        const netns = join(dir, 'exec', 'netns', 'default');
        const umount = await runResult('umount', [netns]);
        console.log(`dockerd close: ${err.message.split('\n')[0] ?? ''}; umount ${netns}: exit ${String(umount.code)}`);
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      });
      timing('stopping dockerd and removing its state (vfs layers)', Date.now() - t);
    }
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 15 * 60_000);

  it('is multi-stage and small, runs as a numeric non-root user, and has registry:2\'s port, volume and config path', async (ctx) => {
    const d = daemon(ctx);
    const image = await inspectJson<ImageInspect>(d, ['image', 'inspect', IMAGE]);
    const baseImage = await inspectJson<ImageInspect>(d, ['image', 'inspect', BASE_TAG]);
    const own = image.Size - baseImage.Size;
    const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
    const layers = image.RootFS.Layers.length - baseImage.RootFS.Layers.length;
    console.log(`image size: ${mb(image.Size)} (base ${mb(baseImage.Size)}, Berth's layers ${mb(own)}, ${layers} layers over the base)`);
    // Berth's part: the compiled code and the production dependencies only (the build stage's full
    // node_modules with TypeScript, vitest and esbuild is well over 100 MB).
    expect(own).toBeGreaterThan(0);
    expect(own).toBeLessThan(80e6);

    expect(image.Config.User).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(image.Config.User).toBe('1000:1000');
    expect(Object.keys(image.Config.ExposedPorts ?? {})).toEqual(['5000/tcp']);
    expect(Object.keys(image.Config.Volumes ?? {})).toEqual(['/var/lib/registry']);
    expect(image.Config.Entrypoint).toEqual(['node', '/opt/berth/dist/main.js']);
    expect(image.Config.Cmd).toEqual(['serve', '/etc/docker/registry/config.yml']);
    expect(image.Config.Healthcheck?.Test).toEqual(['CMD', 'node', '/opt/berth/healthcheck.mjs']);

    const config = await d.docker(['exec', CONTAINER, 'cat', '/etc/docker/registry/config.yml']);
    expect(config.stdout).toBe(await readFile(join(REPO_ROOT, 'deploy/config.yml'), 'utf8'));
    const listing = await d.docker(['exec', '--workdir', '/opt/berth/node_modules', CONTAINER, 'sh', '-c', 'ls -d * @*/*']);
    const modules = listing.stdout.split('\n').filter((m) => m !== '');
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies)) expect(modules, 'every production dependency is installed').toContain(dep);
    const devOnly = await devOnlyPackages();
    expect(devOnly).toContain('typescript');
    expect(modules.filter((m) => devOnly.includes(m)), 'development-only packages in the runtime image').toEqual([]);
    const sources = await d.dockerResult(['exec', CONTAINER, 'ls', '/opt/berth/src']);
    expect(sources.code, 'the TypeScript sources are not in the runtime image').not.toBe(0);
  }, 120_000);

  it('runs as uid/gid 1000 with node as PID 1, on a read-only root, with REGISTRY_* overrides applied', async (ctx) => {
    const d = daemon(ctx);
    const ids = await d.docker(['exec', CONTAINER, 'id', '-u']);
    expect(ids.stdout.trim()).toBe('1000');
    const status = (await d.docker(['exec', CONTAINER, 'cat', '/proc/1/status'])).stdout;
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    const cmdline = (await d.docker(['exec', CONTAINER, 'cat', '/proc/1/cmdline'])).stdout.split('\0').filter((s) => s !== '');
    expect(cmdline).toEqual(['node', '/opt/berth/dist/main.js', 'serve', '/etc/docker/registry/config.yml']);

    // The node user's own home: only the read-only root keeps it from being written.
    const write = await d.dockerResult(['exec', CONTAINER, 'touch', '/home/node/written']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);

    // REGISTRY_HTTP_ADDR moved the API, REGISTRY_HTTP_DEBUG_ADDR opened the debug listener.
    for (const path of ['/', '/healthz', '/readyz', '/v2/']) {
      const res = await raw(base(), 'GET', path);
      expect(res.status, `GET ${path}`).toBe(200);
    }
    const debug = `http://127.0.0.1:${debugPort}`;
    for (const path of ['/debug/health', '/healthz', '/readyz']) {
      expect((await raw(debug, 'GET', path)).status, `debug GET ${path}`).toBe(200);
    }
    const metrics = await raw(debug, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body.toString('utf8')).toMatch(/^process_resident_memory_bytes /m);
  }, 120_000);

  it('its HEALTHCHECK (node against /readyz) turns healthy, and fails where Berth does not answer', async (ctx) => {
    const d = daemon(ctx);
    const t = Date.now();
    let state: ContainerInspect['State'] | undefined;
    while (Date.now() - t < 120_000) {
      state = (await inspectJson<ContainerInspect>(d, ['container', 'inspect', CONTAINER])).State;
      if (state.Health?.Status === 'healthy' || state.Health?.Status === 'unhealthy') break;
      await sleep(1_000);
    }
    timing('until docker reported the container healthy', Date.now() - t);
    expect(state?.Health?.Status, JSON.stringify(state?.Health)).toBe('healthy');
    const last = state?.Health?.Log.at(-1);
    expect(last?.ExitCode).toBe(0);
    // It followed REGISTRY_HTTP_ADDR to the port the server really listens on.
    expect(last?.Output).toContain(`ready: http://127.0.0.1:${port}/readyz answered 200`);

    const nowhere = await freePort();
    const failing = await d.dockerResult([
      'exec', '--env', `REGISTRY_HTTP_ADDR=127.0.0.1:${nowhere}`, CONTAINER, 'node', '/opt/berth/healthcheck.mjs',
    ]);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toMatch(/^not ready: .*ECONNREFUSED/);
  }, 180_000);

  it('docker push of an image made offline to the running container, then docker rmi and pull: the same image', async (ctx) => {
    const d = daemon(ctx);
    const archive = join(work, 'image.tar');
    await writeFile(archive, dockerArchive(img, ['berth-test/container-image:v1']));
    await d.docker(['load', '-i', archive]);
    const ref = `127.0.0.1:${port}/container/image:v1`;
    await d.docker(['tag', 'berth-test/container-image:v1', ref]);
    let t = Date.now();
    const push = await d.docker(['push', ref], { timeoutMs: 180_000 });
    timing('docker push', Date.now() - t);
    const m = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(push.stdout);
    expect(m, push.stdout).not.toBeNull();
    pushedDigest = m?.[1] ?? '';

    const served = await raw(base(), 'GET', '/v2/container/image/manifests/v1', { headers: { Accept: ACCEPT_ALL } });
    expect(served.status).toBe(200);
    expect(served.header('Docker-Content-Digest')).toBe(pushedDigest);
    expect(sha256(served.body)).toBe(pushedDigest);
    const doc = JSON.parse(served.body.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    expect(doc.config.digest).toBe(img.config.digest);
    expect(doc.layers).toHaveLength(img.layers.length);
    pushedBlobs = [doc.config.digest, ...doc.layers.map((l) => l.digest)];

    await d.docker(['rmi', ref, 'berth-test/container-image:v1']);
    expect((await d.dockerResult(['image', 'inspect', img.config.digest])).code).not.toBe(0);
    t = Date.now();
    const pull = await d.docker(['pull', ref], { timeoutMs: 180_000 });
    timing('docker pull', Date.now() - t);
    expect(pull.stdout).toContain(`Digest: ${pushedDigest}`);
    const pulled = await inspectJson<{ Id: string; RepoDigests: string[] }>(d, ['image', 'inspect', ref]);
    expect(pulled.Id).toBe(img.config.digest);
    expect(pulled.RepoDigests).toContain(`127.0.0.1:${port}/container/image@${pushedDigest}`);
  }, 600_000);

  it('keeps the data in the volume at /var/lib/registry, in registry:2\'s layout, owned by uid 1000', async (ctx) => {
    const d = daemon(ctx);
    expect(pushedDigest, 'the push above must have succeeded').not.toBe('');
    const container = await inspectJson<ContainerInspect>(d, ['container', 'inspect', CONTAINER]);
    const mount = container.Mounts.find((mt) => mt.Destination === '/var/lib/registry');
    expect(mount?.Type).toBe('volume');
    expect(mount?.Name).toBe(VOLUME);
    expect(mount?.RW).toBe(true);
    const root = (await d.docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', VOLUME])).stdout.trim();
    const layout = v2(root);

    expect(pushedBlobs).toHaveLength(1 + img.layers.length);
    for (const digest of pushedBlobs) {
      expect(sha256(await readFile(join(layout, blobData(digest))))).toBe(digest);
      expect(await readFile(join(layout, layerLink('container/image', digest)), 'utf8')).toBe(digest);
    }
    expect(sha256(await readFile(join(layout, blobData(pushedDigest))))).toBe(pushedDigest);
    expect(await readFile(join(layout, revisionLink('container/image', pushedDigest)), 'utf8')).toBe(pushedDigest);
    for (const link of tagLinks('container/image', 'v1', pushedDigest)) {
      expect(await readFile(join(layout, link), 'utf8')).toBe(pushedDigest);
    }
    const manifestFile = await stat(join(layout, blobData(pushedDigest)));
    expect(manifestFile.uid).toBe(1000);
    expect(manifestFile.gid).toBe(1000);
    // Berth's own state stays outside docker/registry/v2, in the same volume.
    expect((await stat(join(root, 'berth', 'index'))).isDirectory()).toBe(true);
  }, 120_000);

  it('deploy/docker-compose.yml runs the same image (host network and free ports here, everything else as written)', async (ctx) => {
    const d = daemon(ctx);
    const compose = parse(await readFile(join(REPO_ROOT, 'deploy/docker-compose.yml'), 'utf8')) as {
      services: Record<string, Record<string, unknown> & { image: string; environment?: Record<string, string>; build: { context: string } }>;
    };
    const service = compose.services['berth'];
    expect(service).toBeDefined();
    if (service === undefined) return;
    const composePort = await freePort();
    // This daemon has no bridge: the published port becomes a listen address on the host network.
    delete service['ports'];
    service['network_mode'] = 'host';
    service.environment = { ...service.environment, REGISTRY_HTTP_ADDR: `127.0.0.1:${composePort}` };
    service.build.context = REPO_ROOT;
    const file = join(work, 'docker-compose.yml');
    await writeFile(file, stringify(compose));
    await d.docker(['tag', IMAGE, service.image]);

    const composeRun = (args: readonly string[]): Promise<unknown> =>
      run('docker-compose', ['--project-name', COMPOSE_PROJECT, '--file', file, ...args], {
        env: { ...d.env, REGISTRY_HTTP_SECRET: SECRET }, cwd: work, timeoutMs: 180_000,
      });
    try {
      await composeRun(['up', '--detach', '--no-build']);
      await waitReady(`http://127.0.0.1:${composePort}`, 120_000);
      const name = (await d.docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${COMPOSE_PROJECT}`])).stdout.trim();
      const c = await inspectJson<ContainerInspect>(d, ['container', 'inspect', name]);
      expect(c.Config.Image).toBe(service.image);
      expect(c.HostConfig.ReadonlyRootfs).toBe(true);
      expect(c.HostConfig.CapDrop).toEqual(['ALL']);
      expect(c.Config.Env).toContain(`REGISTRY_HTTP_SECRET=${SECRET}`);
      const data = c.Mounts.find((mt) => mt.Destination === '/var/lib/registry');
      expect(data?.Name).toBe(`${COMPOSE_PROJECT}_berth-data`);
      expect((await stat(join(data?.Source ?? '/nonexistent', 'berth', 'index'))).isDirectory()).toBe(true);
      await composeRun(['stop']);
      const stopped = await inspectJson<ContainerInspect>(d, ['container', 'inspect', name]);
      expect(stopped.State.Status).toBe('exited');
      expect(stopped.State.ExitCode).toBe(0);
    } finally {
      await runResult('docker-compose', ['--project-name', COMPOSE_PROJECT, '--file', file, 'down', '--volumes'], {
        env: d.env, cwd: work, timeoutMs: 120_000,
      });
    }
  }, 600_000);

  it('docker stop sends SIGTERM to node (PID 1): it exits promptly with code 0', async (ctx) => {
    const d = daemon(ctx);
    const t = Date.now();
    await d.docker(['stop', '--time', '30', CONTAINER], { timeoutMs: 60_000 });
    const ms = Date.now() - t;
    timing('docker stop', ms);
    const c = await inspectJson<ContainerInspect>(d, ['container', 'inspect', CONTAINER]);
    expect(c.State.Status).toBe('exited');
    expect(c.State.OOMKilled).toBe(false);
    // 137 would be the SIGKILL docker sends after --time; 143 an unhandled SIGTERM.
    expect(c.State.ExitCode).toBe(0);
    expect(ms).toBeLessThan(10_000);
  }, 120_000);
});
