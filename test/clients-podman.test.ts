/**
 * buildah and podman against Berth, offline, every store under a temporary directory (the flags are
 * documented at `containersStore` in test/helpers/tools.ts): buildah builds an image from scratch (a
 * copied file, labels), commits and pushes it; podman pulls it into a separate store with the same
 * digest, pushes it to another repository, and a third store pulls that, again with the same digest.
 * Berth's manifest, config and layer are checked against what the clients report and what was built.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { MT, raw, sha256 } from './helpers/oci.js';
import { type ContainersStore, type RunResult, containersStore, describeWithTools, logToolVersions, run } from './helpers/tools.js';

interface ManifestDoc {
  mediaType: string;
  config: { digest: string; mediaType: string };
  layers: { digest: string; mediaType: string }[];
}

interface PodmanImage {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  Architecture: string;
  Os: string;
  Labels: Record<string, string> | null;
}

const ACCEPT = [MT.ociManifest, MT.dockerManifest].join(', ');

describeWithTools({ buildah: 'buildah', podman: 'podman' }, 'buildah build and push, podman pull and push against Berth', () => {
  const content = `built by buildah for Berth ${sha256(String(Date.now()))}\n`;
  let berth: TestBerth;
  let host = '';
  let work = '';
  /** buildah's store, podman's first store, and a fresh store for the last pull. */
  let built: ContainersStore;
  let pulled: ContainersStore;
  let fresh: ContainersStore;
  /** The digest buildah wrote to --digestfile, and the config digest of the image. */
  let pushed = '';
  let configDigest = '';

  const buildah = (args: readonly string[]): Promise<RunResult> =>
    run('buildah', [...built.buildahArgs, ...args], { env: built.env, timeoutMs: 120_000 });
  const podman = (store: ContainersStore, args: readonly string[]): Promise<RunResult> =>
    run('podman', [...store.podmanArgs, ...args], { env: store.env, timeoutMs: 120_000 });

  async function berthManifest(repo: string, ref: string): Promise<{ digest: string; doc: ManifestDoc }> {
    const res = await raw(berth.url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
    expect(res.status, res.body.toString()).toBe(200);
    const digest = res.header('Docker-Content-Digest') ?? '';
    expect(sha256(res.body)).toBe(digest);
    return { digest, doc: JSON.parse(res.body.toString('utf8')) as ManifestDoc };
  }

  async function berthBlob(repo: string, digest: string): Promise<Buffer> {
    const res = await raw(berth.url, 'GET', `/v2/${repo}/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(digest);
    return res.body;
  }

  async function podmanInspect(store: ContainersStore, ref: string): Promise<PodmanImage> {
    const out = await podman(store, ['image', 'inspect', ref]);
    const [img] = JSON.parse(out.stdout) as PodmanImage[];
    if (img === undefined) throw new Error(`podman image inspect ${ref} printed no image: ${out.stdout}`);
    return img;
  }

  beforeAll(async () => {
    berth = await startBerth();
    host = new URL(berth.url).host;
    work = await mkdtemp(join(tmpdir(), 'berth-clients-podman-'));
    built = await containersStore(join(work, 'buildah'));
    pulled = await containersStore(join(work, 'podman'));
    fresh = await containersStore(join(work, 'podman-fresh'));
    logToolVersions(['buildah', 'podman']);
  }, 60_000);

  afterAll(async () => {
    await berth?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('buildah from scratch, copy, config --label, commit and push: Berth holds the manifest, config and layer buildah made', async () => {
    const ctr = (await buildah(['from', '--name', 'berth-work', 'scratch'])).stdout.trim();
    expect(ctr).toBe('berth-work');
    await writeFile(join(work, 'hello.txt'), content);
    await buildah(['copy', ctr, join(work, 'hello.txt'), '/hello.txt']);
    await buildah(['config', '--label', 'org.example.berth.test=buildah', '--label', 'stage=one', ctr]);
    await buildah(['commit', ctr, 'localhost/berth-test/built:v1']);
    const digestFile = join(work, 'buildah.digest');
    await buildah(['push', '--tls-verify=false', '--digestfile', digestFile, 'localhost/berth-test/built:v1', `docker://${host}/buildah/built:v1`]);
    pushed = (await readFile(digestFile, 'utf8')).trim();
    expect(pushed).toMatch(/^sha256:[a-f0-9]{64}$/);

    const m = await berthManifest('buildah/built', 'v1');
    expect(m.digest).toBe(pushed);
    expect(m.doc.mediaType).toBe(MT.ociManifest);
    expect(m.doc.layers).toHaveLength(1);
    configDigest = m.doc.config.digest;
    const config = JSON.parse((await berthBlob('buildah/built', configDigest)).toString('utf8')) as {
      config?: { Labels?: Record<string, string> };
      rootfs: { diff_ids: string[] };
    };
    expect(config.config?.Labels).toMatchObject({ 'org.example.berth.test': 'buildah', stage: 'one' });
    const layerDigest = m.doc.layers[0]?.digest ?? '';
    const layerTar = gunzipSync(await berthBlob('buildah/built', layerDigest));
    expect(config.rootfs.diff_ids).toEqual([sha256(layerTar)]);
    expect(layerTar.toString('latin1')).toContain('hello.txt');
    expect(layerTar.toString('latin1')).toContain(content);
    expect(berth.errors).toEqual([]);
  }, 180_000);

  it('podman pull into a separate store: the digest buildah pushed, the same config and labels', async () => {
    expect(pushed).not.toBe('');
    await podman(pulled, ['pull', '--tls-verify=false', `${host}/buildah/built:v1`]);
    const img = await podmanInspect(pulled, `${host}/buildah/built:v1`);
    expect(img.Digest).toBe(pushed);
    expect(img.RepoDigests).toContain(`${host}/buildah/built@${pushed}`);
    expect(`sha256:${img.Id}`).toBe(configDigest);
    expect(img.Labels).toMatchObject({ 'org.example.berth.test': 'buildah', stage: 'one' });
    expect(berth.errors).toEqual([]);
  }, 180_000);

  it('podman push of that image to another repository, then podman pull of it into a fresh store: the same digest throughout', async () => {
    expect(pushed).not.toBe('');
    await podman(pulled, ['tag', `${host}/buildah/built:v1`, `${host}/podman/copy:v2`]);
    const digestFile = join(work, 'podman.digest');
    await podman(pulled, ['push', '--tls-verify=false', '--digestfile', digestFile, `${host}/podman/copy:v2`]);
    const again = (await readFile(digestFile, 'utf8')).trim();
    const m = await berthManifest('podman/copy', 'v2');
    expect(m.digest).toBe(again);
    expect(m.doc.config.digest).toBe(configDigest);
    expect(again).toBe(pushed); // same config, same layer compressed the same way: the same manifest

    await podman(fresh, ['pull', '--tls-verify=false', `${host}/podman/copy:v2`]);
    const img = await podmanInspect(fresh, `${host}/podman/copy:v2`);
    expect(img.Digest).toBe(again);
    expect(img.RepoDigests).toContain(`${host}/podman/copy@${again}`);
    expect(`sha256:${img.Id}`).toBe(configDigest);
    expect(berth.errors).toEqual([]);
  }, 180_000);
});
