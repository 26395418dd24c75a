/**
 * The content the suite pushes: blobs, OCI image manifests, image indexes and artifacts with a
 * `subject`, all generated from a label, so every run pushes the same bytes (same digests) and two
 * workflows never share content by accident. Manifests are serialised once; their digest is the digest
 * of exactly the bytes sent.
 */
import { createHash } from 'node:crypto';

/** The media types the suite pushes (OCI image-spec v1.1). */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  exampleConfig: 'application/vnd.example.berth-conformance.config.v1+json',
} as const;

/** Content addressed by its digest. */
export interface Blob {
  readonly bytes: Buffer;
  readonly digest: string;
  readonly size: number;
}

/** A manifest's bytes with the media type it is pushed as. */
export interface Manifest extends Blob {
  readonly mediaType: string;
}

/** An OCI descriptor (image-spec descriptor.md). */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: { readonly architecture: string; readonly os: string };
}

/** An image (or artifact): its config, its layers and the manifest that names them. */
export interface Image {
  readonly config: Blob;
  readonly layers: readonly Blob[];
  readonly manifest: Manifest;
  /** Config and layers: what must be pushed before the manifest. */
  readonly blobs: readonly Blob[];
}

const PREFIX = 'berth-conformance';

/** `sha256:<hex>` of the bytes. */
export function digestOf(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Bytes as a blob. */
export function blobOf(data: Uint8Array | string): Blob {
  const bytes = Buffer.from(data);
  return { bytes, digest: digestOf(bytes), size: bytes.length };
}

/** `size` pseudo-random bytes determined by `label` (SHA-256 in counter mode). */
export function seededBytes(label: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let block = 0, at = 0; at < size; block++) {
    at += createHash('sha256').update(`${PREFIX}/${label}/${block}`).digest().copy(out, at);
  }
  return out;
}

/** A blob of `size` bytes determined by `label`. */
export function seededBlob(label: string, size: number): Blob {
  return blobOf(seededBytes(label, size));
}

/** The digest of content no run ever pushes, for "unknown" requests. */
export function neverPushedDigest(label: string): string {
  return digestOf(`${PREFIX}/never-pushed/${label}`);
}

/** A descriptor of `content` as `mediaType`. */
export function descriptorOf(content: Blob, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: content.digest, size: content.size, ...extra };
}

/** A manifest of `doc`, serialised once. */
export function manifestOf(doc: object, mediaType: string): Manifest {
  return { ...blobOf(JSON.stringify(doc)), mediaType };
}

/** What an image or artifact may add to its manifest. */
export interface ImageOptions {
  readonly layers?: number;
  readonly subject?: Manifest;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Config as the OCI empty descriptor `{}` (artifacts), or the config media type to use. */
  readonly config?: 'empty' | string;
}

function configFor(label: string, opts: ImageOptions): { blob: Blob; mediaType: string } {
  if (opts.config === 'empty') return { blob: blobOf('{}'), mediaType: MEDIA.ociEmpty };
  const doc = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { [PREFIX]: label } } };
  return { blob: blobOf(JSON.stringify(doc)), mediaType: opts.config ?? MEDIA.ociConfig };
}

/** An OCI image manifest with its config and `layers` (default 2) small layers, all determined by `label`. */
export function imageOf(label: string, opts: ImageOptions = {}): Image {
  const config = configFor(label, opts);
  const layers = Array.from({ length: opts.layers ?? 2 }, (_, i) => seededBlob(`${label}/layer/${i}`, 1500 + 257 * i));
  const doc: Record<string, unknown> = { schemaVersion: 2, mediaType: MEDIA.ociManifest };
  if (opts.artifactType !== undefined) doc['artifactType'] = opts.artifactType;
  doc['config'] = descriptorOf(config.blob, config.mediaType);
  doc['layers'] = layers.map((l) => descriptorOf(l, MEDIA.ociLayer));
  if (opts.subject !== undefined) doc['subject'] = descriptorOf(opts.subject, opts.subject.mediaType);
  if (opts.annotations !== undefined) doc['annotations'] = opts.annotations;
  return { config: config.blob, layers, manifest: manifestOf(doc, MEDIA.ociManifest), blobs: [config.blob, ...layers] };
}

/** What an index may add: a subject, an artifactType, annotations. */
export interface IndexOptions {
  readonly subject?: Manifest;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An OCI image index of `children`, each with a distinct platform. */
export function indexOf(children: readonly Manifest[], opts: IndexOptions = {}): Manifest {
  const architectures = ['amd64', 'arm64', 'riscv64', 's390x'];
  const manifests = children.map((m, i) =>
    descriptorOf(m, m.mediaType, { platform: { architecture: architectures[i % architectures.length] ?? 'amd64', os: 'linux' } }),
  );
  const doc: Record<string, unknown> = { schemaVersion: 2, mediaType: MEDIA.ociIndex };
  if (opts.artifactType !== undefined) doc['artifactType'] = opts.artifactType;
  doc['manifests'] = manifests;
  if (opts.subject !== undefined) doc['subject'] = descriptorOf(opts.subject, opts.subject.mediaType);
  if (opts.annotations !== undefined) doc['annotations'] = opts.annotations;
  return manifestOf(doc, MEDIA.ociIndex);
}

/** `image`'s manifest with an annotation padding it to at least `size` bytes (for size limits). */
export function paddedManifest(image: Image, size: number): Manifest {
  const doc = JSON.parse(image.manifest.bytes.toString('utf8')) as Record<string, unknown>;
  doc['annotations'] = { [`${PREFIX}.padding`]: 'x'.repeat(size) };
  return manifestOf(doc, MEDIA.ociManifest);
}
