/**
 * The repository list: every directory under `repositories/` that holds `_layers` (how registry:2
 * v2.8 recognises a repository) or `_manifests` (v3), found by walking the tree. Directories whose
 * names start with `_` belong to a repository and are not searched for more repositories.
 * With a listing index (src/indexdb/, through index-port.ts) the registry answers from it instead, and
 * walks only while the index cannot vouch.
 */
import type { CallOptions, StorageDriver } from './driver/driver.js';
import { unlessNotFound } from './driver/not-found.js';
import { LAYERS_DIR, MANIFESTS_DIR, baseName, paths, repoNameOfDir } from './paths.js';
import type { RepoName } from './reference.js';
import { compareStrings } from './listing.js';

/** A directory under `repositories/` and the names of its children. */
export interface RepositoryDir {
  /** The name the directory stands for (`a/b` for `…/repositories/a/b`). */
  readonly name: RepoName;
  readonly children: readonly string[];
}

/**
 * Every directory under `repositories/` that could be (or hold) a repository, in no particular order;
 * with `under` (a name's leading components, `team` or `team/apps`), only that folder and those below it.
 */
export async function* repositoryDirs(driver: StorageDriver, o?: CallOptions, under = ''): AsyncGenerator<RepositoryDir> {
  const pending: string[] = [paths.repositoriesUnder(under)];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const listed = (await unlessNotFound(() => driver.list(dir, o))) ?? [];
    const children = listed.map(baseName);
    const name = repoNameOfDir(dir);
    if (name !== undefined) yield { name, children };
    for (const child of listed) if (!baseName(child).startsWith('_')) pending.push(child);
  }
}

/** Whether a directory with these children is a repository (it holds `_layers` or `_manifests`). */
export function isRepository(children: readonly string[]): boolean {
  return children.includes(LAYERS_DIR) || children.includes(MANIFESTS_DIR);
}

/** Every repository name, sorted in code-unit order. */
export async function listRepositories(driver: StorageDriver, o?: CallOptions): Promise<RepoName[]> {
  const found: RepoName[] = [];
  for await (const dir of repositoryDirs(driver, o)) if (isRepository(dir.children)) found.push(dir.name);
  return found.sort(compareStrings);
}

/**
 * Whether `name` has no directory at all: one stat, so that a name that is no repository (every
 * un-prefixed name the mirror's router checks before a default upstream serves it) costs no listing.
 */
export async function repositoryDirMissing(driver: StorageDriver, name: RepoName, o?: CallOptions): Promise<boolean> {
  if (driver.exists !== undefined) return !(await driver.exists(paths.repo(name), o));
  return (await unlessNotFound(() => driver.stat(paths.repo(name), o))) === undefined;
}

/** Whether `name` is a repository (its directory holds `_layers` or `_manifests`). */
export async function repositoryExists(driver: StorageDriver, name: RepoName, o?: CallOptions): Promise<boolean> {
  const children = (await unlessNotFound(() => driver.list(paths.repo(name), o))) ?? [];
  return isRepository(children.map(baseName));
}
