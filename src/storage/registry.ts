/**
 * Storage's one entry point: `createRegistry(options)` gives a registry over one storage driver, with
 * two faces (registry-face.ts): `Registry`, whose `repository(name)` holds the blobs, uploads,
 * manifests, tags and referrers HTTP serves, and `Maintenance` (the whole tree, the global blobs, the
 * link gate, upload purging) for the collector, the integrity check and the command line. Everything
 * here speaks registry concepts and throws RegistryError; nothing here knows HTTP or configuration.
 *
 * The HTTP layer imports storage through this file only (and digest.ts and reference.ts, the branded
 * types it parses at its boundary): every type it needs is re-exported below.
 */
import { createBlobStore } from './blobs/blobs.js';
import { listRepositories } from './catalog.js';
import type { StorageDriver } from './driver/driver.js';
import { type ListRange, type RegistryIndex, guardIndex, sliceSorted } from './indexing/index-port.js';
import { observeDriver } from './indexing/index-observer.js';
import { type TimesStore, createManifestTimes } from './indexing/manifest-times.js';
import { type ImmutableTagRuleSpec, NO_IMMUTABLE_TAGS, createImmutableTags } from './manifests/immutable-tags.js';
import { createInventory } from './maintenance/inventory.js';
import { type LinkGate, createLinkGate } from './maintenance/link-gate.js';
import { type TagLanes, createTagLanes } from './manifests/tag-lanes.js';
import { createManifestCache } from './manifests/manifest-cache.js';
import { createManagement } from './management/management.js';
import { purgeUploads } from './uploads/purge-uploads.js';
import { type QuotaReading, type QuotaSpec, type QuotaWarning, createQuotas } from './quotas/quotas.js';
import type { SharedQuotaLocks } from './quotas/quota-port.js';
import type { RepoName } from './reference.js';
import type { CacheRepository, LocalRegistry, Repository } from './registry-face.js';
import { createRepository } from './repository.js';
import { createUploadSessions } from './uploads/upload-sessions.js';

export type {
  BlobServing, CacheManifests, CacheRegistry, CacheRepository, LocalRegistry, Maintenance, Registry, Repository, RepositoryBlobs,
  RepositoryManifests, ServeOptions,
} from './registry-face.js';
export type { BlobInfo, ByteRange } from './blobs/blobs.js';
export { type SendableReader, isSendable } from './driver/driver.js';
export { MAX_MANIFEST_BYTES, MEDIA_TYPES } from './manifests/manifest-format.js';
export type { ListRange } from './indexing/index-port.js';
export { type ImmutableTagRuleSpec, type ImmutableTags, createImmutableTags } from './manifests/immutable-tags.js';
export type { ManifestTimes, RepositoryTimes, RevisionTimes, TimesStore } from './indexing/manifest-times.js';
export type { DeletedRepository, RegistryManagement, RepoUsage, SortedTagPage, SortedTagQuery, TagDetail, UsageQuery } from './management/management-face.js';
export type { PurgeReport } from './uploads/purge-uploads.js';
export { QUOTA_WARNING_RATIO, type QuotaReading, type QuotaSpec, type QuotaWarning, formatBytes } from './quotas/quotas.js';
export type { SharedQuotaLocks } from './quotas/quota-port.js';
export type { ReferrerDescriptor } from './manifests/referrers.js';
export type { PutManifestResult, StoredManifest } from './manifests/manifests.js';
export type { UploadStatus, UploadStore, AppendOptions } from './uploads/uploads.js';
export type { BodyPacer } from './uploads/body-feed.js';

/** How to build a registry. */
export interface RegistryOptions {
  readonly driver: StorageDriver;
  /** storage.delete.enabled: without it every delete answers UNSUPPORTED. */
  readonly deleteEnabled: boolean;
  /** The gate linking shares with the collector; one is made when not given. */
  readonly linkGate?: LinkGate;
  /** The order of each tag's writes (tag-lanes.ts), shared by every registry over this storage; one is made when not given. */
  readonly tagLanes?: TagLanes;
  /**
   * A derived index (index-port.ts): listings are answered from it when it vouches for them, and every
   * write under the layout is reported to it. Without one, every listing walks the tree.
   */
  readonly index?: RegistryIndex | undefined;
  /**
   * Where push and pull times are kept (manifest-times.ts; the index is one). Without one, push times
   * are the revision links' modification times and pull times live in memory.
   */
  readonly times?: TimesStore | undefined;
  /** `storage.immutabletags`: tags that, once set, cannot be moved or deleted (immutable-tags.ts). */
  readonly immutableTags?: readonly ImmutableTagRuleSpec[] | undefined;
  /** `storage.quotas`: limits per repository glob, checked where pushes write (quotas/quotas.ts). */
  readonly quotas?: readonly QuotaSpec[] | undefined;
  /** Told each quota figure a check computes (the usage gauges). */
  readonly observeQuota?: ((reading: QuotaReading) => void) | undefined;
  /** Told of each link that takes a quota across 85% of a limit; the push waits for it (the `quota` event). */
  readonly warnQuota?: ((warning: QuotaWarning) => Promise<void>) | undefined;
  /** Each quota's lock shared with the other replicas (Redis), held across a check and its link. */
  readonly quotaLocks?: SharedQuotaLocks | undefined;
  /**
   * Whether other processes may take this storage's upload requests (replicas, S3): chunked uploads
   * then hash with a resumable SHA-256 and save its state after each PATCH for them. Default true; a
   * process alone on its storage passes false and hashes PATCHes at Node's native speed.
   */
  readonly sharedUploads?: boolean;
}

/** How many repository views a registry keeps built. */
const VIEWS_KEPT = 256;

/** A registry over `opts.driver`; the entry point of storage. */
export function createRegistry(opts: RegistryOptions): LocalRegistry {
  const index = guardIndex(opts.index);
  // Every write goes through the observed driver, so the index hears of each one (index-observer.ts).
  const driver = index.active ? observeDriver(opts.driver, index) : opts.driver;
  const blobs = createBlobStore(driver);
  const sessions = createUploadSessions({ saveHashStates: opts.sharedUploads ?? true });
  const gate = opts.linkGate ?? createLinkGate();
  const lanes = opts.tagLanes ?? createTagLanes();
  const times = createManifestTimes(opts.driver, opts.times);
  const immutable = opts.immutableTags?.length ? createImmutableTags(opts.immutableTags) : NO_IMMUTABLE_TAGS;
  const quotas = createQuotas(opts.quotas ?? [], { driver, blobs, index, observe: opts.observeQuota, warn: opts.warnQuota, locks: opts.quotaLocks });
  const context = {
    driver, blobs, sessions, cache: createManifestCache(), gate, index, times, deleteEnabled: opts.deleteEnabled, immutable, quotas, lanes,
    repository: (name: RepoName): Repository => repository(name),
  };

  // A repository is a stateless view over the stores above: the last few used are kept rather than
  // built again for every request (first in, first out).
  const views = new Map<RepoName, CacheRepository>();
  const repository = (name: RepoName): CacheRepository => {
    let view = views.get(name);
    if (view === undefined) {
      view = createRepository(context, name);
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
    tagLanes: lanes,
    times,
    inventory: createInventory(driver, blobs),
    management: createManagement({ driver, index, deleteEnabled: opts.deleteEnabled, times, immutable }),
    purgeUploads: (purge, o) => purgeUploads(driver, purge, (key, fn) => sessions.exclusive(key, fn), o),
  };
}

function rangeOf(o: ListRange | undefined): ListRange {
  return { after: o?.after, limit: o?.limit };
}
