/**
 * A quota's figures read from storage itself, for when no index answers (none configured, rebuilding,
 * or one that does not implement `scopeUsage` / `scopeLinks`): the repositories under the scope's
 * literal prefix, the blobs each links (`_layers` and `_manifests/revisions` folders) and each distinct
 * blob's size. Correct and uncached, so slower than an index: it lists every repository of the scope
 * and stats every distinct blob they link, on every call.
 */
import type { BlobStore } from '../blobs/blobs.js';
import { readLink } from '../blobs/links.js';
import { isRepository, repositoryDirs } from '../catalog.js';
import { DIGEST_ALGORITHMS, type Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import { unlessNotFound } from '../driver/not-found.js';
import type { RepoScope, ScopeUsage } from '../indexing/index-port.js';
import { listRevisions } from '../manifests/manifests.js';
import { layerDigestOf, paths } from '../paths.js';
import type { RepoName } from '../reference.js';

/** How many repositories are read, and how many blobs statted, at once. */
const CONCURRENCY = 16;

/** What the repositories of a scope take together, with the blobs they link. */
export interface ScopeWalk extends ScopeUsage {
  readonly digests: ReadonlySet<Digest>;
}

/** What the repositories of `scope` take together, read from storage in one pass. */
export async function walkScopeUsage(driver: StorageDriver, blobs: BlobStore, scope: RepoScope, o?: CallOptions): Promise<ScopeWalk> {
  const names: RepoName[] = [];
  for await (const name of scopeRepositories(driver, scope, o)) names.push(name);
  const digests = new Set<Digest>();
  await inBatches(names, async (name) => {
    for await (const d of linkedDigests(driver, name, o)) digests.add(d);
  });
  const sizes: number[] = [];
  await inBatches([...digests], async (d) => {
    const size = (await blobs.stat(d, o))?.size ?? 0;
    sizes.push(size);
  });
  return { bytes: sizes.reduce((sum, n) => sum + n, 0), repositories: names.length, digests };
}

/** Whether some repository of `scope` links `d` (a layer link or a manifest revision), read from storage. */
export async function walkScopeLinks(driver: StorageDriver, scope: RepoScope, d: Digest, o?: CallOptions): Promise<boolean> {
  for await (const name of scopeRepositories(driver, scope, o)) if (await repositoryLinks(driver, name, d, o)) return true;
  return false;
}

/** Whether repository `name` links `d` (a layer link or a manifest revision). */
export async function repositoryLinks(driver: StorageDriver, name: RepoName, d: Digest, o?: CallOptions): Promise<boolean> {
  return (await readLink(driver, paths.layerLink(name, d), o)) === d || (await readLink(driver, paths.revisionLink(name, d), o)) === d;
}

/** Runs `fn` on every item, CONCURRENCY at a time. */
async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let at = 0; at < items.length; at += CONCURRENCY) await Promise.all(items.slice(at, at + CONCURRENCY).map(fn));
}

/** The repositories `scope` accepts, found below the folder its prefix names. */
async function* scopeRepositories(driver: StorageDriver, scope: RepoScope, o?: CallOptions): AsyncGenerator<RepoName> {
  for await (const dir of repositoryDirs(driver, o, folderOf(scope.prefix))) {
    if (isRepository(dir.children) && scope.accepts(dir.name)) yield dir.name;
  }
}

/** Every blob repository `name` links: its layer links' and manifest revisions' digests. */
async function* linkedDigests(driver: StorageDriver, name: RepoName, o?: CallOptions): AsyncGenerator<Digest> {
  for (const alg of DIGEST_ALGORITHMS) {
    const dirs = (await unlessNotFound(() => driver.list(paths.layersOf(name, alg), o))) ?? [];
    for (const dir of dirs) {
      const d = layerDigestOf(dir);
      if (d !== undefined) yield d;
    }
  }
  yield* listRevisions(driver, name, o);
}

/** A repository name component (DESIGN.md §4). */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** The folder of whole name components a prefix starts with (`team/app-` → `team`); '' for the root. */
export function folderOf(prefix: string): string {
  const cut = prefix.lastIndexOf('/');
  const folder = cut < 0 ? '' : prefix.slice(0, cut);
  return folder.split('/').every((c) => COMPONENT.test(c)) ? folder : '';
}
