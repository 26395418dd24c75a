/**
 * What one thread of a survey (survey.ts) does with a piece of its work, over its own blocking
 * filesystem driver and inventory: the worker threads (survey-worker.ts) and the main thread alike.
 * It reads through the inventory (`createInventory`) what the mark and the sweep would read: each
 * repository's contents, the references of its revisions and, when asked, its tags; or the blob
 * folders in some `<hex2>` folders, as Inventory.blobDigests lists them.
 */
import { createBlobStore } from '../blobs/blobs.js';
import { isRepository, repositoryDirs } from '../catalog.js';
import type { Digest } from '../digest.js';
import { isDriverError } from '../driver/driver.js';
import { createDriver } from '../driver/factory.js';
import { unlessNotFound } from '../driver/not-found.js';
import { baseName, parsePath } from '../paths.js';
import type { RepoName, Tag } from '../reference.js';
import { type Inventory, type Leftover, type ManifestReferences, type RepositoryContents, type TagEntry, createInventory } from './inventory.js';

/** What the mark reads of one repository. */
export interface RepositorySurvey {
  readonly name: RepoName;
  /** Inventory.contents without times (the offline collector's grace period is 0). */
  readonly contents: RepositoryContents;
  /** Inventory.references of each of its revisions. */
  readonly references: readonly (readonly [Digest, ManifestReferences])[];
  /** Inventory.tags, when the survey was asked for tags (`deleteUntagged`). */
  readonly tags?: readonly TagEntry[];
  /** The tags Inventory.unfinishedTags answers, when the survey looks for crash leftovers. */
  readonly unfinished?: readonly Tag[];
}

/** A piece of the survey's work: the repositories under some top folders, or the blobs in some `<hex2>` folders. */
export type SurveyWork =
  | { readonly kind: 'repositories'; readonly dirs: readonly string[]; readonly tags: boolean; readonly leftovers: boolean }
  | { readonly kind: 'blobs'; readonly folders: readonly string[]; readonly leftovers: boolean };

/**
 * What a piece of work found; with `leftovers`, the driver's temporary files in its folders too
 * (StorageDriver.leftovers of each folder), in the order that walk answers them.
 */
export type SurveyFound = ({ readonly repositories: readonly RepositorySurvey[] } | { readonly digests: readonly Digest[] }) & {
  readonly leftovers?: readonly Leftover[];
};

/**
 * The index of the next piece of work for the calling thread, from `next` (an Int32 at index 0, shared
 * by every thread of a survey and counted up by each take), or undefined when all `count` are taken.
 */
export function takePiece(next: SharedArrayBuffer, count: number): number | undefined {
  const id = Atomics.add(new Int32Array(next), 0, 1);
  return id < count ? id : undefined;
}

/** A reader of pieces of work over the filesystem tree at `root` (absolute). */
export function surveyReader(root: string): (work: SurveyWork) => Promise<SurveyFound> {
  const driver = createDriver({ kind: 'filesystem', root, blocking: true });
  const inventory = createInventory(driver, createBlobStore(driver));

  const blobFolders = async (folders: readonly string[]): Promise<Digest[]> => {
    const digests: Digest[] = [];
    for (const prefix of folders) {
      for (const dir of (await unlessNotFound(() => driver.list(prefix))) ?? []) {
        const at = parsePath(dir);
        if (at.kind === 'blob' && at.digest !== undefined && at.rest.length === 0) digests.push(at.digest);
      }
    }
    return digests;
  };

  const leftoversIn = async (folders: readonly string[]): Promise<Leftover[]> => {
    const found: Leftover[] = [];
    for (const folder of folders) {
      try {
        for await (const f of driver.leftovers?.(folder) ?? []) found.push({ path: f.path, modTime: f.modTime.getTime() });
      } catch (err) {
        if (!isDriverError(err, 'PATH_NOT_FOUND')) throw err; // a file, not a folder: nothing under it
      }
    }
    return found;
  };

  return async (work) => {
    const leftovers = work.leftovers ? { leftovers: await leftoversIn(work.kind === 'blobs' ? work.folders : work.dirs) } : {};
    if (work.kind === 'blobs') return { digests: await blobFolders(work.folders), ...leftovers };
    const repositories: RepositorySurvey[] = [];
    for (const dir of work.dirs) {
      // Each top folder walked as the repository listing walks it (catalog.ts), nested repositories included.
      for await (const found of repositoryDirs(driver, {}, baseName(dir))) {
        if (isRepository(found.children)) repositories.push(await surveyRepository(inventory, found.name, work));
      }
    }
    return { repositories, ...leftovers };
  };
}

/** What the mark reads of `name`. */
async function surveyRepository(inv: Inventory, name: RepoName, work: { readonly tags: boolean; readonly leftovers: boolean }): Promise<RepositorySurvey> {
  const contents = await inv.contents(name);
  const references: [Digest, ManifestReferences][] = [];
  const seen = new Set<Digest>();
  for (const r of contents.revisions) {
    if (seen.has(r.digest)) continue;
    seen.add(r.digest);
    references.push([r.digest, await inv.references(r.digest)]);
  }
  const tags: TagEntry[] = [];
  if (work.tags) for await (const t of inv.tags(name)) tags.push(t);
  const unfinished: Tag[] = [];
  if (work.leftovers) for await (const t of inv.unfinishedTags(name)) unfinished.push(t.tag);
  return { name, contents, references, ...(work.tags && { tags }), ...(work.leftovers && { unfinished }) };
}
