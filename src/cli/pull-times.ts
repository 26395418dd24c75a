/**
 * Where the mirror's pull times are kept (src/mirror/eviction.ts PullRecord) on filesystem storage:
 * Berth's own `<rootdirectory>/berth/mirror-pulls.json` (`{"<name>@<digest>": <ms since epoch>}`), or,
 * for registry:2's `proxy.remoteurl` form, registry:2's `<rootdirectory>/scheduler-state.json`, read
 * and written compatibly so a registry:2 mirror's root rsyncs in and out: a map of
 * `{"Key": "<name>@<digest>", "ExpiryData": <RFC 3339 time>, "EntryType": 0 (blob) | 1 (manifest)}`.
 * A manifest entry's pull time is its expiry less the ttl; blob entries, which Berth does not schedule,
 * are kept as they were read.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

/** Loads and saves a pull record's entries. */
export interface PullTimesFile {
  load(): Promise<Record<string, number>>;
  save(entries: Readonly<Record<string, number>>): Promise<void>;
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

/** Berth's own file. */
export function berthPullTimes(path: string): PullTimesFile {
  return {
    async load() {
      const doc = await readJson(path);
      if (typeof doc !== 'object' || doc === null) return {};
      return Object.fromEntries(Object.entries(doc).filter((e): e is [string, number] => typeof e[1] === 'number'));
    },
    save: (entries) => writeAtomically(path, JSON.stringify(entries)),
  };
}

interface SchedulerEntry {
  readonly Key: string;
  readonly ExpiryData: string;
  readonly EntryType: number;
}

const MANIFEST_ENTRY = 1;

/** registry:2's scheduler-state.json, with `ttlMs` converting expiry times to pull times and back. */
export function schedulerState(path: string, ttlMs: number): PullTimesFile {
  let blobs: Record<string, SchedulerEntry> = {};
  return {
    async load() {
      const doc = await readJson(path);
      const entries: Record<string, number> = {};
      blobs = {};
      if (typeof doc !== 'object' || doc === null) return entries;
      for (const [key, value] of Object.entries(doc as Record<string, Partial<SchedulerEntry>>)) {
        if (typeof value?.Key !== 'string' || typeof value.ExpiryData !== 'string') continue;
        const expiry = Date.parse(value.ExpiryData);
        if (value.EntryType === MANIFEST_ENTRY && Number.isFinite(expiry)) entries[value.Key] = expiry - ttlMs;
        else blobs[key] = { Key: value.Key, ExpiryData: value.ExpiryData, EntryType: value.EntryType ?? 0 };
      }
      return entries;
    },
    async save(entries) {
      const doc: Record<string, SchedulerEntry> = { ...blobs };
      for (const [key, pulled] of Object.entries(entries)) {
        doc[key] = { Key: key, ExpiryData: new Date(pulled + ttlMs).toISOString(), EntryType: MANIFEST_ENTRY };
      }
      await writeAtomically(path, JSON.stringify(doc));
    },
  };
}
