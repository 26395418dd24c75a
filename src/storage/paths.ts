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
import { type Digest, type DigestAlgorithm, digestAlgorithm, digestHex } from './digest.js';
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

  layersOf: (name: RepoName, alg: DigestAlgorithm): string => `${V2}/repositories/${name}/${LAYERS_DIR}/${alg}`,
  layerLink: (name: RepoName, d: Digest): string => `${V2}/repositories/${name}/${LAYERS_DIR}/${linkSuffix(d)}`,
  layerLinkDir: (name: RepoName, d: Digest): string =>
    `${V2}/repositories/${name}/${LAYERS_DIR}/${digestAlgorithm(d)}/${digestHex(d)}`,

  manifests: (name: RepoName): string => `${V2}/repositories/${name}/${MANIFESTS_DIR}`,
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

  /** Where `check --repair` moves blob data that does not match its digest (Berth's own, outside v2). */
  quarantineData: (d: Digest): string => `/berth/quarantine/${digestAlgorithm(d)}/${digestHex(d)}/data`,
} as const;

/** The last segment of a driver path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The repository name of a directory under repositoriesRoot, e.g. `/…/repositories/a/b` → `a/b`. */
export function repoNameOfDir(dir: string): string {
  return dir.slice(paths.repositoriesRoot.length + 1);
}

/** The text of a link file: the digest, no newline. */
export function linkContent(d: Digest): Buffer {
  return Buffer.from(d, 'utf8');
}

/** registry:2's `startedat` format: RFC 3339 UTC with whole seconds. */
export function formatStartedAt(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
