/**
 * Opening the LevelDB directory. A locked database belongs to another process (a serving Berth) and is
 * left alone. Any other failure (corrupt or missing files, a half-written directory) removes the
 * directory and opens an empty one: safe, because nothing found in it would have been trusted anyway
 * (index-db.ts). When even that fails, there is no index, and storage answers every listing.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Level } from 'level';
import type { Logger } from '../log.js';
import type { IndexLevel } from './entries.js';

/** The database at `location`, created if missing; undefined (after a warning) when it cannot be had. */
export async function openLevel(location: string, log: Logger): Promise<IndexLevel | undefined> {
  const open = async (): Promise<IndexLevel> => {
    await mkdir(dirname(location), { recursive: true });
    const db = new Level<string, unknown>(location, { valueEncoding: 'json' });
    await db.open();
    return db;
  };
  try {
    return await open();
  } catch (err) {
    if (causeCode(err) === 'LEVEL_LOCKED' || !(await isDirectory(location))) {
      log.warn('index: cannot open the index database; listings are answered from storage', { location, err: messageOf(err) });
      return undefined;
    }
    log.warn('index: the index database is damaged; removing it and rebuilding from storage', { location, err: messageOf(err) });
  }
  try {
    await rm(location, { recursive: true, force: true });
    return await open();
  } catch (err) {
    log.warn('index: cannot recreate the index database; listings are answered from storage', { location, err: messageOf(err) });
    return undefined;
  }
}

/**
 * True when another process holds the database at `location` (LevelDB's lock): a serving Berth. Offline
 * tools that write the tree while a server runs leave that server's index stale until it restarts.
 */
export async function isIndexLocked(location: string): Promise<boolean> {
  const db = new Level<string, unknown>(location, { valueEncoding: 'json', createIfMissing: false });
  try {
    await db.open();
    await db.close();
    return false;
  } catch (err) {
    return causeCode(err) === 'LEVEL_LOCKED';
  }
}

/** An error's message, with its cause's (LevelDB puts the useful part there). */
export function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
