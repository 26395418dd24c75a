/**
 * `storage.maintenance.retention` and `storage.immutabletags` (issue #16). Lists of mappings, so the
 * key check of parse.ts stops at them; each entry's keys are checked here, with the same "did you
 * mean" for a misspelt one. Regexes, globs and durations are compiled at load, so a bad one is a
 * ConfigError naming its key (`storage.maintenance.retention.policies[0].keeptags[1].patterns[0]`).
 */
import { compileGlob } from '../storage/repo-glob.js';
import { ConfigError, type Raw, type RawMap, describe, lookup, readBool, readDuration, stringList } from './raw.js';
import type { ImmutableTagRule, KeepTagsRule, RetentionConfig, RetentionPolicyConfig } from './schema.js';
import { nearest } from './suggest.js';

const RETENTION = 'storage.maintenance.retention';
const POLICY_KEYS = ['repositories', 'deleteuntagged', 'deletereferrers', 'keeptags'];
const RULE_KEYS = ['patterns', 'mostrecentlypushed', 'mostrecentlypulled', 'pushedwithin', 'pulledwithin'];
const IMMUTABLE_KEYS = ['repositories', 'patterns'];

/** `{ retention }` when policies are configured, else nothing. `delayMs` defaults to the gc grace period. */
export function readRetention(root: RawMap, gcGraceMs: number): { retention?: RetentionConfig } {
  const policiesRaw = lookup(root, `${RETENTION}.policies`);
  const policies = policiesRaw === undefined ? [] : listOf(policiesRaw, `${RETENTION}.policies`).map(([raw, key]) => readPolicy(raw, key));
  const dryrun = readBool(root, `${RETENTION}.dryrun`, false);
  const delayMs = readDuration(root, `${RETENTION}.delay`, gcGraceMs, { positive: false });
  return policies.length === 0 ? {} : { retention: { dryrun, delayMs, policies } };
}

/** `storage.immutabletags`: [] when absent. */
export function readImmutableTags(root: RawMap): ImmutableTagRule[] {
  const raw = lookup(root, 'storage.immutabletags');
  if (raw === undefined) return [];
  return listOf(raw, 'storage.immutabletags').map(([entry, key]) => {
    const map = mappingOf(entry, key, IMMUTABLE_KEYS);
    const patterns = regexes(map, key, 'patterns');
    if (patterns.length === 0) throw new ConfigError(`${key}.patterns`, 'missing; give the tag patterns (regular expressions) the rule covers');
    return { repositories: globs(map, key), patterns };
  });
}

function readPolicy(raw: Raw, key: string): RetentionPolicyConfig {
  const map = mappingOf(raw, key, POLICY_KEYS);
  const keepRaw = lookup(map, 'keeptags');
  return {
    repositories: globs(map, key),
    deleteuntagged: readBool(map, 'deleteuntagged', true),
    deletereferrers: readBool(map, 'deletereferrers', false),
    keeptags: keepRaw === undefined ? [] : listOf(keepRaw, `${key}.keeptags`).map(([r, k]) => readRule(r, k)),
  };
}

function readRule(raw: Raw, key: string): KeepTagsRule {
  const map = mappingOf(raw, key, RULE_KEYS);
  const within = (name: string): number | undefined =>
    lookup(map, name) === undefined ? undefined : readDuration(map, name, 0, { positive: true });
  const pushed = count(map, key, 'mostrecentlypushed');
  const pulled = count(map, key, 'mostrecentlypulled');
  const pushedWithin = named(key, 'pushedwithin', () => within('pushedwithin'));
  const pulledWithin = named(key, 'pulledwithin', () => within('pulledwithin'));
  return {
    patterns: regexes(map, key, 'patterns'),
    ...(pushed !== undefined && { mostrecentlypushed: pushed }),
    ...(pulled !== undefined && { mostrecentlypulled: pulled }),
    ...(pushedWithin !== undefined && { pushedwithinMs: pushedWithin }),
    ...(pulledWithin !== undefined && { pulledwithinMs: pulledWithin }),
  };
}

/** Reads within an entry, re-raising an error about key `name` under its full key. */
export function named<T>(key: string, name: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError && err.key === name) throw new ConfigError(`${key}.${name}`, err.message.replace(/^config: [^:]+: /, ''));
    throw err;
  }
}

function count(map: RawMap, key: string, name: string): number | undefined {
  const raw = lookup(map, name);
  if (raw === undefined) return undefined;
  const value = raw instanceof Map || Array.isArray(raw) ? undefined : raw.value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new ConfigError(`${key}.${name}`, `expected a whole number of tags (0 or more), got ${describe(raw)}`);
  }
  return value;
}

export function globs(map: RawMap, key: string): string[] {
  const raw = lookup(map, 'repositories');
  const list = raw === undefined ? ['**'] : stringList(raw, `${key}.repositories`);
  list.forEach((g, i) => {
    try {
      compileGlob(g);
    } catch (err) {
      throw new ConfigError(`${key}.repositories[${i}]`, err instanceof Error ? err.message : String(err));
    }
  });
  return list;
}

function regexes(map: RawMap, key: string, name: string): string[] {
  const raw = lookup(map, name);
  const list = raw === undefined ? [] : stringList(raw, `${key}.${name}`);
  list.forEach((p, i) => {
    try {
      new RegExp(p);
    } catch (err) {
      throw new ConfigError(`${key}.${name}[${i}]`, `not a regular expression: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  return list;
}

/** `raw` as a list, each entry with its key (`<key>[i]`). */
export function listOf(raw: Raw, key: string): [Raw, string][] {
  if (!Array.isArray(raw)) throw new ConfigError(key, `expected a list, got ${describe(raw)}`);
  return raw.map((entry, i) => [entry, `${key}[${i}]`]);
}

/** `raw` as a mapping holding only `known` keys (a misspelt one is named with its nearest). */
export function mappingOf(raw: Raw, key: string, known: readonly string[]): RawMap {
  if (!(raw instanceof Map)) throw new ConfigError(key, `expected a mapping, got ${describe(raw)}`);
  for (const name of raw.keys()) {
    if (known.includes(name)) continue;
    const near = nearest(name, known);
    throw new ConfigError(`${key}.${name}`, `unknown key${near === undefined ? '' : ` (did you mean ${key}.${near}?)`}`);
  }
  return raw;
}
