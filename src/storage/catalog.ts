/**
 * The repository list: every directory under `repositories/` that holds `_layers` (how registry:2
 * v2.8 recognises a repository) or `_manifests` (v3), found by walking the tree. Directories whose
 * names start with `_` belong to a repository and are not searched for more repositories.
 * (The LevelDB index of issue #5 will answer this without the walk.)
 */
import type { CallOptions, StorageDriver } from './driver/driver.js';
import { unlessNotFound } from './links.js';
import { LAYERS_DIR, MANIFESTS_DIR, baseName, paths, repoNameOfDir } from './paths.js';
import type { RepoName } from './reference.js';
import { compareStrings } from './tags.js';

/** Every repository name, sorted in code-unit order. */
export async function listRepositories(driver: StorageDriver, o?: CallOptions): Promise<string[]> {
  const found: string[] = [];
  const pending: string[] = [paths.repositoriesRoot];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const children = (await unlessNotFound(() => driver.list(dir, o))) ?? [];
    const names = children.map(baseName);
    if (dir !== paths.repositoriesRoot && (names.includes(LAYERS_DIR) || names.includes(MANIFESTS_DIR))) {
      found.push(repoNameOfDir(dir));
    }
    for (const child of children) if (!baseName(child).startsWith('_')) pending.push(child);
  }
  return found.sort(compareStrings);
}

/** Whether `name` is a repository (its directory holds `_layers` or `_manifests`). */
export async function repositoryExists(driver: StorageDriver, name: RepoName, o?: CallOptions): Promise<boolean> {
  const children = (await unlessNotFound(() => driver.list(paths.repo(name), o))) ?? [];
  const names = children.map(baseName);
  return names.includes(LAYERS_DIR) || names.includes(MANIFESTS_DIR);
}
