/**
 * The faces of storage, as types only: what the HTTP layer may do (`Registry`: repositories, each
 * operation one call that checks access itself) and what maintenance may do (`Maintenance`: the whole
 * tree, the global blobs, the link gate, upload purging), which HTTP never sees.
 *
 * `Registry` is a plain interface so that another object can implement it by wrapping one (a
 * pull-through cache answering from an upstream when the local registry has nothing), as
 * distribution's proxy package wraps its registry. registry.ts re-exports everything here.
 */
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobStore, ByteRange } from './blobs/blobs.js';
import type { Digest } from './digest.js';
import type { CallOptions } from './driver/driver.js';
import type { ListRange } from './indexing/index-port.js';
import type { Inventory } from './maintenance/inventory.js';
import type { LinkGate } from './maintenance/link-gate.js';
import type { TagLanes } from './manifests/tag-lanes.js';
import type { ManifestTimes } from './indexing/manifest-times.js';
import type { ManifestStore, PutManifestResult } from './manifests/manifests.js';
import type { PurgeReport } from './uploads/purge-uploads.js';
import type { Reference, RepoName } from './reference.js';
import type { ReferrerDescriptor } from './manifests/referrers.js';
import type { RegistryManagement } from './management/management-face.js';
import type { CacheUploads, UploadStore } from './uploads/uploads.js';

/** How a blob is to be served. */
export interface ServeOptions extends CallOptions {
  /** HEAD answers the blob's facts and no stream. */
  readonly method: 'GET' | 'HEAD';
  /**
   * The part the client asked for, resolved against the blob's size once that is known (the
   * HTTP layer parses the `Range` header): a range, `'unsatisfiable'`, or undefined for all of it.
   */
  readonly range?: (size: number) => ByteRange | 'unsatisfiable' | undefined;
}

/**
 * What serving a blob answers, once the repository was found to link it (else BLOB_UNKNOWN):
 * a URL to send the client to; a range past the end; or the bytes (`range` undefined: all of them),
 * with `stream` undefined for HEAD. A stream may be able to send itself (`isSendable`).
 */
export type BlobServing =
  | { readonly kind: 'redirect'; readonly info: BlobInfo; readonly redirect: string }
  | { readonly kind: 'unsatisfiable'; readonly info: BlobInfo }
  | { readonly kind: 'stream'; readonly info: BlobInfo; readonly range: ByteRange | undefined; readonly stream: Readable | undefined };

/** A repository's blobs: only those it links. */
export interface RepositoryBlobs {
  /** The blob, when this repository links it and its bytes exist; undefined otherwise. */
  stat(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  /** Checks the link, then answers a redirect, a 416 or the (ranged) stream. @throws RegistryError BLOB_UNKNOWN */
  serve(d: Digest, o: ServeOptions): Promise<BlobServing>;
  /** Removes the repository's link (bytes stay until garbage collection). @throws BLOB_UNKNOWN, UNSUPPORTED */
  delete(d: Digest, o?: CallOptions): Promise<void>;
  /** Links `d` from `from` when `from` has it; answers undefined when it cannot. */
  mountFrom(from: RepoName, d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  /** Links `d` when the registry holds its bytes; answers undefined when it does not. */
  mountExisting(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
}

/**
 * A repository's manifests, as clients reach them: a put always checks that what the manifest names is
 * present (its options carry no way around that).
 */
export interface RepositoryManifests extends Pick<ManifestStore, 'get' | 'delete' | 'deleteTagIf'> {
  put(ref: Reference, content: Buffer, contentType: string | undefined, o?: CallOptions): Promise<PutManifestResult>;
}

/** A repository's manifests as a pull-through cache writes them: a manifest may go in before what it names. */
export type CacheManifests = Pick<ManifestStore, 'get' | 'put' | 'delete' | 'deleteTagIf'>;

/** A repository as a pull-through cache sees the local one (CacheRegistry). */
export interface CacheRepository extends Repository {
  readonly manifests: CacheManifests;
  /** Uploads, and storing a blob the cache verifies itself as it fetches it. */
  readonly uploads: CacheUploads;
  /**
   * Whether this repository exists: true exactly when `tags()` would answer rather than throw
   * NAME_UNKNOWN, but answered without building that error (or the driver's) for a name that is not
   * one. The mirror's router asks it of every un-prefixed read under a `default` upstream (issue #13).
   */
  exists(o?: CallOptions): Promise<boolean>;
}

/** Everything one repository holds, as HTTP reaches it. */
export interface Repository {
  readonly name: RepoName;
  readonly blobs: RepositoryBlobs;
  readonly uploads: UploadStore;
  readonly manifests: RepositoryManifests;
  /** Sorted tag names (those after `o.after`, at most `o.limit`). @throws NAME_UNKNOWN when the repository does not exist */
  tags(o?: CallOptions & ListRange): Promise<readonly string[]>;
  /** Manifests whose subject is `subject`, sorted by digest, optionally of one artifact type only. */
  referrers(subject: Digest, filter: { artifactType?: string | undefined }, o?: CallOptions): Promise<ReferrerDescriptor[]>;
}

/** The registry as the HTTP layer sees it: repositories only. */
export interface Registry {
  /** The view of one repository (it need not exist: its calls then answer NAME_UNKNOWN or BLOB_UNKNOWN…). */
  repository(name: RepoName): Repository;
  /** Every repository name, sorted (those after `o.after`, at most `o.limit`). */
  repositories(o?: CallOptions & ListRange): Promise<readonly string[]>;
}

/**
 * The local registry as a pull-through cache wraps it (src/mirror/): the HTTP face, whose manifests can
 * also be stored before the blobs they name. HTTP itself is never handed this face.
 */
export interface CacheRegistry extends Registry {
  repository(name: RepoName): CacheRepository;
}

/** What the garbage collector, the integrity check and upload purging use; never HTTP. */
export interface Maintenance {
  /** The global blob store. */
  readonly blobs: BlobStore;
  /** Orders link operations against the collector's deletes (link-gate.ts). */
  readonly linkGate: LinkGate;
  /** Orders each tag's writes; a registry over the same storage is given it (tag-lanes.ts). */
  readonly tagLanes: TagLanes;
  /** Push and pull times per manifest revision (manifest-times.ts). */
  readonly times: ManifestTimes;
  /** The whole tree, for the garbage collector and the integrity check (inventory.ts). */
  readonly inventory: Inventory;
  /** Removes upload sessions started before `olderThan` in every repository. */
  purgeUploads(opts: { olderThan: Date; dryRun: boolean }, o?: CallOptions): Promise<PurgeReport>;
}

/** A registry over local storage: all its faces in one object (HTTP is handed it as a `Registry`). */
export interface LocalRegistry extends CacheRegistry, Maintenance {
  /** Repository delete and usage (the management API and `berth usage`). */
  readonly management: RegistryManagement;
}
