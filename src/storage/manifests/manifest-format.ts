/**
 * Manifest formats: which media types Berth stores, and what a manifest refers to. Pure functions,
 * no storage: `parseManifest` checks a pushed body and says what must exist before it is accepted.
 *
 * Accepted: Docker image manifest v2 schema 2, Docker manifest list, OCI image manifest and OCI image
 * index (OCI v1.1, so `artifactType` and `subject` too). Schema 1 is refused: registry:2 v3 no longer
 * serves it and no current client needs it.
 */
import { manifestInvalid } from '../../errors.js';
import { type Digest, parseDigest } from '../digest.js';

/** The manifest media types Berth stores. */
export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/** One of MEDIA_TYPES. */
export type ManifestMediaType = (typeof MEDIA_TYPES)[keyof typeof MEDIA_TYPES];

const MANIFEST_TYPES: ReadonlySet<string> = new Set(Object.values(MEDIA_TYPES));
const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.ociIndex]);
const DOCKER_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerManifestList]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/** The largest manifest Berth accepts, as registry:2 (4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** An OCI content descriptor, as checked by parseManifest. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
}

/** What a manifest says about itself and what it needs to exist. */
export interface ManifestInfo {
  readonly mediaType: ManifestMediaType;
  /** Blobs (config and layers) that must be in the repository, foreign layers left out. */
  readonly blobs: readonly Descriptor[];
  /** Manifests an index lists, which must be in the repository. */
  readonly children: readonly Descriptor[];
  readonly subject?: Descriptor;
  /** `artifactType`, or for an image manifest without one its config's media type (OCI v1.1 referrers rule). */
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Whether `t` is a manifest type Berth stores. */
export function isManifestMediaType(t: string): t is ManifestMediaType {
  return MANIFEST_TYPES.has(t);
}

/** The media type without parameters, lower-cased (`application/json; charset=utf-8` → `application/json`). */
export function bareMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Parses and checks a pushed manifest. `contentType` is the request's Content-Type; when it names a
 * manifest type, the body's own `mediaType` (if any) must agree with it.
 * @throws RegistryError MANIFEST_INVALID
 */
export function parseManifest(body: Uint8Array, contentType?: string): ManifestInfo {
  const doc = parseJsonObject(body);
  const mediaType = resolveMediaType(doc, bareMediaType(contentType));
  if (doc['schemaVersion'] !== 2) throw manifestInvalid('schemaVersion must be 2');
  const isIndex = INDEX_TYPES.has(mediaType);
  const info: ManifestInfo = isIndex ? indexInfo(doc, mediaType) : imageInfo(doc, mediaType);
  return info;
}

/** Reads what a stored manifest says, for serving and for referrers; never throws on odd content. */
export function describeStored(body: Uint8Array): { mediaType: string; info?: ManifestInfo } {
  try {
    const info = parseManifest(body);
    return { mediaType: info.mediaType, info };
  } catch {
    return { mediaType: guessStoredMediaType(body) };
  }
}

function guessStoredMediaType(body: Uint8Array): string {
  try {
    const doc: unknown = JSON.parse(Buffer.from(body).toString('utf8'));
    if (isObject(doc) && typeof doc['mediaType'] === 'string') return doc['mediaType'];
  } catch {
    // not JSON: served as stored, with the most neutral type
  }
  return MEDIA_TYPES.ociManifest;
}

function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw manifestInvalid(`body is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw manifestInvalid('body is not a JSON object');
  return doc;
}

function resolveMediaType(doc: Record<string, unknown>, header: string): ManifestMediaType {
  const field = doc['mediaType'];
  if (field !== undefined && typeof field !== 'string') throw manifestInvalid('mediaType must be a string');
  if (doc['schemaVersion'] === 1 || SCHEMA1_TYPES.has(header) || (field !== undefined && SCHEMA1_TYPES.has(field))) {
    throw manifestInvalid('schema 1 manifests are not supported; push a Docker schema 2 or OCI manifest');
  }
  if (isManifestMediaType(header)) {
    if (field !== undefined && field !== header) {
      throw manifestInvalid(`mediaType ${JSON.stringify(field)} does not match Content-Type ${JSON.stringify(header)}`);
    }
    // Docker's formats carry their type in the body; without it the stored bytes would read back as OCI.
    if (field === undefined && DOCKER_TYPES.has(header)) throw manifestInvalid(`${header} requires a mediaType field`);
    return header;
  }
  const chosen = field ?? inferMediaType(doc);
  if (!isManifestMediaType(chosen)) throw manifestInvalid(`unsupported manifest media type ${JSON.stringify(chosen)}`);
  return chosen;
}

/** OCI manifests may leave out `mediaType`: an index has `manifests`, an image manifest `config`. */
function inferMediaType(doc: Record<string, unknown>): string {
  if (Array.isArray(doc['manifests'])) return MEDIA_TYPES.ociIndex;
  if (isObject(doc['config'])) return MEDIA_TYPES.ociManifest;
  throw manifestInvalid('cannot tell the manifest type: no mediaType, config or manifests');
}

function imageInfo(doc: Record<string, unknown>, mediaType: ManifestMediaType): ManifestInfo {
  if (doc['manifests'] !== undefined) throw manifestInvalid(`${mediaType} must not have manifests`);
  const config = descriptor(doc['config'], 'config');
  const layers = descriptorList(doc['layers'], 'layers');
  const subject = doc['subject'] === undefined ? undefined : descriptor(doc['subject'], 'subject');
  const artifactType = optionalString(doc, 'artifactType') ?? config.mediaType;
  return withOptional(
    { mediaType, blobs: [config, ...layers.filter((l) => !isForeign(l))], children: [] },
    { subject, artifactType, annotations: annotations(doc['annotations'], 'annotations') },
  );
}

function indexInfo(doc: Record<string, unknown>, mediaType: ManifestMediaType): ManifestInfo {
  if (doc['config'] !== undefined || doc['layers'] !== undefined) {
    throw manifestInvalid(`${mediaType} must not have config or layers`);
  }
  if (doc['manifests'] === undefined) throw manifestInvalid(`${mediaType} requires manifests`);
  const children = descriptorList(doc['manifests'], 'manifests');
  const subject = doc['subject'] === undefined ? undefined : descriptor(doc['subject'], 'subject');
  return withOptional(
    { mediaType, blobs: [], children },
    { subject, artifactType: optionalString(doc, 'artifactType'), annotations: annotations(doc['annotations'], 'annotations') },
  );
}

/** Adds the optional fields that are defined (exactOptionalPropertyTypes forbids explicit undefined). */
function withOptional(
  base: ManifestInfo,
  extra: { subject: Descriptor | undefined; artifactType: string | undefined; annotations: Record<string, string> | undefined },
): ManifestInfo {
  return {
    ...base,
    ...(extra.subject && { subject: extra.subject }),
    ...(extra.artifactType !== undefined && { artifactType: extra.artifactType }),
    ...(extra.annotations && { annotations: extra.annotations }),
  };
}

/** A layer the registry does not hold (Docker foreign layers, OCI non-distributable layers with URLs). */
function isForeign(d: Descriptor): boolean {
  return d.urls !== undefined && d.urls.length > 0;
}

function descriptorList(value: unknown, where: string): Descriptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw manifestInvalid(`${where} must be an array`);
  return value.map((v, i) => descriptor(v, `${where}[${i}]`));
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw manifestInvalid(`${where} must be a descriptor object`);
  const mediaType = value['mediaType'];
  if (typeof mediaType !== 'string' || mediaType === '') throw manifestInvalid(`${where}.mediaType must be a string`);
  const digest = typeof value['digest'] === 'string' ? parseDigest(value['digest']) : undefined;
  if (digest === undefined) throw manifestInvalid(`${where}.digest is not a valid digest`);
  const size = value['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw manifestInvalid(`${where}.size must be a non-negative integer`);
  }
  const urls = value['urls'];
  if (urls !== undefined && (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string'))) {
    throw manifestInvalid(`${where}.urls must be an array of strings`);
  }
  const artifactType = optionalString(value, 'artifactType');
  const notes = annotations(value['annotations'], `${where}.annotations`);
  return {
    mediaType,
    digest,
    size,
    ...(urls !== undefined && { urls: urls as string[] }),
    ...(artifactType !== undefined && { artifactType }),
    ...(notes && { annotations: notes }),
  };
}

function annotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw manifestInvalid(`${where} must map strings to strings`);
  }
  return value as Record<string, string>;
}

function optionalString(doc: Record<string, unknown>, key: string): string | undefined {
  const v = doc[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw manifestInvalid(`${key} must be a string`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
