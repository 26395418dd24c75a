/**
 * Storage's one entry point: `createRegistry(options).repository(name)` gives the blobs, uploads,
 * manifests, tags and referrers of one repository over one storage driver. Everything here speaks
 * registry concepts and throws RegistryError; nothing here knows HTTP or configuration.
 */
import { blobUnknown, nameUnknown, unsupported } from '../errors.js';
import { type BlobInfo, type BlobStore, createBlobStore } from './blobs.js';
import { listRepositories, repositoryExists } from './catalog.js';
import type { Digest } from './digest.js';
import type { CallOptions, StorageDriver } from './driver/driver.js';
import { type ListRange, type RegistryIndex, guardIndex, sliceSorted } from './index-port.js';
import { observeDriver } from './index-observer.js';
import { type Inventory, createInventory } from './inventory.js';
import { type LinkGate, createLinkGate } from './link-gate.js';
import { type LinkedBlobStore, createLinkedBlobStore } from './linked-blobs.js';
import { createManifestCache } from './manifest-cache.js';
import { type ManifestStore, createManifestStore } from './manifests.js';
import type { RepoName } from './reference.js';
import { type PurgeReport, purgeUploads } from './purge-uploads.js';
import { type ReferrerDescriptor, listReferrers, sortByDigest } from './referrers.js';
import { createTagStore } from './tags.js';
import { createUploadSessions } from './upload-sessions.js';
import { type UploadStore, createUploadStore } from './uploads.js';

/** How to build a registry. */
export interface RegistryOptions {
  readonly driver: StorageDriver;
  /** storage.delete.enabled: without it every delete answers UNSUPPORTED. */
  readonly deleteEnabled: boolean;
  /** The gate linking shares with the collector; one is made when not given. */
  readonly linkGate?: LinkGate;
  /**
   * A derived index (index-port.ts): listings are answered from it when it vouches for them, and every
   * write under the layout is reported to it. Without one, every listing walks the tree.
   */
  readonly index?: RegistryIndex | undefined;
}

/** Everything one repository holds. */
export interface Repository {
  readonly name: RepoName;
  readonly blobs: LinkedBlobStore & {
    /** @throws RegistryError BLOB_UNKNOWN unless the repository links the blob and its bytes exist */
    require(d: Digest, o?: CallOptions): Promise<BlobInfo>;
    /** Removes the repository's link (bytes stay until garbage collection). @throws BLOB_UNKNOWN, UNSUPPORTED */
    delete(d: Digest, o?: CallOptions): Promise<void>;
    /** Links `d` from `from` when `from` has it; answers undefined when it cannot. */
    mountFrom(from: RepoName, d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
    /** Links `d` when the registry holds its bytes; answers undefined when it does not. */
    mountExisting(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  };
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;
  /** Sorted tag names (those after `o.after`, at most `o.limit`). @throws NAME_UNKNOWN when the repository does not exist */
  tags(o?: CallOptions & ListRange): Promise<readonly string[]>;
  referrers(subject: Digest, filter: { artifactType?: string | undefined }, o?: CallOptions): Promise<ReferrerDescriptor[]>;
}

/** The registry over one storage driver. */
export interface Registry {
  repository(name: RepoName): Repository;
  /** Every repository name, sorted (those after `o.after`, at most `o.limit`). */
  repositories(o?: CallOptions & ListRange): Promise<readonly string[]>;
  /** The global blob store (for tools such as garbage collection). */
  readonly blobs: BlobStore;
  /** Orders link operations against the collector's deletes (link-gate.ts). */
  readonly linkGate: LinkGate;
  /** The whole tree, for the garbage collector and the integrity check (inventory.ts). */
  readonly inventory: Inventory;
  /** Removes upload sessions started before `olderThan` in every repository. */
  purgeUploads(opts: { olderThan: Date; dryRun: boolean }, o?: CallOptions): Promise<PurgeReport>;
}

/** How many repository views a registry keeps built. */
const VIEWS_KEPT = 256;

/** A registry over `opts.driver`; the entry point of storage. */
export function createRegistry(opts: RegistryOptions): Registry {
  const index = guardIndex(opts.index);
  // Every write goes through the observed driver, so the index hears of each one (index-observer.ts).
  const driver = index.active ? observeDriver(opts.driver, index) : opts.driver;
  const blobs = createBlobStore(driver);
  const sessions = createUploadSessions();
  const cache = createManifestCache();
  const gate = opts.linkGate ?? createLinkGate();

  const makeRepository = (name: RepoName): Repository => {
    const linked = createLinkedBlobStore(driver, blobs, name);
    const tagStore = createTagStore(driver, name);
    const manifests = createManifestStore({
      driver, name, blobs, linked, tags: tagStore, cache, gate, deleteEnabled: opts.deleteEnabled,
    });
    const mountIf = (ok: boolean, d: Digest, o?: CallOptions): Promise<BlobInfo | undefined> =>
      gate.link([d], async () => {
        const info = ok ? await blobs.stat(d, o) : undefined;
        if (info) await linked.link(d, o);
        return info;
      });
    return {
      name,
      blobs: {
        ...linked,
        async require(d, o) {
          // Touch before looking: a client that finds a blob may skip its upload and name it in a
          // manifest, so either the sweep sees this read or this read sees the blob gone.
          gate.touch(d);
          const info = await linked.stat(d, o);
          if (!info) throw blobUnknown(d);
          return info;
        },
        async delete(d, o) {
          if (!opts.deleteEnabled) throw unsupported('deletion is disabled (storage.delete.enabled)');
          if (!(await linked.unlink(d, o))) throw blobUnknown(d);
        },
        mountFrom: async (from, d, o) => mountIf((await repository(from).blobs.stat(d, o)) !== undefined, d, o),
        mountExisting: (d, o) => mountIf(true, d, o),
      },
      uploads: createUploadStore({ driver, name, blobs, linked, sessions, gate }),
      manifests,
      async tags(o) {
        const indexed = await index.tags(name, rangeOf(o));
        if (indexed) return indexed;
        const all = await tagStore.all(o);
        if (all !== undefined) return sliceSorted(all, rangeOf(o));
        if (await repositoryExists(driver, name, o)) return [];
        throw nameUnknown(name);
      },
      async referrers(subject, filter, o) {
        const indexed = await index.referrers(name, subject);
        if (!indexed) return listReferrers(manifests, subject, filter, o);
        const { artifactType } = filter;
        return sortByDigest(artifactType === undefined ? indexed : indexed.filter((r) => r.artifactType === artifactType));
      },
    };
  };

  // A repository is a stateless view over the stores above: the last few used are kept rather than
  // built again for every request (first in, first out).
  const views = new Map<RepoName, Repository>();
  const repository = (name: RepoName): Repository => {
    let view = views.get(name);
    if (view === undefined) {
      view = makeRepository(name);
      views.set(name, view);
      if (views.size > VIEWS_KEPT) views.delete(views.keys().next().value as RepoName);
    }
    return view;
  };

  return {
    repository,
    repositories: async (o) => (await index.repositories(rangeOf(o))) ?? sliceSorted(await listRepositories(driver, o), rangeOf(o)),
    blobs,
    linkGate: gate,
    inventory: createInventory(driver, blobs),
    purgeUploads: (purge, o) => purgeUploads(driver, purge, (key, fn) => sessions.exclusive(key, fn), o),
  };
}

function rangeOf(o: ListRange | undefined): ListRange {
  return { after: o?.after, limit: o?.limit };
}
