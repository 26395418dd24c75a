/**
 * The mirror's pull times outside storage's own push and pull times (ManifestTimes, where the mirror
 * records every manifest GET and eviction reads them), on filesystem storage:
 *
 * - registry:2's `<rootdirectory>/scheduler-state.json` in registry:2's `proxy.remoteurl` form, read at
 *   start into the times and written back from them, compatibly, so a registry:2 mirror's root rsyncs
 *   in and out: a map of `{"Key": "<name>@<digest>", "ExpiryData": <RFC 3339 time>, "EntryType": 0
 *   (blob) | 1 (manifest)}`. A manifest entry's pull time is its expiry less the ttl; blob entries,
 *   which Berth does not schedule, are kept as they were read.
 * - `<rootdirectory>/berth/mirror-pulls.json` (`{"<name>@<digest>": <ms since epoch>}`), where earlier
 *   versions of Berth kept them: read once into the times, then removed.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { parseDigest } from '../storage/digest.js';
import { type RepoName, parseRepoName } from '../storage/reference.js';
import type { ManifestTimes, Registry } from '../storage/registry.js';

/** What the pull times are kept in, and read from. */
export interface TimesSource {
  readonly registry: Pick<Registry, 'repositories' | 'repository'>;
  readonly times: Pick<ManifestTimes, 'recorded' | 'set'>;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch {
    return undefined; // absent or unreadable: start afresh
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

function repoNameOf(text: string): RepoName | undefined {
  try {
    return parseRepoName(text);
  } catch {
    return undefined;
  }
}

/** Records `pulledAt` as the pull time of `key` (`<name>@<digest>`) unless a later one is recorded. */
async function importPull(source: TimesSource, key: string, pulledAt: number): Promise<void> {
  const at = key.lastIndexOf('@');
  const digest = parseDigest(key.slice(at + 1));
  const repo = repoNameOf(key.slice(0, Math.max(0, at)));
  if (repo === undefined || digest === undefined || !Number.isFinite(pulledAt)) return; // not a revision: nothing to import
  const recorded = (await source.times.recorded(repo)).get(digest);
  if ((recorded?.pulledAt ?? Number.NEGATIVE_INFINITY) >= pulledAt) return;
  await source.times.set(repo, digest, { ...recorded, pulledAt });
}

/** Imports and removes Berth's former `berth/mirror-pulls.json` (absent: nothing to do). */
export async function importFormerPullTimes(path: string, source: TimesSource): Promise<void> {
  const doc = await readJson(path);
  if (typeof doc !== 'object' || doc === null) return;
  for (const [key, at] of Object.entries(doc)) if (typeof at === 'number') await importPull(source, key, at);
  await rm(path, { force: true });
}

interface SchedulerEntry {
  readonly Key: string;
  readonly ExpiryData: string;
  readonly EntryType: number;
}

const MANIFEST_ENTRY = 1;

/** registry:2's scheduler-state.json at `path`, kept in step with the times. */
export interface SchedulerState {
  /** Writes the file from the times: every cached manifest, expiring `ttl` after its last pull (or its caching). */
  save(): Promise<void>;
}

/** Reads registry:2's scheduler-state.json at `path` into the times (`ttlMs` turns expiry times into pull times and back). */
export async function loadSchedulerState(path: string, ttlMs: number, source: TimesSource): Promise<SchedulerState> {
  const blobs: Record<string, SchedulerEntry> = {};
  const doc = await readJson(path);
  if (typeof doc === 'object' && doc !== null) {
    for (const [key, value] of Object.entries(doc as Record<string, Partial<SchedulerEntry>>)) {
      if (typeof value?.Key !== 'string' || typeof value.ExpiryData !== 'string') continue;
      const expiry = Date.parse(value.ExpiryData);
      if (value.EntryType === MANIFEST_ENTRY && Number.isFinite(expiry)) await importPull(source, value.Key, expiry - ttlMs);
      else blobs[key] = { Key: value.Key, ExpiryData: value.ExpiryData, EntryType: value.EntryType ?? 0 };
    }
  }
  return {
    async save() {
      const out: Record<string, SchedulerEntry> = { ...blobs };
      for (const name of await source.registry.repositories()) {
        const repo = source.registry.repository(parseRepoName(name));
        for (const [digest, t] of await source.times.recorded(repo.name)) {
          const at = t.pulledAt ?? t.pushedAt;
          if (at === undefined) continue;
          // Only revisions still cached (times may outlive an evicted one).
          if (!(await repo.manifests.get({ digest }).then(() => true, () => false))) continue;
          const key = `${name}@${digest}`;
          out[key] = { Key: key, ExpiryData: new Date(at + ttlMs).toISOString(), EntryType: MANIFEST_ENTRY };
        }
      }
      await writeAtomically(path, JSON.stringify(out));
    },
  };
}
