/**
 * The mirror's pull times outside storage's own push and pull times (ManifestTimes, where the mirror
 * records every manifest GET and eviction reads them), on filesystem storage:
 *
 * - registry:2's `<rootdirectory>/scheduler-state.json` in registry:2's `proxy.remoteurl` form, read at
 *   start into the times and written back from them, compatibly, so a registry:2 mirror's root rsyncs
 *   in and out: a map of `{"Key": "<name>@<digest>", "ExpiryData": <RFC 3339 time>, "EntryType": 0
 *   (blob) | 1 (manifest)}`. A manifest entry's pull time is its expiry less the ttl. Blob entries,
 *   which Berth does not schedule itself (its images expire by their manifests' last pull), are kept
 *   as they were read until they expire; then, as registry:2 would, the repository's link to the blob
 *   is removed (and the collector frees the bytes nothing else holds), unless a cached image of that
 *   repository still names the blob: registry:2 removes it anyway and breaks that image (distribution
 *   #2367), Berth keeps it for the image, whose own expiry then governs. Either way the entry goes.
 * - `<rootdirectory>/berth/mirror-pulls.json` (`{"<name>@<digest>": <ms since epoch>}`), where earlier
 *   versions of Berth kept them: read once into the times, then removed.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isRegistryError } from '../errors.js';
import { parseDigest } from '../storage/digest.js';
import { type Reference, type RepoName, parseRepoName, parseTag } from '../storage/reference.js';
import type { ManifestTimes, Registry, Repository } from '../storage/registry.js';

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
  /**
   * Acts on the blob entries expired by `now` (see above) through `registry` (deletes enabled):
   * answers the links removed (in a dry run: that would be, and nothing changes).
   */
  expireBlobs(registry: Pick<Registry, 'repository'>, now: number, dryRun: boolean): Promise<BlobExpiry[]>;
}

/** A blob entry acted on: the link removed, or kept for a cached image that names it. */
export interface BlobExpiry {
  readonly name: string;
  readonly digest: string;
  readonly unlinked: boolean;
}

/** The digests the tagged images of `repo` name (manifests, configs, layers; an index's children and theirs). */
async function blobsOfCachedImages(repo: Repository): Promise<Set<string>> {
  const names = new Set<string>();
  const visit = async (ref: Reference, depth: number): Promise<void> => {
    const manifest = await repo.manifests.get(ref).catch(() => undefined);
    if (manifest === undefined || names.has(manifest.digest)) return;
    names.add(manifest.digest);
    const doc = JSON.parse(manifest.content.toString('utf8')) as { config?: { digest?: unknown }; layers?: { digest?: unknown }[]; manifests?: { digest?: unknown }[] };
    for (const d of [doc.config, ...(doc.layers ?? [])]) if (typeof d?.digest === 'string') names.add(d.digest);
    if (depth > 0) return;
    for (const child of doc.manifests ?? []) {
      const d = typeof child.digest === 'string' ? parseDigest(child.digest) : undefined;
      if (d !== undefined) await visit({ digest: d }, depth + 1);
    }
  };
  for (const tag of await repo.tags().catch(() => [])) await visit({ tag: parseTag(tag) }, 0);
  return names;
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
    async expireBlobs(registry, now, dryRun) {
      const acted: BlobExpiry[] = [];
      const named = new Map<string, Promise<Set<string>>>();
      for (const [key, entry] of Object.entries(blobs)) {
        const expiry = Date.parse(entry.ExpiryData);
        if (!Number.isFinite(expiry) || expiry > now) continue;
        const at = entry.Key.lastIndexOf('@');
        const digest = parseDigest(entry.Key.slice(at + 1));
        const repo = repoNameOf(entry.Key.slice(0, Math.max(0, at)));
        if (repo === undefined || digest === undefined) continue; // not a blob of a repository: kept as it was
        const repository = registry.repository(repo);
        let names = named.get(repo);
        if (names === undefined) {
          names = blobsOfCachedImages(repository);
          named.set(repo, names);
        }
        const kept = (await names).has(digest);
        if (!dryRun) {
          if (!kept) await repository.blobs.delete(digest).catch((err: unknown) => {
            if (!isRegistryError(err, 'BLOB_UNKNOWN')) throw err; // already gone
          });
          delete blobs[key];
        }
        acted.push({ name: repo, digest, unlinked: !kept });
      }
      return acted;
    },
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
