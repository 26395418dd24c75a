/**
 * Berth's offline `garbage-collect` against registry:2's (Debian's docker-registry 2.8.2) on copies of
 * one tree that registry:2 itself wrote: tagged and untagged images (Docker and OCI), a tag moved to a
 * new image, manifests and blobs deleted, loose uploads, layers shared across repositories, a
 * multi-platform OCI index and a Docker manifest list, and an artifact whose subject is a tagged image.
 *
 * - Without --delete-untagged the blobs eligible for deletion (`blob eligible for deletion: <digest>`)
 *   are the same set, and a real run leaves the same blobs.
 * - With -m they differ exactly where registry:2 2.8 is known to be wrong: it treats the children of a
 *   tagged index as untagged and deletes their configs and layers (Berth keeps them, as registry:2 v3
 *   does), and it deletes referrers of kept manifests (Berth keeps them). Everything else is equal.
 */
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { v2 } from './helpers/layout.js';
import {
  type Blob, MT, artifactManifest, blob, descriptor, emptyConfig, manifestBlob, onLinux, platformIndex, pushBlobPostPut,
  putManifest, randomBytesSeeded, raw,
} from './helpers/oci.js';
import { expectNoRegistry2Errors, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool, run } from './helpers/tools.js';

interface Img {
  readonly manifest: Blob;
  readonly mediaType: string;
  /** Config and layers. */
  readonly blobs: readonly Blob[];
}

const layerBlob = (seed: number): Blob => blob(randomBytesSeeded(1500 + seed * 10, seed));

function image(name: string, layers: readonly Blob[], docker = false): Img {
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', name, rootfs: { type: 'layers', diff_ids: [] } }));
  const mediaType = docker ? MT.dockerManifest : MT.ociManifest;
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType,
    config: descriptor(docker ? MT.dockerConfig : MT.ociConfig, config),
    layers: layers.map((l) => descriptor(docker ? MT.dockerLayer : MT.ociLayer, l)),
  });
  return { manifest, mediaType, blobs: [config, ...layers] };
}

const base = layerBlob(1);
const A = image('A', [base, layerBlob(2)], true);
const B = image('B', [base, layerBlob(3)]);
const C = image('C', [layerBlob(4)]);
const D = image('D', [layerBlob(5)]);
const E = image('E', [layerBlob(6)]);
const F = image('F', [base, layerBlob(7)]);
const L1 = layerBlob(8);
const L2 = layerBlob(9);
const payload = blob(JSON.stringify({ signed: B.manifest.digest }));
const S: Img = {
  manifest: artifactManifest('application/vnd.example.signature.v1', [descriptor('application/vnd.example.signature.v1+json', payload)], descriptor(MT.ociManifest, B.manifest)),
  mediaType: MT.ociManifest,
  blobs: [emptyConfig(), payload],
};
const M1 = image('M1', [base, layerBlob(10)]);
const M2 = image('M2', [layerBlob(11)]);
const INDEX: Img = { manifest: platformIndex(MT.ociIndex, [onLinux('amd64', M1), onLinux('arm64', M2)]), mediaType: MT.ociIndex, blobs: [] };
const N1 = image('N1', [layerBlob(12)], true);
const LIST: Img = { manifest: platformIndex(MT.dockerList, [onLinux('amd64', N1)]), mediaType: MT.dockerList, blobs: [] };
const O = image('O', [base, layerBlob(2)]);
const G = image('G', [layerBlob(13)]);

/** What registry:2 2.8 deletes under -m and Berth keeps: configs and layers of index children, and the referrer. */
const KEPT_ONLY_BY_BERTH = new Set([
  M1.blobs[0]!.digest, layerBlob(10).digest, M2.blobs[0]!.digest, layerBlob(11).digest, N1.blobs[0]!.digest, layerBlob(12).digest,
  S.manifest.digest, ...S.blobs.map((b) => b.digest),
]);

async function push(url: string, repo: string, ref: string | undefined, img: Img): Promise<void> {
  for (const b of img.blobs) await pushBlobPostPut(url, repo, b);
  const res = await putManifest(url, repo, ref ?? img.manifest.digest, img.manifest, img.mediaType);
  if (res.status !== 201) throw new Error(`PUT ${repo}:${ref ?? img.manifest.digest}: ${res.status} ${res.body.toString()}`);
}

async function del(url: string, path: string): Promise<void> {
  const res = await raw(url, 'DELETE', path);
  if (res.status !== 202) throw new Error(`DELETE ${path}: ${res.status} ${res.body.toString()}`);
}

/** The tree, written by registry:2 through its API. */
async function buildTree(url: string): Promise<void> {
  await push(url, 'app', 'v1', A);
  await push(url, 'app', 'v2', B);
  await push(url, 'app', undefined, C);
  await push(url, 'app', 'old', D);
  await push(url, 'app', 'old', E); // D is untagged now (still in the tag's index)
  await push(url, 'app', 'f', F);
  await del(url, `/v2/app/manifests/${F.manifest.digest}`);
  await pushBlobPostPut(url, 'app', L1);
  await pushBlobPostPut(url, 'app', L2);
  await del(url, `/v2/app/blobs/${L2.digest}`);
  await push(url, 'app', undefined, S);
  await push(url, 'multi', undefined, M1);
  await push(url, 'multi', undefined, M2);
  await push(url, 'multi', 'latest', INDEX);
  await push(url, 'multi', undefined, N1);
  await push(url, 'multi', 'dl', LIST);
  await push(url, 'other', 'v1', O);
  await push(url, 'other', 'g', G);
  await del(url, `/v2/other/manifests/${G.manifest.digest}`);
}

const ELIGIBLE = /^blob eligible for deletion: (sha256:[0-9a-f]{64})$/gm;
const eligibleIn = (stdout: string): Set<string> => new Set([...stdout.matchAll(ELIGIBLE)].map((m) => m[1]!));

/** Every blob digest under a root. */
async function blobsIn(root: string): Promise<Set<string>> {
  const found = new Set<string>();
  const dir = join(v2(root), 'blobs/sha256');
  for (const hex2 of await readdir(dir)) {
    for (const hex of await readdir(join(dir, hex2))) {
      if ((await readdir(join(dir, hex2, hex))).includes('data')) found.add(`sha256:${hex}`);
    }
  }
  return found;
}

const difference = (a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> => new Set([...a].filter((x) => !b.has(x)));

describeWithTool('docker-registry', registry2Available(), 'garbage-collect compared with registry:2 2.8', () => {
  let dir = '';
  let source = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-gc-r2-'));
    source = join(dir, 'source');
    const reg = await startRegistry2({ root: source });
    try {
      await buildTree(reg.url);
      expectNoRegistry2Errors(reg);
    } finally {
      await reg.close();
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh copy of the tree with a config file naming it. */
  let copies = 0;
  async function copy(): Promise<{ root: string; config: string }> {
    copies += 1;
    const n = copies;
    const root = join(dir, `copy-${n}`);
    await cp(source, root, { recursive: true, preserveTimestamps: true });
    const config = join(dir, `copy-${n}.yml`);
    await writeFile(config, rootConfig(root));
    return { root, config };
  }

  const registry2 = async (flags: readonly string[]): Promise<{ stdout: string; root: string }> => {
    const { root, config } = await copy();
    const r = await run('docker-registry', ['garbage-collect', ...flags, config]);
    return { stdout: r.stdout, root };
  };
  const berth = async (flags: readonly string[]): Promise<{ stdout: string; stderr: string; root: string }> => {
    const { root, config } = await copy();
    const r = await runBerthCli(['garbage-collect', ...flags, config]);
    expect(r.code, r.stderr).toBe(0);
    return { stdout: r.stdout, stderr: r.stderr, root };
  };

  it('finds the same blobs eligible for deletion in a dry run', async () => {
    const [theirs, ours] = await Promise.all([registry2(['--dry-run']), berth(['--dry-run'])]);
    const expected = eligibleIn(theirs.stdout);
    expect(expected.size).toBeGreaterThan(0);
    expect(eligibleIn(ours.stdout)).toEqual(expected);
    // The summary line, in registry:2's words.
    const summary = /^(\d+) blobs marked, (\d+) blobs and 0 manifests eligible for deletion$/m;
    expect(ours.stdout).toMatch(summary);
    expect(summary.exec(ours.stdout)?.[2]).toBe(String(expected.size));
    expect(ours.stdout).toContain(`app: marking manifest ${A.manifest.digest} \n`);
    expect(ours.stdout).toContain(`app: marking blob ${base.digest}\n`);
    expect(await blobsIn(ours.root)).toEqual(await blobsIn(theirs.root)); // a dry run deletes nothing
  });

  it('leaves the same blobs after a real run', async () => {
    const [theirs, ours] = await Promise.all([registry2([]), berth([])]);
    const left = await blobsIn(theirs.root);
    expect(await blobsIn(ours.root)).toEqual(left);
    expect(ours.stderr).toMatch(/Deleting blob: \/docker\/registry\/v2\/blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}/);
    for (const d of [...A.blobs, ...B.blobs, O.manifest, INDEX.manifest, ...M1.blobs]) expect(left.has(d.digest)).toBe(true);
    for (const d of [F.manifest, layerBlob(7), L1, L2, G.manifest, layerBlob(13)]) expect(left.has(d.digest)).toBe(false);
  });

  it('with -m, differs only by the index children and the referrer that registry:2 2.8 drops', async () => {
    const [theirs, ours] = await Promise.all([registry2(['--dry-run', '-m']), berth(['--dry-run', '-m'])]);
    const theirSet = eligibleIn(theirs.stdout);
    const ourSet = eligibleIn(ours.stdout);
    expect(difference(ourSet, theirSet)).toEqual(new Set());
    expect(difference(theirSet, ourSet)).toEqual(KEPT_ONLY_BY_BERTH);
    for (const d of [C.manifest, D.manifest]) expect(ours.stdout).toContain(`manifest eligible for deletion: ${d.digest}\n`);
    for (const d of [...C.blobs, ...D.blobs]) expect(ourSet.has(d.digest)).toBe(true);
  });

  it('with --delete-untagged for real, removes the untagged revisions and their blobs, and the rest still serves', async () => {
    const ours = await berth(['--delete-untagged']);
    const left = await blobsIn(ours.root);
    for (const d of [...C.blobs, C.manifest, ...D.blobs, D.manifest]) expect(left.has(d.digest)).toBe(false);
    for (const d of [...M1.blobs, ...M2.blobs, ...N1.blobs, S.manifest, ...S.blobs, ...E.blobs]) expect(left.has(d.digest)).toBe(true);
    const revisions = join(v2(ours.root), 'repositories/app/_manifests/revisions/sha256');
    const kept = await readdir(revisions);
    expect(kept).not.toContain(C.manifest.digest.slice(7));
    expect(kept).toContain(S.manifest.digest.slice(7));
    // registry:2 serves what is left.
    const reg = await startRegistry2({ root: ours.root });
    try {
      for (const [repo, ref, img] of [['multi', 'latest', INDEX], ['app', 'v2', B], ['app', 'old', E]] as const) {
        const res = await raw(reg.url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: img.mediaType } });
        expect(res.status, `${repo}:${ref}`).toBe(200);
      }
      const child = await raw(reg.url, 'GET', `/v2/multi/manifests/${M1.manifest.digest}`, { headers: { Accept: MT.ociManifest } });
      expect(child.status).toBe(200);
      expectNoRegistry2Errors(reg);
    } finally {
      await reg.close();
    }
  });
});
