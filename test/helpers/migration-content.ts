/**
 * Content for the migration tests, written offline with test/helpers/images.ts (gzip'd ustar layers,
 * configs with the right `diff_ids`, OCI image layouts): real images over a shared base layer,
 * multi-platform OCI indexes and artifacts with a subject, and OCI image layout directories
 * (`oci-layout`, `index.json`, `blobs/sha256/…`) that skopeo copies from (`oci:DIR:REF`).
 * Everything is deterministic: the same seed gives the same bytes, so the same digests.
 */
import { type BuiltImage, type Layer, buildImage, layer, writeOciLayout } from './images.js';
import {
  type Blob, MT, type Platform, artifactManifest, blob, descriptor, emptyConfig, platformIndex, randomBytesSeeded,
} from './oci.js';

/** Fixed modification time of every tar entry here (2024-01-01T00:00:00Z), as `created` is. */
const MTIME = 1_704_067_200;
const CREATED = '2024-01-01T00:00:00Z';

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
  ], MTIME);
}

/** The base layer every image built here starts from (shared, as base layers are across repositories). */
export const BASE_LAYER: Layer = layer([
  { path: 'etc/' },
  { path: 'etc/os-release', content: 'ID=berth-test\nVERSION_ID=1\n' },
  { path: 'bin/' },
  { path: 'bin/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
], MTIME);

// ---- images, indexes, artifacts ----

/** One stored object: a manifest (any kind) or a blob, with the media type it is stored under. */
export interface Stored {
  readonly blob: Blob;
  readonly mediaType: string;
}

export interface ImageContent extends BuiltImage {
  /** Every blob the manifest refers to (config and layers). */
  readonly blobs: readonly Blob[];
}

/** A single-platform OCI image: the shared base layer plus `layerCount` seeded layers. */
export function ociImage(seed: number, opts: { platform?: Platform; layerCount?: number; labels?: Record<string, string> } = {}): ImageContent {
  const img = buildImage({
    platform: opts.platform ?? { architecture: 'amd64', os: 'linux' },
    layers: [BASE_LAYER, ...Array.from({ length: opts.layerCount ?? 1 }, (_, i) => seededLayer(seed * 10 + i, 2048 + 1024 * i))],
    labels: { 'org.example.seed': String(seed), ...opts.labels },
    created: CREATED,
    cmd: ['/bin/hello'],
    createdBy: (i) => `berth migration test: layer ${i} of image ${seed}`,
    annotations: { 'org.opencontainers.image.created': CREATED },
  });
  return { ...img, blobs: [img.config, ...img.layers.map((l) => l.gzip)] };
}

export interface IndexContent {
  readonly manifest: Blob;
  readonly mediaType: string;
  readonly images: readonly ImageContent[];
}

/** A multi-platform OCI index over `images` (each with its own platform). */
export function ociIndex(images: readonly ImageContent[]): IndexContent {
  return { manifest: platformIndex(MT.ociIndex, images), mediaType: MT.ociIndex, images };
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
  const empty = emptyConfig();
  const payload = blob(JSON.stringify({ signed: subject.blob.digest, by: `key-${seed}` }));
  const manifest = artifactManifest(
    SIGNATURE_TYPE,
    [descriptor(`${SIGNATURE_TYPE}+json`, payload)],
    descriptor(subject.mediaType, subject.blob),
    { 'org.opencontainers.image.created': CREATED, 'org.example.seed': String(seed) },
  );
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
export async function writeContentLayout(dir: string, refs: ReadonlyArray<{ readonly ref: string; readonly top: Top }>): Promise<string> {
  const blobs = refs.flatMap(({ top }) => [...closure(top).values()]);
  await writeOciLayout(dir, refs.map(({ ref, top }) => ({ ref, blob: top.manifest, mediaType: top.mediaType })), blobs);
  return dir;
}
