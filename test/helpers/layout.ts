/**
 * Paths in registry:2's storage layout (DESIGN.md §3), written out here independently of
 * src/storage/paths.ts, so that tests check Berth's tree against registry:2's and not against itself.
 *
 * `v2(root)` is the layout root `<rootdirectory>/docker/registry/v2`; every other path is relative to
 * it, with `/` separators (join it onto `v2(root)`). Digests are `sha256:<hex>`.
 */
import { join } from 'node:path';

export const v2 = (root: string): string => join(root, 'docker/registry/v2');

const hex = (digest: string): string => digest.slice('sha256:'.length);

/** `blobs/sha256/<hex[0:2]>/<hex>/data`: a blob's (or manifest's) bytes. */
export const blobData = (digest: string): string => `blobs/sha256/${hex(digest).slice(0, 2)}/${hex(digest)}/data`;

export const repoDir = (repo: string): string => `repositories/${repo}`;

/** The link that makes a blob part of `repo`. */
export const layerLink = (repo: string, digest: string): string => `${repoDir(repo)}/_layers/sha256/${hex(digest)}/link`;

/** The link that makes a manifest part of `repo`. */
export const revisionLink = (repo: string, digest: string): string =>
  `${repoDir(repo)}/_manifests/revisions/sha256/${hex(digest)}/link`;

/** The two links a tag pointing at `digest` is made of: `current` and its index entry. */
export const tagLinks = (repo: string, tag: string, digest: string): string[] => [
  `${repoDir(repo)}/_manifests/tags/${tag}/current/link`,
  `${repoDir(repo)}/_manifests/tags/${tag}/index/sha256/${hex(digest)}/link`,
];

/** The directory of `repo`'s upload sessions. */
export const uploadsDir = (repo: string): string => `${repoDir(repo)}/_uploads`;

/** One upload session's directory (`data`, `startedat`, `hashstates/…`). */
export const uploadDir = (repo: string, uuid: string): string => `${uploadsDir(repo)}/${uuid}`;
