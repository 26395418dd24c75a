/**
 * Upload purging (registry:2's storage.maintenance.uploadpurging): removes upload sessions whose
 * `startedat` is older than a cut-off. A session without a readable `startedat` counts as new, so
 * nothing is removed on a guess.
 */
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { repositoryDirs } from '../catalog.js';
import { UPLOADS_DIR, parsePath, paths } from '../paths.js';

/** What a purge removed. */
export interface PurgeReport {
  /** Driver paths of the sessions removed (or that would be, in a dry run). */
  readonly purged: string[];
}

/**
 * @param exclusive runs a deletion under the session's lock (upload-sessions.ts), keyed by the
 *   session's path, so a purge never pulls a session from under a request that is committing it.
 */
export async function purgeUploads(
  driver: StorageDriver,
  opts: { olderThan: Date; dryRun: boolean },
  exclusive: (key: string, fn: () => Promise<boolean>) => Promise<boolean>,
  o?: CallOptions,
): Promise<PurgeReport> {
  const purged: string[] = [];
  for await (const { name, children } of repositoryDirs(driver, o)) {
    // Uploads may exist before anything is linked, so every directory with `_uploads` is searched.
    if (!children.includes(UPLOADS_DIR)) continue;
    const sessions = (await unlessNotFound(() => driver.list(paths.uploads(name), o))) ?? [];
    for (const session of sessions) {
      const at = parsePath(session);
      if (at.kind !== 'upload' || at.id === undefined) continue;
      const started = await startedAt(driver, paths.uploadStartedAt(name, at.id), o);
      if (started === undefined || started >= opts.olderThan) continue;
      if (opts.dryRun || (await exclusive(session, () => deleteIfExists(driver, session, o)))) purged.push(session);
    }
  }
  return { purged };
}

async function startedAt(driver: StorageDriver, path: string, o?: CallOptions): Promise<Date | undefined> {
  const raw = await unlessNotFound(() => driver.getContent(path, o));
  const date = raw === undefined ? undefined : new Date(raw.toString('utf8').trim());
  return date === undefined || Number.isNaN(date.getTime()) ? undefined : date;
}
