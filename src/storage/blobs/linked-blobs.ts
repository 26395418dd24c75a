/**
 * The blobs one repository may serve: global blobs that the repository links, through
 * `_layers/<alg>/<hex>/link` (configs and layers) or `_manifests/revisions/…/link` (manifests).
 */
import { type Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import type { BlobInfo, BlobStore } from './blobs.js';
import { readLink, writeLink } from './links.js';
import { deleteIfExists } from '../driver/not-found.js';
import { paths } from '../paths.js';
import type { RepoName } from '../reference.js';

/** A repository's view of the global blobs: only what it links. */
export interface LinkedBlobStore {
  /** The blob, when this repository links it and its bytes exist; undefined otherwise. */
  stat(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  /** Links a blob that exists in the global store into this repository. */
  link(d: Digest, o?: CallOptions): Promise<void>;
  /** Removes this repository's layer link. Answers false when there was none. */
  unlink(d: Digest, o?: CallOptions): Promise<boolean>;
}

/** The linked blobs of repository `name`. */
export function createLinkedBlobStore(driver: StorageDriver, blobs: BlobStore, name: RepoName): LinkedBlobStore {
  return {
    async stat(d, o) {
      const target =
        (await readLink(driver, paths.layerLink(name, d), o)) ?? (await readLink(driver, paths.revisionLink(name, d), o));
      if (target !== d) return undefined;
      return blobs.stat(d, o);
    },
    link: (d, o) => writeLink(driver, paths.layerLink(name, d), d, o),
    unlink: (d, o) => deleteIfExists(driver, paths.layerLinkDir(name, d), o),
  };
}
