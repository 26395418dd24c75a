/**
 * The on-disk layout of registry:2, in one place. Every other module asks this one for a path; none
 * builds one itself. Paths are driver paths (absolute, relative to the storage root directory):
 *
 *   /docker/registry/v2/
 *     blobs/<alg>/<hex2>/<hex>/data                                   blob bytes, global
 *     repositories/<name>/
 *       _layers/<alg>/<hex>/link                                      blob linked into the repository
 *       _manifests/revisions/<alg>/<hex>/link                         manifest revision
 *       _manifests/tags/<tag>/current/link                            a tag's current manifest
 *       _manifests/tags/<tag>/index/<alg>/<hex>/link                  every manifest the tag pointed to
 *       _uploads/<uuid>/data | startedat | hashstates/<alg>/<offset>  upload in progress
 *
 * A link file holds `<alg>:<hex>` with no newline; `startedat` holds RFC 3339 UTC with seconds.
 * Anything Berth keeps that registry:2 does not know lives outside /docker/registry/v2.
 */
import { type Digest, type DigestAlgorithm, digestAlgorithm, digestHex, parseDigest } from './digest.js';
import type { RepoName, Tag, UploadId } from './reference.js';

const V2 = '/docker/registry/v2';

/** Directory names inside a repository; a directory holding either is a repository (v2.8 / v3). */
export const LAYERS_DIR = '_layers';
export const MANIFESTS_DIR = '_manifests';
export const UPLOADS_DIR = '_uploads';

function blobSuffix(d: Digest): string {
  const hex = digestHex(d);
  return `${digestAlgorithm(d)}/${hex.slice(0, 2)}/${hex}`;
}

function linkSuffix(d: Digest): string {
  return `${digestAlgorithm(d)}/${digestHex(d)}/link`;
}

/** Every path of the layout, by kind (see the file comment). */
export const paths = {
  root: V2,
  blobsRoot: `${V2}/blobs`,
  blobsOf: (alg: DigestAlgorithm): string => `${V2}/blobs/${alg}`,
  blobDir: (d: Digest): string => `${V2}/blobs/${blobSuffix(d)}`,
  blobData: (d: Digest): string => `${V2}/blobs/${blobSuffix(d)}/data`,

  repositoriesRoot: `${V2}/repositories`,
  repo: (name: RepoName): string => `${V2}/repositories/${name}`,
  /** The folder holding every repository whose name starts with `dir/` (the root for ''): `dir` is a name's leading components. */
  repositoriesUnder: (dir: string): string => (dir === '' ? `${V2}/repositories` : `${V2}/repositories/${dir}`),

  layers: (name: RepoName): string => `${V2}/repositories/${name}/${LAYERS_DIR}`,
  layersOf: (name: RepoName, alg: DigestAlgorithm): string => `${V2}/repositories/${name}/${LAYERS_DIR}/${alg}`,
  layerLink: (name: RepoName, d: Digest): string => `${V2}/repositories/${name}/${LAYERS_DIR}/${linkSuffix(d)}`,
  layerLinkDir: (name: RepoName, d: Digest): string =>
    `${V2}/repositories/${name}/${LAYERS_DIR}/${digestAlgorithm(d)}/${digestHex(d)}`,

  manifests: (name: RepoName): string => `${V2}/repositories/${name}/${MANIFESTS_DIR}`,
  revisions: (name: RepoName): string => `${V2}/repositories/${name}/${MANIFESTS_DIR}/revisions`,
  revisionsOf: (name: RepoName, alg: DigestAlgorithm): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/revisions/${alg}`,
  revisionLink: (name: RepoName, d: Digest): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/revisions/${linkSuffix(d)}`,
  revisionDir: (name: RepoName, d: Digest): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/revisions/${digestAlgorithm(d)}/${digestHex(d)}`,

  tags: (name: RepoName): string => `${V2}/repositories/${name}/${MANIFESTS_DIR}/tags`,
  tag: (name: RepoName, tag: Tag): string => `${V2}/repositories/${name}/${MANIFESTS_DIR}/tags/${tag}`,
  tagCurrentLink: (name: RepoName, tag: Tag): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/tags/${tag}/current/link`,
  tagIndexLink: (name: RepoName, tag: Tag, d: Digest): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/tags/${tag}/index/${linkSuffix(d)}`,
  tagIndexEntry: (name: RepoName, tag: Tag, d: Digest): string =>
    `${V2}/repositories/${name}/${MANIFESTS_DIR}/tags/${tag}/index/${digestAlgorithm(d)}/${digestHex(d)}`,

  uploads: (name: RepoName): string => `${V2}/repositories/${name}/${UPLOADS_DIR}`,
  upload: (name: RepoName, id: UploadId): string => `${V2}/repositories/${name}/${UPLOADS_DIR}/${id}`,
  uploadData: (name: RepoName, id: UploadId): string => `${V2}/repositories/${name}/${UPLOADS_DIR}/${id}/data`,
  uploadStartedAt: (name: RepoName, id: UploadId): string =>
    `${V2}/repositories/${name}/${UPLOADS_DIR}/${id}/startedat`,
  uploadHashStates: (name: RepoName, id: UploadId, alg: DigestAlgorithm): string =>
    `${V2}/repositories/${name}/${UPLOADS_DIR}/${id}/hashstates/${alg}`,
  /** The hash state saved when the upload's data was `offset` bytes long (registry:2's name for it). */
  uploadHashState: (name: RepoName, id: UploadId, alg: DigestAlgorithm, offset: number): string =>
    `${V2}/repositories/${name}/${UPLOADS_DIR}/${id}/hashstates/${alg}/${offset}`,

  /** Where `check --repair` moves blob data that does not match its digest (Berth's own, outside v2). */
  quarantineData: (d: Digest): string => `/berth/quarantine/${digestAlgorithm(d)}/${digestHex(d)}/data`,
  /** The built-in issuer's generated signing key on storage other than a filesystem (Berth's own, outside v2). */
  signingKey: '/berth/token-signing-key.pem',
  /** A notification endpoint's queue on storage other than a filesystem, without redis (Berth's own, outside v2). */
  notificationQueue: (queueName: string): string => `/berth/notifications/${queueName}`,
  /**
   * Written by a collection that looked through the whole tree and left no crash leftover behind
   * (gc/leftovers.ts): from then on the writers' records say where one can be (Berth's own, outside v2).
   */
  leftoversScanned: '/berth/leftovers-scanned',
} as const;

/**
 * What a driver path is in the layout: the reverse of `paths` (see parsePath). `rest` holds the
 * segments below the item the path names (`['link']`, `['data']`, `['current', 'link']`…).
 * - `ancestor`: the root, or a directory above `repositories/` (it holds every repository);
 * - `repositories`: a directory under `repositories/` with no `_…` segment: a repository, or a folder of
 *   repositories (`name` is its path below `repositories/`, undefined when that starts with `_`);
 * - `layer`, `revision`: under `_layers` / `_manifests/revisions`; `named` when the path reaches
 *   `<alg>/<hex>` (then `digest`, unless those do not make a digest);
 * - `tag`: under `_manifests/tags` (`tag` undefined for the tags folder itself);
 * - `manifests`: `_manifests` itself, or a folder in it registry:2 does not know;
 * - `upload`: under `_uploads` (`id` undefined for the folder itself);
 * - `other`: a `_…` folder of a repository that registry:2 does not know;
 * - `blob`: under `blobs/` (`digest` once the path reaches a well-formed `<alg>/<hex2>/<hex>`);
 * - `outside`: not in registry:2's tree at all (Berth's own `/berth/…`).
 *
 * Names and tags come back branded as they stand in the tree: every path Berth writes was built from
 * parsed ones, and a tree written by another tool is read as it is, so that nothing in it goes unseen.
 */
export type LayoutPath =
  | { readonly kind: 'ancestor' }
  | { readonly kind: 'repositories'; readonly name: RepoName | undefined }
  | { readonly kind: 'layer' | 'revision'; readonly repo: RepoName; readonly named: boolean; readonly digest: Digest | undefined; readonly rest: readonly string[] }
  | { readonly kind: 'tag'; readonly repo: RepoName; readonly tag: Tag | undefined; readonly rest: readonly string[] }
  | { readonly kind: 'manifests'; readonly repo: RepoName }
  | { readonly kind: 'upload'; readonly repo: RepoName; readonly id: UploadId | undefined; readonly rest: readonly string[] }
  | { readonly kind: 'other'; readonly repo: RepoName }
  | { readonly kind: 'blob'; readonly digest: Digest | undefined; readonly rest: readonly string[] }
  | { readonly kind: 'outside' };

/** The reverse of `paths`: what `path` is in the layout (see LayoutPath). */
export function parsePath(path: string): LayoutPath {
  const root = paths.repositoriesRoot;
  if (path === '/' || path === root || root.startsWith(`${path}/`)) return { kind: 'ancestor' };
  if (path.startsWith(`${root}/`)) return parseRepositoryPath(path.slice(root.length + 1).split('/'));
  if (path === paths.blobsRoot) return { kind: 'blob', digest: undefined, rest: [] };
  if (path.startsWith(`${paths.blobsRoot}/`)) {
    const [alg, hex2, hex, ...rest] = path.slice(paths.blobsRoot.length + 1).split('/');
    const digest = hex !== undefined && hex2 === hex.slice(0, 2) ? parseDigest(`${alg}:${hex}`) : undefined;
    return { kind: 'blob', digest, rest: digest === undefined ? [] : rest };
  }
  return { kind: 'outside' };
}

function parseRepositoryPath(segments: readonly string[]): LayoutPath {
  const at = segments.findIndex((s) => s.startsWith('_'));
  if (at < 0) return { kind: 'repositories', name: fromTree<RepoName>(segments.join('/')) };
  if (at === 0) return { kind: 'repositories', name: undefined };
  const repo = fromTree<RepoName>(segments.slice(0, at).join('/'));
  const [dir, ...inside] = segments.slice(at);
  if (dir === LAYERS_DIR) return { kind: 'layer', repo, ...itemOf(inside) };
  if (dir === UPLOADS_DIR) {
    const [id, ...rest] = inside;
    return { kind: 'upload', repo, id: id === undefined ? undefined : fromTree<UploadId>(id), rest };
  }
  if (dir !== MANIFESTS_DIR) return { kind: 'other', repo };
  const [area, ...below] = inside;
  if (area === 'revisions') return { kind: 'revision', repo, ...itemOf(below) };
  if (area === 'tags') {
    const [tag, ...rest] = below;
    return { kind: 'tag', repo, tag: tag === undefined ? undefined : fromTree<Tag>(tag), rest };
  }
  return { kind: 'manifests', repo };
}

/** `<alg>/<hex>/…` of a link folder. */
function itemOf(segments: readonly string[]): { named: boolean; digest: Digest | undefined; rest: readonly string[] } {
  const [alg, hex, ...rest] = segments;
  if (alg === undefined || hex === undefined) return { named: false, digest: undefined, rest: [] };
  return { named: true, digest: parseDigest(`${alg}:${hex}`), rest };
}

/** A name, tag or id read back from the tree (see LayoutPath): the one place the layout brands them. */
function fromTree<T extends RepoName | Tag | UploadId>(segment: string): T {
  return segment as T;
}

/** The last segment of a driver path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The repository name of a directory under repositoriesRoot, e.g. `/…/repositories/a/b` → `a/b`. */
export function repoNameOfDir(dir: string): RepoName | undefined {
  const at = parsePath(dir);
  return at.kind === 'repositories' ? at.name : undefined;
}

/** The tags a listing of a tags folder (`paths.tags(name)`) names. */
export function tagsOfListing(listed: readonly string[]): Tag[] {
  return listed.flatMap((child) => {
    const at = parsePath(child);
    return at.kind === 'tag' && at.tag !== undefined && at.rest.length === 0 ? [at.tag] : [];
  });
}

/** A link file `…/<alg>/<hex>/link` of a repository's `_layers` or `_manifests/revisions`: its digest. */
export function linkDigestOf(path: string): Digest | undefined {
  const at = parsePath(path);
  const isLink = (at.kind === 'layer' || at.kind === 'revision') && at.rest.length === 1 && at.rest[0] === 'link';
  return isLink ? at.digest : undefined;
}

/** The digest a revision folder `…/_manifests/revisions/<alg>/<hex>` names, or undefined for any other path. */
export function revisionDigestOf(dir: string): Digest | undefined {
  const at = parsePath(dir);
  return at.kind === 'revision' && at.rest.length === 0 ? at.digest : undefined;
}

/** The digest a layer link folder `…/_layers/<alg>/<hex>` names, or undefined for any other path. */
export function layerDigestOf(dir: string): Digest | undefined {
  const at = parsePath(dir);
  return at.kind === 'layer' && at.rest.length === 0 ? at.digest : undefined;
}

/** The digest of a blob's data file `…/blobs/<alg>/<hex2>/<hex>/data`, or undefined for any other path. */
export function blobDataDigestOf(path: string): Digest | undefined {
  const at = parsePath(path);
  return at.kind === 'blob' && at.rest.length === 1 && at.rest[0] === 'data' ? at.digest : undefined;
}

/** The text of a link file: the digest, no newline. */
export function linkContent(d: Digest): Buffer {
  return Buffer.from(d, 'utf8');
}

/** registry:2's `startedat` format: RFC 3339 UTC with whole seconds. */
export function formatStartedAt(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
