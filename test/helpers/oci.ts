/**
 * Building OCI content and speaking the registry API in tests: blobs, manifests of every kind, and
 * raw HTTP requests whose paths are sent byte for byte (fetch would normalise `..` away).
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

/** An Accept header naming every manifest type: Docker schema 2 manifest and list, OCI manifest and index. */
export const ACCEPT_ALL = [MT.dockerManifest, MT.dockerList, MT.ociManifest, MT.ociIndex].join(', ');

export interface Blob {
  readonly bytes: Buffer;
  readonly digest: string;
  readonly size: number;
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function blob(content: Uint8Array | string): Blob {
  const bytes = Buffer.from(content);
  return { bytes, digest: sha256(bytes), size: bytes.length };
}

/** Deterministic pseudo-random bytes, so tests are repeatable. */
export function randomBytesSeeded(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

export interface DescriptorJson {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export const descriptor = (mediaType: string, b: Blob, extra: Partial<DescriptorJson> = {}): DescriptorJson => ({
  mediaType,
  digest: b.digest,
  size: b.size,
  ...extra,
});

/** A manifest serialised exactly once, so its digest is that of the bytes sent. */
export function manifestBlob(doc: object): Blob {
  return blob(JSON.stringify(doc));
}

/** A manifest as an index lists it: its bytes, media type and platform. */
export interface PlatformManifest {
  readonly manifest: Blob;
  readonly mediaType: string;
  readonly platform: Platform;
}

/** `img` as the linux/`architecture` entry of an index. */
export const onLinux = (architecture: string, img: { readonly manifest: Blob; readonly mediaType: string }): PlatformManifest => ({
  manifest: img.manifest,
  mediaType: img.mediaType,
  platform: { architecture, os: 'linux' },
});

/** An OCI image index or Docker manifest list (`mediaType`) of `manifests`, in order, each with its platform. */
export function platformIndex(mediaType: string, manifests: readonly PlatformManifest[]): Blob {
  return manifestBlob({
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => descriptor(m.mediaType, m.manifest, { platform: { ...m.platform } })),
  });
}

/** The empty JSON config (`{}`) of an OCI 1.1 artifact. */
export const emptyConfig = (): Blob => blob('{}');

/**
 * An OCI 1.1 artifact manifest: `artifactType`, the empty config (`emptyConfig()`), `layers`, `subject`,
 * and `annotations` when given.
 */
export function artifactManifest(
  artifactType: string,
  layers: readonly DescriptorJson[],
  subject: DescriptorJson,
  annotations?: Record<string, string>,
): Blob {
  return manifestBlob({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    artifactType,
    config: descriptor(MT.ociEmpty, emptyConfig()),
    layers,
    subject,
    ...(annotations !== undefined ? { annotations } : {}),
  });
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  header(name: string): string | undefined;
  json(): unknown;
}

/** One HTTP request with the path sent exactly as given. */
export function raw(
  base: string,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Uint8Array | string | undefined } = {},
): Promise<RawResponse> {
  const url = new URL(base);
  const headers = { ...opts.headers };
  // Node sends a DELETE or GET body with no framing unless told its length.
  if (opts.body !== undefined && !Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h))) {
    headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            header: (name) => {
              const v = res.headers[name.toLowerCase()];
              return Array.isArray(v) ? v.join(', ') : v;
            },
            json: () => JSON.parse(body.toString('utf8')) as unknown,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Does `GET <url>/v2/` answer 200 (within a second)? False while nothing listens there yet. */
export async function answersV2(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The `errors[0].code` of an OCI error body. */
export function errorCode(res: RawResponse): string | undefined {
  const doc = res.json() as { errors?: { code?: string }[] };
  return doc.errors?.[0]?.code;
}

/** Path and query of a Location header (absolute or relative). */
export function locationPath(res: RawResponse): string {
  const loc = res.header('Location');
  if (loc === undefined) throw new Error(`no Location header (status ${res.status})`);
  const u = new URL(loc, 'http://placeholder');
  return `${u.pathname}${u.search}`;
}

/** Pushes a blob in one POST (`?digest=`); throws unless 201. */
export async function pushBlob(base: string, repo: string, b: Blob): Promise<void> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
    body: b.bytes,
  });
  if (res.status !== 201) throw new Error(`push blob ${b.digest}: ${res.status} ${res.body.toString()}`);
}

/**
 * Pushes a blob as POST for a session, then PUT `?digest=` with the whole body: the monolithic upload
 * registry:2 2.8 accepts too (it has no POST `?digest=`). Throws unless 201 with the blob's Docker-Content-Digest.
 */
export async function pushBlobPostPut(base: string, repo: string, b: Blob): Promise<void> {
  const post = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/`);
  if (post.status !== 202) throw new Error(`POST upload ${repo}: ${post.status} ${post.body.toString()}`);
  const location = locationPath(post);
  const sep = location.includes('?') ? '&' : '?';
  const put = await raw(base, 'PUT', `${location}${sep}digest=${encodeURIComponent(b.digest)}`, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) },
    body: b.bytes,
  });
  if (put.status !== 201) throw new Error(`PUT upload ${repo} ${b.digest}: ${put.status} ${put.body.toString()}`);
  if (put.header('Docker-Content-Digest') !== b.digest) {
    throw new Error(`PUT upload ${repo}: Docker-Content-Digest ${String(put.header('Docker-Content-Digest'))}, want ${b.digest}`);
  }
}

/** PUTs a manifest; answers the raw response. */
export function putManifest(base: string, repo: string, ref: string, m: Blob, mediaType: string): Promise<RawResponse> {
  return raw(base, 'PUT', `/v2/${repo}/manifests/${ref}`, { headers: { 'Content-Type': mediaType }, body: m.bytes });
}

export interface Image {
  readonly config: Blob;
  readonly layers: Blob[];
  readonly manifest: Blob;
  readonly mediaType: string;
}

/** An image with `layerCount` small layers, as Docker (schema 2) or OCI. */
export function makeImage(seed: number, opts: { docker?: boolean; layerCount?: number; subject?: Blob; artifactType?: string } = {}): Image {
  const docker = opts.docker ?? false;
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed, rootfs: { type: 'layers', diff_ids: [] } }));
  const layers = Array.from({ length: opts.layerCount ?? 2 }, (_, i) => blob(randomBytesSeeded(1024 + i * 100, seed * 100 + i + 1)));
  const mediaType = docker ? MT.dockerManifest : MT.ociManifest;
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(docker ? MT.dockerConfig : MT.ociConfig, config),
    layers: layers.map((l) => descriptor(docker ? MT.dockerLayer : MT.ociLayer, l)),
  };
  if (opts.artifactType !== undefined) doc['artifactType'] = opts.artifactType;
  if (opts.subject) doc['subject'] = descriptor(MT.ociManifest, opts.subject);
  return { config, layers, manifest: manifestBlob(doc), mediaType };
}

/** Pushes an image's blobs and its manifest under `ref`; throws unless every step succeeds. */
export async function pushImage(base: string, repo: string, ref: string, image: Image): Promise<RawResponse> {
  for (const b of [image.config, ...image.layers]) await pushBlob(base, repo, b);
  const res = await putManifest(base, repo, ref, image.manifest, image.mediaType);
  if (res.status !== 201) throw new Error(`push manifest: ${res.status} ${res.body.toString()}`);
  return res;
}
