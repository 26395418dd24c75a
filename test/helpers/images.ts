/**
 * Container images made offline, byte for byte, for the real-client tests: layers are POSIX ustar
 * archives written here and gzip'd with node:zlib (both deterministic, so the same call gives the
 * same digests), image configs carry `rootfs.diff_ids` = sha256 of each uncompressed tar, and the
 * results are written as
 *
 * - an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), which
 *   `skopeo copy [--all] oci:DIR:TAG docker://127.0.0.1:PORT/repo:tag` pushes; either one image, or a
 *   multi-platform OCI index (linux/amd64 + linux/arm64, a shared base layer, one layer per platform);
 * - a docker-archive (`manifest.json`, `<hex>.json`, `<hex>/layer.tar`), which `docker load -i` takes.
 *
 * `readOciLayout` opens a layout again (e.g. one skopeo wrote) to compare digests and bytes. The
 * migration tests build their content set on these too (test/helpers/migration-content.ts).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  type Blob, type DescriptorJson, MT, type Platform, blob, descriptor, manifestBlob, platformIndex, randomBytesSeeded, sha256,
} from './oci.js';

// ---- tar ----

export interface TarEntry {
  /** Relative path without a leading `./` or `/`; directories may end with `/`. */
  readonly path: string;
  /** File content; absent for a directory. */
  readonly content?: string | Uint8Array;
  readonly mode?: number;
}

const BLOCK = 512;
/** 2023-11-14T22:13:20Z: every entry and config gets this time (unless given another), so archives are reproducible. */
export const FIXED_MTIME = 1_700_000_000;
export const FIXED_CREATED = new Date(FIXED_MTIME * 1000).toISOString().replace('.000Z', 'Z');

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** Splits a path over ustar's 155-byte prefix and 100-byte name. @throws when it cannot fit. */
function splitName(path: string): { name: string; prefix: string } {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  const cut = path.lastIndexOf('/', path.length - 2);
  const name = path.slice(cut + 1);
  const prefix = path.slice(0, Math.max(cut, 0));
  if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: path too long: ${path}`);
  return { name, prefix };
}

function header(entry: TarEntry, size: number, dir: boolean, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const { name, prefix } = splitName(dir && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(entry.mode ?? (dir ? 0o755 : 0o644), 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write(' '.repeat(8), 148, 'ascii'); // checksum placeholder
  h.write(dir ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A POSIX ustar archive of `entries`, in the order given, owned by root, every entry with mtime `mtime` (seconds). */
export function tar(entries: readonly TarEntry[], mtime: number = FIXED_MTIME): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const dir = entry.content === undefined;
    const data = dir ? Buffer.alloc(0) : Buffer.from(entry.content);
    parts.push(header(entry, data.length, dir, mtime), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(2 * BLOCK, 0));
  return Buffer.concat(parts);
}

// ---- layers, configs, manifests ----

export interface Layer {
  /** The uncompressed tar. */
  readonly tar: Buffer;
  /** The gzip'd tar: what a registry stores. */
  readonly gzip: Blob;
  /** sha256 of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  readonly diffId: string;
}

/** A gzip'd tar layer of `entries` (Node's gzip writes mtime 0, so the bytes are reproducible). */
export function layer(entries: readonly TarEntry[], mtime: number = FIXED_MTIME): Layer {
  const t = tar(entries, mtime);
  return { tar: t, gzip: blob(gzipSync(t, { level: 6 })), diffId: sha256(t) };
}

export interface BuiltImage {
  readonly platform: Platform;
  readonly config: Blob;
  readonly layers: readonly Layer[];
  /** The OCI image manifest. */
  readonly manifest: Blob;
  /** The manifest's media type (OCI image manifest). */
  readonly mediaType: string;
}

export interface BuildImageOptions {
  readonly platform: Platform;
  readonly layers: readonly Layer[];
  readonly labels?: Record<string, string>;
  /** `created` of the config and of each history entry. Default FIXED_CREATED. */
  readonly created?: string;
  /** The config's `Cmd`; none unless given. */
  readonly cmd?: readonly string[];
  /** `created_by` of history entry `i`. Default `berth test layer <i>`. */
  readonly createdBy?: (i: number) => string;
  /** The manifest's `annotations`; none unless given. */
  readonly annotations?: Record<string, string>;
}

/**
 * An OCI image: config (with diff_ids, history, labels) and manifest over the given layers. (Docker
 * schema 2 is what `skopeo copy --format v2s2` makes of it; skopeo 1.9 reads only OCI media types from
 * an OCI layout's index.json.)
 */
export function buildImage(opts: BuildImageOptions): BuiltImage {
  const created = opts.created ?? FIXED_CREATED;
  const createdBy = opts.createdBy ?? ((i: number): string => `berth test layer ${i}`);
  const { architecture, os, variant } = opts.platform;
  const config = blob(
    JSON.stringify({
      created,
      architecture,
      os,
      ...(variant !== undefined ? { variant } : {}),
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...(opts.cmd !== undefined ? { Cmd: opts.cmd } : {}),
        Labels: opts.labels ?? {},
      },
      rootfs: { type: 'layers', diff_ids: opts.layers.map((l) => l.diffId) },
      history: opts.layers.map((_, i) => ({ created, created_by: createdBy(i) })),
    }),
  );
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: descriptor(MT.ociConfig, config),
    layers: opts.layers.map((l) => descriptor(MT.ociLayer, l.gzip)),
    ...(opts.annotations !== undefined ? { annotations: opts.annotations } : {}),
  });
  return { platform: opts.platform, config, layers: opts.layers, manifest, mediaType: MT.ociManifest };
}

/**
 * A base layer every image of the same `name` shares: a few directories, a text file and 2 MiB of
 * incompressible data (so pushes and pulls stream more than a few TCP segments).
 */
export function baseLayer(name: string): Layer {
  return layer([
    { path: 'etc' },
    { path: 'etc/os-release', content: `NAME="berth-test-${name}"\nID=berth-test\n` },
    { path: 'usr' },
    { path: 'usr/share' },
    { path: 'usr/share/berth' },
    { path: 'usr/share/berth/base.bin', content: randomBytesSeeded(2 * 1024 * 1024, seedOf(`${name}/base`)) },
  ]);
}

/** A layer that differs per `tag` (e.g. the architecture): a text file and 16 KiB of data. */
export function appLayer(name: string, tag: string): Layer {
  return layer([
    { path: 'app' },
    { path: 'app/which.txt', content: `${name} ${tag}\n` },
    { path: 'app/data.bin', content: randomBytesSeeded(16 * 1024, seedOf(`${name}/${tag}`)) },
  ]);
}

function seedOf(s: string): number {
  return Number.parseInt(sha256(s).slice('sha256:'.length, 'sha256:'.length + 8), 16) || 1;
}

/** One linux/amd64 image of two layers (base + app), labelled `org.example.berth.test=<name>`. */
export function singlePlatformImage(name: string): BuiltImage {
  return buildImage({
    platform: { architecture: 'amd64', os: 'linux' },
    layers: [baseLayer(name), appLayer(name, 'amd64')],
    labels: { 'org.example.berth.test': name },
  });
}

export interface MultiPlatformImage {
  /** The OCI image index (amd64 first, then arm64). */
  readonly index: Blob;
  readonly amd64: BuiltImage;
  readonly arm64: BuiltImage;
  /** The layer both platform images start with. */
  readonly base: Layer;
}

/** A linux/amd64 + linux/arm64 OCI index: both images share the base layer and differ in the second. */
export function multiPlatformImage(name: string): MultiPlatformImage {
  const base = baseLayer(name);
  const build = (architecture: string): BuiltImage =>
    buildImage({
      platform: { architecture, os: 'linux' },
      layers: [base, appLayer(name, architecture)],
      labels: { 'org.example.berth.test': name },
    });
  const amd64 = build('amd64');
  const arm64 = build('arm64');
  return { index: platformIndex(MT.ociIndex, [amd64, arm64]), amd64, arm64, base };
}

// ---- OCI image layout ----

export const REF_NAME = 'org.opencontainers.image.ref.name';

function imageBlobs(img: BuiltImage): Blob[] {
  return [img.config, ...img.layers.map((l) => l.gzip), img.manifest];
}

/** A manifest (image or index) that an OCI layout's index.json names as `ref`. */
export interface LayoutRef {
  readonly ref: string;
  readonly blob: Blob;
  readonly mediaType: string;
}

/**
 * Writes an OCI image layout at `dir`: `blobs` and each ref's manifest under `blobs/sha256/`, and
 * index.json naming each of `refs` (`org.opencontainers.image.ref.name`), in order.
 */
export async function writeOciLayout(dir: string, refs: readonly LayoutRef[], blobs: readonly Blob[]): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const all = new Map([...blobs, ...refs.map((r) => r.blob)].map((b) => [b.digest, b]));
  for (const b of all.values()) await writeFile(join(dir, 'blobs', 'sha256', b.digest.slice('sha256:'.length)), b.bytes);
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: refs.map((r) => descriptor(r.mediaType, r.blob, { annotations: { [REF_NAME]: r.ref } })),
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

/** An OCI layout at `dir` holding one image as `tag` (`oci:DIR:TAG`). */
export function writeImageLayout(dir: string, tag: string, img: BuiltImage): Promise<void> {
  return writeOciLayout(dir, [{ ref: tag, blob: img.manifest, mediaType: img.mediaType }], imageBlobs(img));
}

/** An OCI layout at `dir` holding a multi-platform index as `tag` (`skopeo copy --all oci:DIR:TAG …`). */
export function writeIndexLayout(dir: string, tag: string, multi: MultiPlatformImage): Promise<void> {
  const blobs = [...imageBlobs(multi.amd64), ...imageBlobs(multi.arm64)];
  return writeOciLayout(dir, [{ ref: tag, blob: multi.index, mediaType: MT.ociIndex }], blobs);
}

export interface OciLayout {
  readonly dir: string;
  /** index.json as parsed. */
  readonly index: { schemaVersion: number; manifests: DescriptorJson[] };
  /** The descriptor in index.json whose ref.name is `tag`. @throws when there is none. */
  resolve(tag: string): DescriptorJson;
  /** The bytes of blob `digest`. @throws when the file is missing or its sha256 differs. */
  blob(digest: string): Promise<Buffer>;
}

/** Opens an OCI image layout directory (checks `oci-layout`). */
export async function readOciLayout(dir: string): Promise<OciLayout> {
  const marker = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
  if (marker.imageLayoutVersion !== '1.0.0') throw new Error(`${dir}: oci-layout says ${JSON.stringify(marker)}`);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as OciLayout['index'];
  return {
    dir,
    index,
    resolve(tag) {
      const found = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
      if (found === undefined) throw new Error(`${dir}: no manifest named ${tag} in index.json ${JSON.stringify(index)}`);
      return found;
    },
    async blob(digest) {
      const [alg, hex] = digest.split(':');
      if (alg !== 'sha256' || hex === undefined) throw new Error(`unsupported digest ${digest}`);
      const bytes = await readFile(join(dir, 'blobs', alg, hex));
      if (sha256(bytes) !== digest) throw new Error(`${dir}: blob ${digest} has sha256 ${sha256(bytes)}`);
      return bytes;
    },
  };
}

// ---- docker-archive (docker load) ----

/**
 * A docker-archive of one image, as `docker save` writes it: the config as `<hex>.json`, each layer
 * uncompressed as `<diffId hex>/layer.tar`, and `manifest.json` naming them with `repoTags`.
 * `docker load` gives it the image ID `img.config.digest`.
 */
export function dockerArchive(img: BuiltImage, repoTags: readonly string[]): Buffer {
  const hex = (d: string): string => d.slice('sha256:'.length);
  const configName = `${hex(img.config.digest)}.json`;
  const entries: TarEntry[] = [{ path: configName, content: img.config.bytes }];
  const layerNames: string[] = [];
  for (const l of img.layers) {
    const name = `${hex(l.diffId)}/layer.tar`;
    if (!layerNames.includes(name)) entries.push({ path: hex(l.diffId) }, { path: name, content: l.tar });
    layerNames.push(name);
  }
  const manifest = [{ Config: configName, RepoTags: repoTags, Layers: layerNames }];
  entries.push({ path: 'manifest.json', content: JSON.stringify(manifest) });
  return tar(entries);
}
