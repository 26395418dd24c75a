/**
 * One repository's view over the registry's stores (registry.ts builds them once and shares them):
 * the blobs it links, its upload sessions, manifests, tags and referrers, each operation one call
 * that does its own access check. A blob is served only after the repository's link to it is
 * found, so no caller can reach the global store around that check.
 */
import { blobUnknown, nameUnknown, unsupported } from '../errors.js';
import type { BlobInfo, BlobStore } from './blobs/blobs.js';
import { repositoryDirMissing, repositoryExists } from './catalog.js';
import type { Digest } from './digest.js';
import type { CallOptions, StorageDriver } from './driver/driver.js';
import { type GuardedIndex, type ListRange, sliceSorted } from './indexing/index-port.js';
import type { LinkGate } from './maintenance/link-gate.js';
import type { ManifestTimes } from './indexing/manifest-times.js';
import type { ImmutableTags } from './manifests/immutable-tags.js';
import { NO_QUOTAS, type Quotas } from './quotas/quota-port.js';
import { createLinkedBlobStore } from './blobs/linked-blobs.js';
import type { ManifestCache } from './manifests/manifest-cache.js';
import { createManifestStore } from './manifests/manifests.js';
import type { RepoName } from './reference.js';
import { listReferrers, sortByDigest } from './manifests/referrers.js';
import type { BlobServing, CacheRepository, Repository, RepositoryBlobs, ServeOptions } from './registry-face.js';
import { createTagStore } from './manifests/tags.js';
import type { TagLanes } from './manifests/tag-lanes.js';
import type { UploadSessions } from './uploads/upload-sessions.js';
import { createUploadStore } from './uploads/uploads.js';

/** What every repository view shares with the registry that makes it. */
export interface RepositoryContext {
  readonly driver: StorageDriver;
  readonly blobs: BlobStore;
  readonly sessions: UploadSessions;
  readonly cache: ManifestCache;
  readonly gate: LinkGate;
  readonly index: GuardedIndex;
  readonly times: ManifestTimes;
  readonly immutable: ImmutableTags;
  readonly quotas: Quotas;
  readonly lanes: TagLanes;
  readonly deleteEnabled: boolean;
  /** Another repository of the same registry (a mount's source). */
  readonly repository: (name: RepoName) => Repository;
}

/** The view of repository `name` over `ctx`'s stores. */
export function createRepository(ctx: RepositoryContext, name: RepoName): CacheRepository {
  const { driver, blobs, gate, index } = ctx;
  const linked = createLinkedBlobStore(driver, blobs, name);
  const tagStore = createTagStore(driver, name);
  const manifests = createManifestStore({
    driver, name, blobs, linked, tags: tagStore, cache: ctx.cache, gate, times: ctx.times, immutable: ctx.immutable, quotas: ctx.quotas,
    lanes: ctx.lanes,
    deleteEnabled: ctx.deleteEnabled,
  });
  // A mount costs the blob's size in the quotas of this repository (nothing when their globs hold it
  // already). Without quotas the link enters the gate in the caller's turn, before any other await, as
  // every link does: the collector's deletion of the blob then comes wholly before or after it.
  const mountIf = async (ok: boolean, d: Digest, o?: CallOptions): Promise<BlobInfo | undefined> => {
    if (!ok) return undefined;
    const link = (): Promise<BlobInfo | undefined> =>
      gate.link([d], async () => {
        const info = await blobs.stat(d, o);
        if (info) await linked.link(d, o);
        return info;
      });
    if (ctx.quotas === NO_QUOTAS) return link();
    const size = (await blobs.stat(d, o))?.size;
    return size === undefined ? undefined : ctx.quotas.admitLink(name, d, size, link, o);
  };
  const repoBlobs: RepositoryBlobs = {
    stat: (d, o) => linked.stat(d, o),
    serve: (d, o) => serveBlob({ blobs, gate, stat: linked.stat }, d, o),
    async delete(d, o) {
      if (!ctx.deleteEnabled) throw unsupported('deletion is disabled (storage.delete.enabled)');
      if (!(await linked.unlink(d, o))) throw blobUnknown(d);
    },
    mountFrom: async (from, d, o) => mountIf((await ctx.repository(from).blobs.stat(d, o)) !== undefined, d, o),
    mountExisting: (d, o) => mountIf(true, d, o),
  };
  /** The repository's tags in `range` (the index's when it answers, else storage's), or undefined when it does not exist. */
  const listTags = async (range: ListRange, o?: CallOptions): Promise<readonly string[] | undefined> => {
    const indexed = await index.tags(name, range);
    if (indexed) return indexed;
    if (await repositoryDirMissing(driver, name, o)) return undefined;
    const all = await tagStore.all(o);
    if (all !== undefined) return sliceSorted(all, range);
    return (await repositoryExists(driver, name, o)) ? [] : undefined;
  };
  return {
    name,
    blobs: repoBlobs,
    uploads: createUploadStore({ driver, name, blobs, linked, sessions: ctx.sessions, gate, quotas: ctx.quotas }),
    manifests,
    async tags(o) {
      const listed = await listTags({ after: o?.after, limit: o?.limit }, o);
      if (listed === undefined) throw nameUnknown(name);
      return listed;
    },
    // tags()'s steps, answered as a yes or no without building NAME_UNKNOWN for a name that is not one.
    exists: async (o) => (await listTags({ after: undefined, limit: 1 }, o)) !== undefined,
    async referrers(subject, filter, o) {
      const indexed = await index.referrers(name, subject);
      if (!indexed) return listReferrers(manifests, subject, filter, o);
      const { artifactType } = filter;
      return sortByDigest(artifactType === undefined ? indexed : indexed.filter((r) => r.artifactType === artifactType));
    },
  };
}

/**
 * A blob read through a repository, in the order the answer needs: the access check (the repository
 * links the blob and its bytes exist), a redirect when the driver offers one, the range against the
 * size, and only then the stream (opened before anything is answered, so a blob that vanished since
 * the check is still BLOB_UNKNOWN).
 */
async function serveBlob(
  deps: { blobs: BlobStore; gate: LinkGate; stat: (d: Digest, o?: CallOptions) => Promise<BlobInfo | undefined> },
  d: Digest,
  o: ServeOptions,
): Promise<BlobServing> {
  const call: CallOptions = o.signal ? { signal: o.signal } : {};
  // Touch before looking: a client that finds a blob may skip its upload and name it in a
  // manifest, so either the sweep sees this read or this read sees the blob gone.
  deps.gate.touch(d);
  const info = await deps.stat(d, call);
  if (!info) throw blobUnknown(d);
  const redirect = await deps.blobs.redirectUrl(d, o.method);
  if (redirect !== undefined) return { kind: 'redirect', info, redirect };
  const range = o.range?.(info.size);
  if (range === 'unsatisfiable') return { kind: 'unsatisfiable', info };
  const stream = o.method === 'HEAD' ? undefined : await deps.blobs.open(d, range, call);
  return { kind: 'stream', info, range, stream };
}
