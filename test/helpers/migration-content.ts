/**
 * Content for the migration tests, written offline: real images (gzip'd tar layers whose configs carry
 * the right `diff_ids`), multi-platform OCI indexes and artifacts with a subject, and OCI image layout
 * directories (`oci-layout`, `index.json`, `blobs/sha256/…`) that skopeo copies from (`oci:DIR:REF`).
 * Everything is deterministic: the same seed gives the same bytes, so the same digests.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Blob, MT, blob, descriptor, manifestBlob, randomBytesSeeded, sha256 } from './oci.js';

// ---- tar ----

export interface TarFile {
  /** Relative path inside the layer, e.g. `app/bin/run`; a trailing `/` makes a directory. */
  readonly path: string;
  readonly content?: Uint8Array | string;
  /** Octal permission bits; 0o644 for files and 0o755 for directories unless given. */
  readonly mode?: number;
}

/** Fixed modification time of every entry (2024-01-01T00:00:00Z), so layers are reproducible. */
const MTIME = 1_704_067_200;
const BLOCK = 512;

function octal(value: number, width: number): string {
  // width-1 octal digits and a NUL, as ustar wants
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function tarHeader(path: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  if (Buffer.byteLength(path) > 100) throw new Error(`tar path too long for this writer: ${path}`);
  h.write(path, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum field counts as spaces while summing
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A ustar archive of `files`, ending with the two zero blocks. */
export function tar(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    if (f.path.endsWith('/')) {
      parts.push(tarHeader(f.path, 0, f.mode ?? 0o755, '5'));
      continue;
    }
    const data = Buffer.from(f.content ?? '');
    parts.push(tarHeader(f.path, data.length, f.mode ?? 0o644, '0'), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

export interface Layer {
  /** The gzip'd tar, as stored in the registry. */
  readonly blob: Blob;
  /** sha256 of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  readonly diffId: string;
}

/** A gzip'd tar layer of `files` (Node's gzip writes mtime 0, so the bytes are reproducible). */
export function layer(files: readonly TarFile[]): Layer {
  const plain = tar(files);
  return { blob: blob(gzipSync(plain, { level: 6 })), diffId: sha256(plain) };
}

/** A layer of a few files with seeded content, around `size` bytes before compression. */
export function seededLayer(seed: number, size = 4096): Layer {
  return layer([
    { path: `opt/` },
    { path: `opt/layer-${seed}/` },
    { path: `opt/layer-${seed}/README`, content: `layer ${seed}\n` },
    // Half text (compresses), half noise (does not): a realistic mix for gzip.
    { path: `opt/layer-${seed}/notes.txt`, content: `line ${seed}\n`.repeat(Math.ceil(size / 2 / 8)) },
    { path: `opt/layer-${seed}/blob.bin`, content: randomBytesSeeded(Math.floor(size / 2), seed + 7) },
    { path: `opt/layer-${seed}/run.sh`, content: `#!/bin/sh\necho ${seed}\n`, mode: 0o755 },
  ]);
}

/** The base layer every image built here starts from (shared, as base layers are across repositories). */
export const BASE_LAYER: Layer = layer([
  { path: 'etc/' },
  { path: 'etc/os-release', content: 'ID=berth-test\nVERSION_ID=1\n' },
  { path: 'bin/' },
  { path: 'bin/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
]);

// ---- images, indexes, artifacts ----

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

/** One stored object: a manifest (any kind) or a blob, with the media type it is stored under. */
export interface Stored {
  readonly blob: Blob;
  readonly mediaType: string;
}

export interface ImageContent {
  readonly manifest: Blob;
  readonly mediaType: string;
  readonly config: Blob;
  readonly layers: readonly Layer[];
  readonly platform: Platform;
  /** Every blob the manifest refers to (config and layers). */
  readonly blobs: readonly Blob[];
}

/** A single-platform OCI image: the shared base layer plus `layerCount` seeded layers. */
export function ociImage(seed: number, opts: { platform?: Platform; layerCount?: number; labels?: Record<string, string> } = {}): ImageContent {
  const platform = opts.platform ?? { architecture: 'amd64', os: 'linux' };
  const layers = [BASE_LAYER, ...Array.from({ length: opts.layerCount ?? 1 }, (_, i) => seededLayer(seed * 10 + i, 2048 + 1024 * i))];
  const created = '2024-01-01T00:00:00Z';
  const config = blob(
    JSON.stringify({
      created,
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Cmd: ['/bin/hello'],
        Labels: { 'org.example.seed': String(seed), ...opts.labels },
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created, created_by: `berth migration test: layer ${i} of image ${seed}` })),
    }),
  );
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: descriptor(MT.ociConfig, config),
    layers: layers.map((l) => descriptor(MT.ociLayer, l.blob)),
    annotations: { 'org.opencontainers.image.created': created },
  });
  return { manifest, mediaType: MT.ociManifest, config, layers, platform, blobs: [config, ...layers.map((l) => l.blob)] };
}

export interface IndexContent {
  readonly manifest: Blob;
  readonly mediaType: string;
  readonly images: readonly ImageContent[];
}

/** A multi-platform OCI index over `images` (each with its own platform). */
export function ociIndex(images: readonly ImageContent[]): IndexContent {
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: images.map((img) => ({ ...descriptor(img.mediaType, img.manifest), platform: img.platform })),
  });
  return { manifest, mediaType: MT.ociIndex, images };
}

/** A two-platform index (linux/amd64 and linux/arm64/v8) of images seeded `seed` and `seed + 1`. */
export function twoPlatformIndex(seed: number): IndexContent {
  return ociIndex([
    ociImage(seed, { platform: { architecture: 'amd64', os: 'linux' } }),
    ociImage(seed + 1, { platform: { architecture: 'arm64', os: 'linux', variant: 'v8' }, layerCount: 2 }),
  ]);
}

export interface ArtifactContent {
  readonly manifest: Blob;
  readonly mediaType: string;
  readonly artifactType: string;
  /** The empty config `{}` and the payload. */
  readonly blobs: readonly Blob[];
  readonly subject: Stored;
}

export const SIGNATURE_TYPE = 'application/vnd.example.signature.v1';

/** An OCI 1.1 artifact (empty config, one payload, `artifactType`) whose subject is `subject`. */
export function artifactFor(subject: Stored, seed: number): ArtifactContent {
  const empty = blob('{}');
  const payload = blob(JSON.stringify({ signed: subject.blob.digest, by: `key-${seed}` }));
  const manifest = manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    artifactType: SIGNATURE_TYPE,
    config: descriptor(MT.ociEmpty, empty),
    layers: [descriptor(`${SIGNATURE_TYPE}+json`, payload)],
    subject: descriptor(subject.mediaType, subject.blob),
    annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.seed': String(seed) },
  });
  return { manifest, mediaType: MT.ociManifest, artifactType: SIGNATURE_TYPE, blobs: [empty, payload], subject };
}

/** Something a layout can name: a single image or an index. */
export type Top = ImageContent | IndexContent;

export const isIndex = (t: Top): t is IndexContent => 'images' in t;

/** Every manifest (the top one and, for an index, its children) and blob of `top`, digest → bytes. */
export function closure(top: Top): Map<string, Blob> {
  const out = new Map<string, Blob>();
  const addImage = (img: ImageContent): void => {
    out.set(img.manifest.digest, img.manifest);
    for (const b of img.blobs) out.set(b.digest, b);
  };
  if (isIndex(top)) {
    out.set(top.manifest.digest, top.manifest);
    for (const img of top.images) addImage(img);
  } else {
    addImage(top);
  }
  return out;
}

// ---- OCI image layouts ----

/**
 * Writes an OCI image layout at `dir` naming each `refs` entry (`org.opencontainers.image.ref.name`),
 * with every blob and manifest the entries need under `blobs/sha256/`. Answers `dir`.
 */
export async function writeOciLayout(dir: string, refs: ReadonlyArray<{ readonly ref: string; readonly top: Top }>): Promise<string> {
  const all = new Map<string, Blob>();
  for (const { top } of refs) for (const [d, b] of closure(top)) all.set(d, b);
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  for (const [d, b] of all) await writeFile(join(dir, 'blobs/sha256', d.slice('sha256:'.length)), b.bytes);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: refs.map(({ ref, top }) => ({
      ...descriptor(top.mediaType, top.manifest),
      annotations: { 'org.opencontainers.image.ref.name': ref },
    })),
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}
