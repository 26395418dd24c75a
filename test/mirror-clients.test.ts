/**
 * Issue #13 with real clients: Berth as a pull-through cache of docker-registry 2.8.2 upstreams on
 * loopback, each behind a counting reverse proxy (test/helpers/mirror-clients.ts), so every request the mirror
 * makes upstream is counted. docker.io itself is unreachable here: a client configured with Berth as
 * its Docker Hub mirror can only succeed through it.
 *
 * - The Docker daemon with `--registry-mirror` (`docker pull mirror-x:1` asks for `library/mirror-x`),
 *   containerd through hosts.toml (`?ns=docker.io`, and `?ns=index.docker.io`), skopeo and podman
 *   through registries.conf mirrors with a `docker.io` path prefix, all against one Berth in the
 *   `proxy.upstreams` form (docker.io the default upstream, quay.io a second one).
 * - The upstream stopped: cached tags still pull (docker, skopeo, HTTP), Berth's with a `Warning` header.
 * - An upstream that moves a tag: the next pull gets the new digest (`revalidate: 0s`).
 * - Twelve concurrent cold pulls of one 3-layer image: each blob fetched upstream exactly once.
 * - Mixed mode: local pushes and pulls beside the two mirrored upstreams (skopeo through a quay.io
 *   mirror too); pushes into a mirror 405; the catalog lists local and cached names.
 * - registry:2's form (`proxy.remoteurl`): containerd and HTTP clients through it; pushes 405.
 * - The same twelve concurrent pulls against registry:2's own proxy mode, its counts printed only.
 *
 * BERTH_MIRROR_TEST_BASELINE=1 also runs the client suite against registry:2's proxy mode (the harness
 * was built and checked against it before Berth's mirror existed); skopeo and podman then use a mirror
 * without the path prefix, which registry:2 cannot route.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { CONTAINERD_TOOLS, type Containerd, hostsToml, startContainerd } from './helpers/containerd.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { readOciLayout } from './helpers/images.js';
import { type CountingProxy, type MirrorImage, imageBlobs, mirrorImage, pullOverHttp, seedUpstream, startCountingProxy } from './helpers/mirror-clients.js';
import { errorCode, makeImage, pushImage, raw } from './helpers/oci.js';
import { type Registry2, startRegistry2 } from './helpers/registry2.js';
import { type ContainersStore, containersStore, describeWithTools, freePort, logToolVersions, run } from './helpers/tools.js';

const TOOLS = { ...DOCKER_TOOLS, ...CONTAINERD_TOOLS, skopeo: 'skopeo', podman: 'podman', 'docker-registry': 'docker-registry' };
const HUB = 'https://registry-1.docker.io';

/** An upstream registry:2 behind a counting proxy. */
interface Upstream {
  readonly registry: Registry2;
  readonly proxy: CountingProxy;
}

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function startUpstream(): Promise<Upstream> {
  const registry = await startRegistry2({ root: await tempDir('berth-mirror-upstream-') });
  const proxy = await startCountingProxy(registry.url);
  closers.push(() => registry.close(), () => proxy.close());
  return { registry, proxy };
}

/** A Berth on `port` over a fresh root with `proxy` (YAML lines, indented under `proxy:`). */
async function startMirrorBerth(port: number, proxy: readonly string[]): Promise<BerthProcess> {
  const dir = await tempDir('berth-mirror-');
  const berth = await startBerthProcess({
    configPath: join(dir, 'config.yml'),
    config: [
      'version: 0.1',
      'log: {level: info}',
      `http: {addr: "127.0.0.1:${port}", secret: mirror-clients-test}`,
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'root'))}}, delete: {enabled: true}}`,
      'proxy:',
      ...proxy.map((l) => `  ${l}`),
      '',
    ].join('\n'),
  });
  closers.push(() => berth.stop());
  return berth;
}

/** registry:2 in its own proxy mode mirroring `upstream`, over a fresh root. */
async function startRegistry2Mirror(upstream: string): Promise<Registry2> {
  const reg = await startRegistry2({ root: await tempDir('berth-mirror-r2-'), proxyRemoteUrl: upstream });
  closers.push(() => reg.close());
  return reg;
}

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}, 120_000);

/** Upstream GETs of each blob of `m`'s amd64 image under `repo`. */
function blobFetches(up: Upstream, repo: string, m: MirrorImage): number[] {
  return imageBlobs(m.image).map((b) => up.proxy.count('GET', `/v2/${repo}/blobs/${b.digest}`));
}

/** Twelve concurrent cold pulls of `repo:1` from `mirror`; answers the upstream's GET count per blob, and prints every count. */
async function twelveColdPulls(label: string, mirror: string, up: Upstream, name: string, upstreamRepo: string, m: MirrorImage): Promise<number[]> {
  up.proxy.reset();
  const pulls = await Promise.all(Array.from({ length: 12 }, () => pullOverHttp(mirror, name, '1')));
  for (const p of pulls) expect(p.digest).toBe(m.image.manifest.digest);
  const fetches = blobFetches(up, upstreamRepo, m);
  console.log(`${label}: 12 concurrent cold pulls, upstream GETs per blob (config, 3 layers): ${fetches.join(', ')}`);
  console.log(`${label}: every upstream request: ${JSON.stringify(Object.fromEntries(up.proxy.counts()))}`);
  return fetches;
}

interface ClientTarget {
  readonly label: string;
  /** registries.conf mirror location for docker.io, given the mirror's host:port. */
  readonly podmanLocation: (host: string) => string;
  /** Starts the mirror of `hub` (default, docker.io) and `quay`; answers its URL. */
  start(hub: Upstream, quay: Upstream): Promise<string>;
}

const BERTH_UPSTREAMS: ClientTarget = {
  label: 'Berth (proxy.upstreams)',
  podmanLocation: (host) => `${host}/docker.io`,
  async start(hub, quay) {
    const port = await freePort();
    await startMirrorBerth(port, [
      'upstreams:',
      '  - prefix: docker.io',
      `    remoteurl: ${hub.proxy.url}`,
      '    default: true',
      '    hosts: [docker.io, index.docker.io]',
      '    revalidate: 0s',
      '  - prefix: quay.io',
      `    remoteurl: ${quay.proxy.url}`,
    ]);
    return `http://127.0.0.1:${port}`;
  },
};

const REGISTRY2_BASELINE: ClientTarget = {
  label: 'registry:2 proxy mode',
  podmanLocation: (host) => host,
  start: async (hub) => (await startRegistry2Mirror(hub.proxy.url)).url,
};

const TARGETS = process.env['BERTH_MIRROR_TEST_BASELINE'] === '1' ? [BERTH_UPSTREAMS, REGISTRY2_BASELINE] : [BERTH_UPSTREAMS];

describeWithTools(TOOLS, 'real clients through a pull-through cache of docker-registry upstreams', () => {
  const pulled = mirrorImage('mirror-x');
  const concurrent = mirrorImage('concurrent', [3 << 20, 2 << 20, 1 << 20], 11);
  const other = mirrorImage('other', [256 << 10, 128 << 10, 64 << 10], 13);
  let hub: Upstream;
  let quay: Upstream;
  let work = '';
  let unavailable = 'dockerd was not started';
  let dockerd: Dockerd | undefined;
  let containerd: Containerd;
  const daemon = (ctx: { skip: (note?: string) => never }): Dockerd => dockerd ?? ctx.skip(unavailable);

  beforeAll(async () => {
    work = await tempDir('berth-mirror-clients-');
    [hub, quay] = await Promise.all([startUpstream(), startUpstream()]);
    await seedUpstream(hub.registry.url, 'library/mirror-x', pulled, '1', 'multi');
    await seedUpstream(hub.registry.url, 'library/concurrent', concurrent, '1', 'multi');
    await seedUpstream(quay.registry.url, 'org/other', other, '1', 'multi');
    containerd = await startContainerd();
    closers.push(() => containerd.close());
    const started = await startDockerdOrReason();
    if ('reason' in started) unavailable = started.reason;
    else {
      dockerd = started.dockerd;
      const d = dockerd;
      closers.push(() => d.close());
    }
    logToolVersions(['dockerd', 'containerd', 'skopeo', 'podman', 'docker-registry']);
  }, 120_000);

  for (const target of TARGETS) {
    describe(target.label, () => {
      let mirror = '';
      let host = '';
      let store: ContainersStore;
      const containers = (args: readonly string[], cmd: 'skopeo' | 'podman'): ReturnType<typeof run> =>
        run(cmd, [...(cmd === 'podman' ? store.podmanArgs : store.skopeoArgs), ...args], { env: store.env, timeoutMs: 120_000 });

      beforeAll(async () => {
        mirror = await target.start(hub, quay);
        host = new URL(mirror).host;
        store = await containersStore(await tempDir('berth-mirror-containers-'), [{ prefix: 'docker.io', location: target.podmanLocation(host) }]);
        await dockerd?.setRegistryMirrors([mirror]);
      }, 180_000);

      it('docker pull of Docker Hub names through registry-mirrors: the image and an index, every blob from the upstream', async (ctx) => {
        const d = daemon(ctx);
        await d.dockerResult(['rmi', 'mirror-x:1', 'mirror-x:multi']); // the daemon is shared: nothing left from another mirror
        hub.proxy.reset();
        await d.docker(['pull', 'mirror-x:1'], { timeoutMs: 180_000 });
        const id = await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'docker.io/library/mirror-x:1']);
        expect(id.stdout.trim()).toBe(pulled.image.config.digest);
        expect(blobFetches(hub, 'library/mirror-x', pulled).every((n) => n >= 1)).toBe(true);
        await d.docker(['pull', 'docker.io/library/mirror-x:multi'], { timeoutMs: 180_000 });
        const multi = await d.docker(['image', 'inspect', '--format', '{{.Id}} {{.Architecture}}', 'mirror-x:multi']);
        expect(multi.stdout.trim()).toBe(`${pulled.image.config.digest} amd64`);
      }, 400_000);

      it('containerd pulls through hosts.toml (?ns=docker.io and ?ns=index.docker.io)', async () => {
        const hostsDir = await tempDir('berth-mirror-hosts-');
        await hostsToml(hostsDir, 'docker.io', HUB, mirror);
        await hostsToml(hostsDir, 'index.docker.io', 'https://index.docker.io', mirror);
        for (const ref of ['docker.io/library/mirror-x:1', 'index.docker.io/library/mirror-x:multi']) {
          await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', ref], { timeoutMs: 180_000 });
        }
        const list = await containerd.ctr(['images', 'ls']);
        expect(list.stdout).toMatch(new RegExp(`docker\\.io/library/mirror-x:1\\s+\\S+\\s+${pulled.image.manifest.digest}`));
        expect(list.stdout).toMatch(new RegExp(`index\\.docker\\.io/library/mirror-x:multi\\s+\\S+\\s+${pulled.index.digest}`));
      }, 400_000);

      it('skopeo and podman through a registries.conf mirror of docker.io', async () => {
        const layout = join(work, `skopeo-${target === BERTH_UPSTREAMS ? 'berth' : 'r2'}`);
        await containers(['copy', 'docker://docker.io/library/mirror-x:1', `oci:${layout}:1`], 'skopeo');
        expect((await readOciLayout(layout)).resolve('1').digest).toBe(pulled.image.manifest.digest);
        await containers(['pull', 'docker.io/library/mirror-x:multi'], 'podman');
        const inspect = await containers(['image', 'inspect', '--format', '{{.Id}} {{.Digest}}', 'docker.io/library/mirror-x:multi'], 'podman');
        expect(inspect.stdout.trim()).toBe(`${pulled.image.config.digest.slice('sha256:'.length)} ${pulled.index.digest}`);
      }, 400_000);

      it('the upstream stopped: cached tags still pull (docker, skopeo, HTTP)', async (ctx) => {
        const d = daemon(ctx);
        await d.docker(['pull', 'mirror-x:1'], { timeoutMs: 180_000 }); // cached (if the first test did not run)
        await d.dockerResult(['rmi', 'mirror-x:multi']); // the same image: removed with both tags, so its layers go too
        await d.docker(['rmi', 'mirror-x:1']);
        expect((await d.dockerResult(['image', 'inspect', pulled.image.config.digest])).code).not.toBe(0);
        await hub.proxy.stop();
        try {
          await d.docker(['pull', 'mirror-x:1'], { timeoutMs: 180_000 });
          const id = await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'mirror-x:1']);
          expect(id.stdout.trim()).toBe(pulled.image.config.digest);
          const inspect = await containers(['inspect', '--raw', 'docker://docker.io/library/mirror-x:1'], 'skopeo');
          expect(inspect.stdout).toBe(pulled.image.manifest.bytes.toString('utf8'));
          expect((await pullOverHttp(mirror, 'library/mirror-x', '1')).digest).toBe(pulled.image.manifest.digest);
          if (target === BERTH_UPSTREAMS) {
            // revalidate: 0s, so this tag was just re-checked and the check failed: served stale, and said so
            const stale = await raw(mirror, 'GET', '/v2/library/mirror-x/manifests/1', { headers: { Accept: pulled.image.mediaType } });
            expect(stale.status).toBe(200);
            expect(stale.header('Warning')).toBeDefined();
          }
        } finally {
          await hub.proxy.start();
        }
      }, 400_000);

      it('twelve concurrent cold pulls of one 3-layer image: each blob fetched from the upstream exactly once', async () => {
        if (target === REGISTRY2_BASELINE) {
          await twelveColdPulls(target.label, mirror, hub, 'library/concurrent', 'library/concurrent', concurrent);
          return; // registry:2 is the baseline: printed, not asserted
        }
        expect(await twelveColdPulls(target.label, mirror, hub, 'library/concurrent', 'library/concurrent', concurrent)).toEqual([1, 1, 1, 1]);
      }, 120_000);
    });
  }

  describe('mixed mode: local repositories beside two mirrored upstreams in one Berth', () => {
    let mirror = '';
    beforeAll(async () => {
      mirror = await BERTH_UPSTREAMS.start(hub, quay);
    }, 60_000);

    it('pushes and pulls a local repository; pulls from both upstreams, by prefix and by default (skopeo through a quay.io mirror too); pushes into a mirror answer 405 UNSUPPORTED', async () => {
      const local = makeImage(31, { layerCount: 3 });
      expect((await pushImage(mirror, 'team/app', '1', local)).status).toBe(201);
      const got = await raw(mirror, 'GET', '/v2/team/app/manifests/1', { headers: { Accept: local.mediaType } });
      expect(got.status).toBe(200);
      expect(got.body.equals(local.manifest.bytes)).toBe(true);

      quay.proxy.reset();
      expect((await pullOverHttp(mirror, 'quay.io/org/other', '1')).digest).toBe(other.image.manifest.digest);
      expect(blobFetches(quay, 'org/other', other)).toEqual([1, 1, 1, 1]);
      expect((await pullOverHttp(mirror, 'docker.io/library/mirror-x', 'multi')).digest).toBe(pulled.index.digest);
      expect((await pullOverHttp(mirror, 'library/mirror-x', '1')).digest).toBe(pulled.image.manifest.digest);

      const store = await containersStore(await tempDir('berth-mirror-mixed-'), [
        { prefix: 'docker.io', location: `${new URL(mirror).host}/docker.io` },
        { prefix: 'quay.io', location: `${new URL(mirror).host}/quay.io` },
      ]);
      const skopeo = await run('skopeo', [...store.skopeoArgs, 'inspect', '--raw', 'docker://quay.io/org/other:multi'], { env: store.env });
      expect(skopeo.stdout).toBe(other.index.bytes.toString('utf8'));

      for (const name of ['docker.io/library/mirror-x', 'quay.io/org/other']) {
        const push = await raw(mirror, 'POST', `/v2/${name}/blobs/uploads/`);
        expect(push.status, name).toBe(405);
        expect(errorCode(push), name).toBe('UNSUPPORTED');
      }
      const catalog = await raw(mirror, 'GET', '/v2/_catalog');
      const repos = (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories;
      expect(repos).toEqual(expect.arrayContaining(['team/app', 'quay.io/org/other', 'docker.io/library/mirror-x']));
    }, 120_000);
  });

  it('an upstream that moves a tag: the mirror serves the new digest (revalidate: 0s), to skopeo and over HTTP', async () => {
    const mirror = await BERTH_UPSTREAMS.start(hub, quay);
    const first = mirrorImage('moving', [64 << 10, 32 << 10, 16 << 10], 21);
    const second = mirrorImage('moving', [64 << 10, 32 << 10, 16 << 10], 22);
    const store = await containersStore(await tempDir('berth-mirror-moving-'), [{ prefix: 'docker.io', location: `${new URL(mirror).host}/docker.io` }]);
    const inspect = async (): Promise<string> =>
      (await run('skopeo', [...store.skopeoArgs, 'inspect', '--raw', 'docker://docker.io/library/moving:1'], { env: store.env })).stdout;
    await seedUpstream(hub.registry.url, 'library/moving', first, '1', 'multi');
    expect(await inspect()).toBe(first.image.manifest.bytes.toString('utf8'));
    await seedUpstream(hub.registry.url, 'library/moving', second, '1', 'multi');
    expect(await inspect()).toBe(second.image.manifest.bytes.toString('utf8'));
    expect((await pullOverHttp(mirror, 'library/moving', '1')).digest).toBe(second.image.manifest.digest);
  }, 120_000);

  describe("registry:2's form (proxy.remoteurl) in Berth", () => {
    let mirror = '';
    beforeAll(async () => {
      const port = await freePort();
      await startMirrorBerth(port, [`remoteurl: ${hub.proxy.url}`]);
      mirror = `http://127.0.0.1:${port}`;
      await dockerd?.setRegistryMirrors([mirror]);
    }, 60_000);

    it('docker pulls through it as registry-mirrors (the daemon reloaded with this mirror)', async (ctx) => {
      const d = daemon(ctx);
      await d.dockerResult(['rmi', 'mirror-x:1', 'mirror-x:multi']); // pulled through the other Berth earlier
      hub.proxy.reset();
      await d.docker(['pull', 'mirror-x:multi'], { timeoutMs: 180_000 });
      const id = await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'mirror-x:multi']);
      expect(id.stdout.trim()).toBe(pulled.image.config.digest);
      expect(blobFetches(hub, 'library/mirror-x', pulled)).toEqual([1, 1, 1, 1]);
    }, 400_000);

    it('containerd and an HTTP client pull through it under the upstream names; pushes answer 405 UNSUPPORTED', async () => {
      const hostsDir = await tempDir('berth-mirror-hosts-');
      await hostsToml(hostsDir, 'docker.io', HUB, mirror);
      await containerd.ctrResult(['images', 'rm', 'docker.io/library/mirror-x:1']); // pulled through the other Berth earlier
      hub.proxy.reset();
      await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', 'docker.io/library/mirror-x:1'], { timeoutMs: 180_000 });
      const list = await containerd.ctr(['images', 'ls']);
      expect(list.stdout).toMatch(new RegExp(`docker\\.io/library/mirror-x:1\\s+\\S+\\s+${pulled.image.manifest.digest}`));
      expect(hub.proxy.count('GET', '/v2/library/mirror-x/manifests/1') + hub.proxy.count('HEAD', '/v2/library/mirror-x/manifests/1')).toBeGreaterThan(0);
      expect(await twelveColdPulls('Berth (proxy.remoteurl)', mirror, hub, 'library/concurrent', 'library/concurrent', concurrent)).toEqual([1, 1, 1, 1]);
      const push = await raw(mirror, 'POST', '/v2/library/mirror-x/blobs/uploads/');
      expect(push.status).toBe(405);
      expect(errorCode(push)).toBe('UNSUPPORTED');
    }, 400_000);
  });

  it("registry:2's own proxy mode, for comparison: twelve concurrent cold pulls (upstream GETs per blob printed, not asserted)", async () => {
    const reg = await startRegistry2Mirror(hub.proxy.url);
    const fetches = await twelveColdPulls('registry:2 proxy mode', reg.url, hub, 'library/concurrent', 'library/concurrent', concurrent);
    expect(fetches.every((n) => n >= 1)).toBe(true); // it did fetch each blob through the counting proxy
  }, 120_000);
});
