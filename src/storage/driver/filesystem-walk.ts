/**
 * The filesystem driver's tree walks (`walk` and `leftovers`), with bounded look-ahead: a directory's
 * entries are examined up to WINDOW at a time (lstat, and readdir for a directory) while the walk
 * yields them one by one in the same order as a plain serial walk would. A serial walk waits for each
 * lstat's round trip through libuv's thread pool before it asks for the next one, so a tree of many
 * small directories (10,000 repositories, 20,000 blobs) took as many round trips end to end as it has
 * entries; with look-ahead the pool works on several at once.
 *
 * Each level of the walk holds at most WINDOW entries in flight (lstat and, for a directory, its list
 * of names), so what is in memory is bounded by WINDOW × depth, never the whole tree. A failure is
 * raised where the serial walk would have raised it: an entry's outcome is kept (never left as a
 * rejected promise nobody awaits) and thrown only when the walk reaches that entry. A consumer that
 * stops early leaves the look-ahead to settle and be dropped.
 */
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CallOptions, DirectoryEntries, FileInfo, LeftoverOptions } from './driver.js';
import { MISSING, TEMP_FILE, childPath, guard, skipMissing, toInfo } from './filesystem-io.js';

/** Entries of one directory examined ahead of the one being yielded. */
const WINDOW = 16;

/** An outcome kept until the walk reaches it. */
type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

/** `load` applied to each of `items`, up to WINDOW ahead, answered in order (a failure thrown when reached). */
async function* ordered<I, T>(items: readonly I[], load: (item: I) => Promise<T>): AsyncGenerator<T> {
  const ahead: Promise<Outcome<T>>[] = [];
  let next = 0;
  const fill = (): void => {
    while (ahead.length < WINDOW && next < items.length) {
      const item = items[next++];
      if (item !== undefined) ahead.push(settle(load(item)));
    }
  };
  fill();
  for (let head = ahead.shift(); head !== undefined; head = ahead.shift()) {
    const outcome = await head;
    fill();
    if (!outcome.ok) throw outcome.error;
    yield outcome.value;
  }
}

interface Examined {
  readonly path: string;
  readonly full: string;
  /** What `walk` reports: the target's state for a symlink, else the entry's own. */
  readonly st: Stats;
  /** The names in it, for a real directory (a symlink to one is not followed). */
  readonly below?: string[];
}

/**
 * Every entry under `path` (driver path) at `full`, pre-order: each entry, then (for a real directory,
 * not a symlink) everything under it. Temporary files are left out; an entry removed while the walk
 * runs, or a dangling symlink, is skipped. @throws PathNotFoundError when `path` itself is missing
 */
export async function* walkTree(path: string, full: string, o?: CallOptions): AsyncGenerator<FileInfo> {
  const names = await guard(path, o, MISSING, () => readdir(full));
  yield* walkNames(path, full, names, o);
}

async function* walkNames(path: string, full: string, names: readonly string[], o?: CallOptions): AsyncGenerator<FileInfo> {
  const examine = async (name: string): Promise<Examined | undefined> => {
    const child = childPath(path, name);
    const childFull = join(full, name);
    const link = await guard(child, o, MISSING, () => lstat(childFull)).catch(skipMissing);
    if (link === undefined) return undefined;
    const st = link.isSymbolicLink() ? await guard(child, o, MISSING, () => stat(childFull)).catch(skipMissing) : link;
    if (st === undefined) return undefined; // a dangling symlink
    if (!link.isDirectory()) return { path: child, full: childFull, st };
    const below = await guard(child, o, MISSING, () => readdir(childFull)).catch(skipMissing);
    return { path: child, full: childFull, st, ...(below !== undefined && { below }) };
  };
  for await (const e of ordered(names.filter((n) => !TEMP_FILE.test(n)), examine)) {
    o?.signal?.throwIfAborted();
    if (e === undefined) continue;
    yield toInfo(e.path, e.st);
    if (e.below !== undefined) yield* walkNames(e.path, e.full, e.below, o);
  }
}

/**
 * The driver's temporary files under `path` at `full`, with one readdir per directory (entry types
 * included, so only temporary files are lstat'ed), leaving out the directories in `o.skip`. `top`: a
 * missing `path` is an error, not an end.
 */
export async function* tempFiles(path: string, full: string, top: boolean, o?: LeftoverOptions): AsyncGenerator<FileInfo> {
  const listed = guard(path, o, MISSING, () => readdir(full, { withFileTypes: true }));
  const entries = top ? await listed : await listed.catch(skipMissing);
  if (entries !== undefined) yield* tempFilesIn(path, full, entries, o);
}

interface Looked {
  readonly path: string;
  readonly full: string;
  /** A temporary file's state. */
  readonly st?: Stats;
  /** A directory's entries. */
  readonly below?: Dirent[];
}

async function* tempFilesIn(path: string, full: string, entries: readonly Dirent[], o?: LeftoverOptions): AsyncGenerator<FileInfo> {
  const look = async (e: Dirent): Promise<Looked> => {
    const at = { path: childPath(path, e.name), full: join(full, e.name) };
    if (e.isDirectory()) {
      const below = await guard(at.path, o, MISSING, () => readdir(at.full, { withFileTypes: true })).catch(skipMissing);
      return below === undefined ? at : { ...at, below };
    }
    const st = await guard(at.path, o, MISSING, () => lstat(at.full)).catch(skipMissing);
    return st === undefined ? at : { ...at, st };
  };
  const wanted = entries.filter((e) => (e.isDirectory() && !o?.skip?.has(childPath(path, e.name))) || (e.isFile() && TEMP_FILE.test(e.name)));
  for await (const e of ordered(wanted, look)) {
    if (e.below !== undefined) yield* tempFilesIn(e.path, e.full, e.below, o);
    else if (e.st !== undefined) yield toInfo(e.path, e.st);
  }
}

/** A directory's entries sorted out by kind: what `tree` reports, from one readdir with entry types. */
export interface SortedEntries {
  readonly dirs: string[];
  readonly files: string[];
  /** Temporary files, to be lstat'ed. */
  readonly temps: string[];
  /** Symlinks, to be stat'ed (a file's is a file; a directory's is not followed; a dangling one is skipped). */
  readonly links: string[];
}

export function sortEntries(entries: readonly Dirent[]): SortedEntries {
  const sorted: SortedEntries = { dirs: [], files: [], temps: [], links: [] };
  for (const e of entries) {
    if (e.isDirectory()) sorted.dirs.push(e.name);
    else if (e.isSymbolicLink()) sorted.links.push(e.name);
    else if (e.isFile() && TEMP_FILE.test(e.name)) sorted.temps.push(e.name);
    else if (!TEMP_FILE.test(e.name)) sorted.files.push(e.name);
  }
  return sorted;
}

/** StorageDriver.tree over `full` (driver path `path`): one readdir per directory, up to WINDOW ahead. */
export async function* treeOf(path: string, full: string, o?: CallOptions): AsyncGenerator<DirectoryEntries> {
  const entries = await guard(path, o, MISSING, () => readdir(full, { withFileTypes: true }));
  yield* treeIn(path, full, entries, o);
}

async function* treeIn(path: string, full: string, entries: readonly Dirent[], o?: CallOptions): AsyncGenerator<DirectoryEntries> {
  o?.signal?.throwIfAborted();
  const sorted = sortEntries(entries);
  const files = [...sorted.files];
  for (const name of sorted.links) {
    const st = await guard(childPath(path, name), o, MISSING, () => stat(join(full, name))).catch(skipMissing);
    if (st !== undefined && !st.isDirectory()) files.push(name);
  }
  const temps: FileInfo[] = [];
  for (const name of sorted.temps) {
    const st = await guard(childPath(path, name), o, MISSING, () => lstat(join(full, name))).catch(skipMissing);
    if (st !== undefined) temps.push(toInfo(childPath(path, name), st));
  }
  const below = ordered(sorted.dirs, async (name) => ({
    name,
    entries: await guard(childPath(path, name), o, MISSING, () => readdir(join(full, name), { withFileTypes: true })).catch(skipMissing),
  }));
  const dirs: string[] = [];
  const listed: { name: string; entries: Dirent[] }[] = [];
  for await (const d of below) {
    if (d.entries === undefined) continue; // removed since it was listed
    dirs.push(d.name);
    listed.push({ name: d.name, entries: d.entries });
  }
  yield { path, dirs, files, temps };
  for (const d of listed) yield* treeIn(childPath(path, d.name), join(full, d.name), d.entries, o);
}
