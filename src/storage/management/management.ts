/**
 * The management face over a registry's driver and index (management-face.ts): repository delete,
 * which removes the repository's three folders (`_manifests`, `_layers`, `_uploads`) and so every link
 * it holds, leaving any nested repository (`a/b` under `a`) alone; and usage, which only the index
 * answers (a walk of every link of every repository is what the index is there to avoid).
 */
import { nameUnknown, unavailable, unsupported } from '../../errors.js';
import { repositoryExists } from '../catalog.js';
import type { Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import { deleteIfExists } from '../driver/not-found.js';
import type { GuardedIndex } from '../indexing/index-port.js';
import type { ManifestTimes } from '../indexing/manifest-times.js';
import { type ImmutableTags, immutableTagDenied } from '../manifests/immutable-tags.js';
import { listRevisions } from '../manifests/manifests.js';
import { listTags } from '../manifests/tags.js';
import { paths } from '../paths.js';
import type { RepoName } from '../reference.js';
import type { DeletedRepository, RegistryManagement, RepoUsage } from './management-face.js';
import { listTagDetails, namedTagDetails, sortedTagDetails } from './tag-details.js';

export interface ManagementOptions {
  /** The driver storage writes through (observed, so the index hears of the deletes). */
  readonly driver: StorageDriver;
  readonly index: GuardedIndex;
  readonly deleteEnabled: boolean;
  /** Where the last push and pull of a repository come from. */
  readonly times: ManifestTimes;
  /** A repository holding a tag one of these rules covers is not deleted. */
  readonly immutable: ImmutableTags;
}

export function createManagement(opts: ManagementOptions): RegistryManagement {
  const { driver } = opts;
  /** The index's figures with the repository's last push and pull (the times its revisions have recorded). */
  const withTimes = async (f: Omit<RepoUsage, 'lastPush' | 'lastPull'>): Promise<RepoUsage> => {
    const t = await opts.times.repositoryTimes(f.name);
    return { ...f, lastPush: dateOf(t.lastPush), lastPull: dateOf(t.lastPull) };
  };
  return {
    async usage(name, o) {
      if (!(await repositoryExists(driver, name, o))) throw nameUnknown(name);
      const figures = await opts.index.usage(name);
      if (figures === undefined) throw indexUnavailable();
      return withTimes(figures);
    },
    async usages(query) {
      const page = await opts.index.usages(query);
      if (page === undefined) throw indexUnavailable();
      const times = await opts.times.repositoriesTimes(page.map((f) => f.name));
      return page.map((f) => {
        const t = times.get(f.name);
        return { ...f, lastPush: dateOf(t?.lastPush), lastPull: dateOf(t?.lastPull) };
      });
    },
    async deleteRepository(name, o) {
      if (!opts.deleteEnabled) throw unsupported('deletion is disabled (storage.delete.enabled)');
      if (!(await repositoryExists(driver, name, o))) throw nameUnknown(name);
      return removeRepository(driver, opts.immutable, name, o);
    },
    tagDetails: (name, range, o) => listTagDetails(driver, opts.index, name, range, o),
    namedTagDetails: (name, tags, o) => namedTagDetails(driver, opts.index, name, tags, o),
    sortedTagDetails: (name, query, o) => sortedTagDetails(driver, opts.index, name, query, o),
  };
}

/** Reads what the repository holds, then removes its folders (manifests first: it leaves the catalog of registry:2 v3 at once). */
async function removeRepository(driver: StorageDriver, immutable: ImmutableTags, name: RepoName, o?: CallOptions): Promise<DeletedRepository> {
  const tags = (await listTags(driver, name, o)) ?? [];
  for (const tag of tags) {
    const rule = immutable.ruleFor(name, tag);
    if (rule !== undefined) throw immutableTagDenied(name, tag, rule, 'deleted with its repository');
  }
  const manifests: Digest[] = [];
  for await (const d of listRevisions(driver, name, o)) manifests.push(d);
  // freeLater: a repository of 10,000 tags is some 70,000 entries, which the filesystem would
  // otherwise remove inside the request (23-41 s measured); taken out of the tree at once instead.
  const later = { ...o, freeLater: true };
  await deleteIfExists(driver, paths.manifests(name), later);
  await deleteIfExists(driver, paths.layers(name), later);
  await deleteIfExists(driver, paths.uploads(name), later);
  return { name, manifests, tags };
}

function indexUnavailable(): Error {
  return unavailable('usage figures come from the index, which is not ready (rebuilding, or not configured); try again shortly');
}

function dateOf(ms: number | undefined): Date | undefined {
  return ms === undefined ? undefined : new Date(ms);
}
