/**
 * `storage.quotas` (issue #16): a list of mappings, each with repository globs and limits:
 *
 *   quotas:
 *     - repositories: ["team/**"]   # globs as retention and immutable tags name repositories
 *       storage: 10GiB              # deduplicated bytes the matching repositories link together
 *       maxrepositories: 50         # how many repositories the globs may match
 *
 * Each entry needs at least one limit. A bad glob, size or count is a ConfigError naming its key
 * (`storage.quotas[0].storage`), and a misspelt key is named with its nearest known one.
 */
import { readSize } from './proxy.js';
import { ConfigError, type Raw, type RawMap, describe, lookup } from './raw.js';
import { globs, listOf, mappingOf, named } from './retention.js';
import type { QuotaConfig } from './schema.js';

const QUOTAS = 'storage.quotas';
const QUOTA_KEYS = ['repositories', 'storage', 'maxrepositories'];

/** `storage.quotas`: [] when absent. */
export function readQuotas(root: RawMap): QuotaConfig[] {
  const raw = lookup(root, QUOTAS);
  if (raw === undefined) return [];
  return listOf(raw, QUOTAS).map(([entry, key]) => readQuota(entry, key));
}

function readQuota(raw: Raw, key: string): QuotaConfig {
  const map = mappingOf(raw, key, QUOTA_KEYS);
  const storageBytes = named(key, 'storage', () => readSize(map, 'storage'));
  const maxrepositories = repositoryCount(map, key);
  if (storageBytes === undefined && maxrepositories === undefined) {
    throw new ConfigError(key, 'a quota needs a limit: give storage (a size like "10GiB") or maxrepositories (a count), or both');
  }
  return {
    repositories: globs(map, key),
    ...(storageBytes !== undefined && { storageBytes }),
    ...(maxrepositories !== undefined && { maxrepositories }),
  };
}

function repositoryCount(map: RawMap, key: string): number | undefined {
  const raw = lookup(map, 'maxrepositories');
  if (raw === undefined) return undefined;
  const value = raw instanceof Map || Array.isArray(raw) ? undefined : raw.value;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ConfigError(`${key}.maxrepositories`, `expected a whole number of repositories (0 or more), got ${describe(raw)}`);
  }
  return value;
}
