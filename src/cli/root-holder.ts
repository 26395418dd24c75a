/**
 * Who is using a filesystem root. A serving Berth (without `redis`) holds the LevelDB lock of the
 * root's listing index (`<rootdirectory>/berth/index`) for as long as it runs, and so does an offline
 * command that writes the tree (`garbage-collect`, `check --repair`). Beside the index, the holder
 * writes `<rootdirectory>/berth/holder.json` (pid, host, command, since), so whoever finds the lock
 * taken can say who took it. The file is read only while the lock is held: one left behind by a killed
 * process names nobody.
 *
 * What this lets Berth refuse (issue #14): an offline deletion under a live server (registry:2's
 * data-loss bug distribution#3045) and a second `serve` on a root already served without `redis`.
 * With `redis` (replicas sharing a root) no server keeps an index, so nothing is locked and nothing is
 * refused: the replicas coordinate through Redis instead.
 */
import { hostname } from 'node:os';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { isIndexLocked } from '../indexdb/index-db.js';
import { openLevel } from '../indexdb/open.js';
import type { IndexLevel } from '../indexdb/entries.js';
import type { Logger } from '../log.js';
import { CommandError } from './command-error.js';

/** What `holder.json` says about the process holding a root. */
export interface RootHolder {
  readonly pid: number;
  readonly host: string;
  /** `serve`, `garbage-collect`, `check --repair`, `index rebuild`. */
  readonly command: string;
  /** When it took the root (RFC 3339). */
  readonly since: string;
}

/** Where the listing index of a filesystem root lives. */
export function indexLocation(rootdirectory: string): string {
  return join(resolve(rootdirectory), 'berth', 'index');
}

/** The holder file of the root whose index is at `location`. */
function holderPath(location: string): string {
  return join(dirname(location), 'holder.json');
}

/**
 * Records this process as the holder of the root whose index lives at `location` (the caller holds
 * the index's lock); answers a function that removes the record again (best effort).
 */
export async function recordHolder(location: string, command: string): Promise<() => Promise<void>> {
  const holder: RootHolder = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() };
  const path = holderPath(location);
  await writeFile(path, `${JSON.stringify(holder)}\n`);
  return async () => {
    await rm(path, { force: true });
  };
}

/** What the holder file says, or undefined when it is missing or unreadable. */
export async function readHolder(location: string): Promise<RootHolder | undefined> {
  try {
    const doc: unknown = JSON.parse(await readFile(holderPath(location), 'utf8'));
    if (typeof doc !== 'object' || doc === null) return undefined;
    const { pid, host, command, since } = doc as Record<string, unknown>;
    if (typeof pid !== 'number' || typeof host !== 'string' || typeof command !== 'string' || typeof since !== 'string') return undefined;
    return { pid, host, command, since };
  } catch {
    return undefined;
  }
}

/** `berth serve (pid 42 on host, since …)`, or `another Berth process` when the record is missing. */
export function describeHolder(holder: RootHolder | undefined): string {
  if (holder === undefined) return 'another Berth process (it left no holder.json beside the index)';
  return `berth ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.since})`;
}

/**
 * The holder of the configured root when another process holds it; undefined when nobody does, or
 * when the storage keeps no index (not filesystem) and so cannot tell.
 */
export async function otherHolder(config: Config): Promise<{ root: string; holder: RootHolder | undefined } | undefined> {
  if (config.storage.driver !== 'filesystem') return undefined;
  const location = indexLocation(config.storage.rootdirectory);
  if (!(await isIndexLocked(location))) return undefined;
  return { root: config.storage.rootdirectory, holder: await readHolder(location) };
}

/** Why a second `serve` without `redis` must not start on a root already served. */
export function serveRefusal(root: string, holder: RootHolder | undefined): CommandError {
  return new CommandError(
    `${root} is already in use by ${describeHolder(holder)}. Two servers without redis on one root would not ` +
      'coordinate their deletions (the collector) nor their listings; stop the other one, or configure redis to run replicas',
  );
}

/**
 * For offline commands that write the tree: takes the root's lock for as long as the command runs (so a
 * server cannot start meanwhile), or, when a server holds it, refuses with a CommandError unless `force`
 * (then warns and goes on without the lock). Answers a function that lets go. Storage that keeps no
 * index (s3, inmemory) cannot be checked: nothing is held, and for s3 the log says so.
 */
export async function holdRootForWriting(
  config: Config,
  opts: { command: string; force: boolean; log: Logger; held?: (db: IndexLevel) => void },
): Promise<() => Promise<void>> {
  if (config.storage.driver === 's3') {
    opts.log.warn(`${opts.command}: Berth cannot tell whether a server serves this bucket (only filesystem roots are locked); stop every server using it first`);
  }
  if (config.storage.driver !== 'filesystem') return async () => undefined;
  const root = config.storage.rootdirectory;
  const location = indexLocation(root);
  const refuse = async (): Promise<() => Promise<void>> => {
    const who = describeHolder(await readHolder(location));
    if (!opts.force) {
      throw new CommandError(
        `${root} is being served by ${who}: ${opts.command} would delete under a live server, where a push in ` +
          'progress can lose its blobs (registry:2\'s data-loss bug distribution#3045). Stop the server first, or let it ' +
          'collect itself (storage.maintenance.gc, POST /debug/gc); --force runs anyway',
      );
    }
    opts.log.warn(`--force: ${opts.command} runs while ${root} is in use by ${who}; pushes in progress may lose blobs, and that server's listing index stays stale until it restarts`);
    return async () => undefined;
  };
  if (await isIndexLocked(location)) return refuse();
  const db = await openLevel(location, opts.log);
  if (db === undefined) return (await isIndexLocked(location)) ? refuse() : async () => undefined;
  const forget = await recordHolder(location, opts.command);
  opts.held?.(db);
  return async () => {
    await forget();
    await db.close();
  };
}
