/**
 * The filesystem driver's blocking calls, for a process that owns its event loop and does nothing else
 * while it reads the tree (the offline commands: `garbage-collect`, `check`; never `serve`).
 *
 * An asynchronous fs call is a round trip through libuv's thread pool: a job queued, a pool thread woken
 * (futex), the result posted back (eventfd, epoll) and a promise settled. For a walk over a tree of
 * hundreds of thousands of small directories and link files that round trip costs more CPU than the
 * system call itself (issue #19: a million futex calls in one dry run of the collector). The same calls
 * made synchronously answer the same thing in the same order, for a fraction of the CPU.
 *
 * Each function mirrors its asynchronous twin in filesystem-walk.ts (same errors, same skipping of
 * entries removed while the walk runs); getContent reads with readFileSync (filesystem.ts).
 */
import { type Dirent, lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DriverError, PathNotFoundError } from './driver.js';
import type { CallOptions, DirectoryEntries, FileInfo, LeftoverOptions } from './driver.js';
import { MISSING, NAME, TEMP_FILE, childPath, errno, failure, toInfo } from './filesystem-io.js';
import { sortEntries } from './filesystem-walk.js';

/** `guard` for a synchronous call: the same translation of what `fn` throws. */
export function guardSync<T>(path: string, o: CallOptions | undefined, missing: readonly string[], fn: () => T): T {
  o?.signal?.throwIfAborted();
  try {
    return fn();
  } catch (err) {
    if (err instanceof DriverError || o?.signal?.aborted) throw err;
    if (missing.includes(errno(err) ?? '')) throw new PathNotFoundError(NAME, path, { cause: err });
    throw failure(path, err);
  }
}

/** `guardSync`, answering undefined where the path is missing (an entry removed since it was listed). */
function unlessGone<T>(path: string, o: CallOptions | undefined, fn: () => T): T | undefined {
  try {
    return guardSync(path, o, MISSING, fn);
  } catch (err) {
    if (err instanceof PathNotFoundError) return undefined;
    throw err;
  }
}

/** walkTree, blocking: every entry under `path`, pre-order, symlinks reported as their targets, not followed. */
export function* walkTreeSync(path: string, full: string, o?: CallOptions): Generator<FileInfo> {
  const names = guardSync(path, o, MISSING, () => readdirSync(full));
  yield* walkNamesSync(path, full, names, o);
}

function* walkNamesSync(path: string, full: string, names: readonly string[], o?: CallOptions): Generator<FileInfo> {
  for (const name of names) {
    if (TEMP_FILE.test(name)) continue;
    o?.signal?.throwIfAborted();
    const child = childPath(path, name);
    const childFull = join(full, name);
    const link = unlessGone(child, o, () => lstatSync(childFull));
    if (link === undefined) continue;
    const st = link.isSymbolicLink() ? unlessGone(child, o, () => statSync(childFull)) : link;
    if (st === undefined) continue; // a dangling symlink
    yield toInfo(child, st);
    if (!link.isDirectory()) continue;
    const below = unlessGone(child, o, () => readdirSync(childFull));
    if (below !== undefined) yield* walkNamesSync(child, childFull, below, o);
  }
}

/** tempFiles, blocking. `top`: a missing `path` is an error, not an end. */
export function* tempFilesSync(path: string, full: string, top: boolean, o?: LeftoverOptions): Generator<FileInfo> {
  const list = (): Dirent[] => readdirSync(full, { withFileTypes: true });
  const entries = top ? guardSync(path, o, MISSING, list) : unlessGone(path, o, list);
  if (entries === undefined) return;
  for (const e of entries) {
    const child = childPath(path, e.name);
    if (e.isDirectory()) {
      if (!o?.skip?.has(child)) yield* tempFilesSync(child, join(full, e.name), false, o);
    } else if (e.isFile() && TEMP_FILE.test(e.name)) {
      const st = unlessGone(child, o, () => lstatSync(join(full, e.name)));
      if (st !== undefined) yield toInfo(child, st);
    }
  }
}

/** StorageDriver.tree, blocking. */
export function* treeSync(path: string, full: string, o?: CallOptions): Generator<DirectoryEntries> {
  const entries = guardSync(path, o, MISSING, () => readdirSync(full, { withFileTypes: true }));
  yield* treeInSync(path, full, entries, o);
}

function* treeInSync(path: string, full: string, entries: readonly Dirent[], o?: CallOptions): Generator<DirectoryEntries> {
  o?.signal?.throwIfAborted();
  const sorted = sortEntries(entries);
  const files = [...sorted.files];
  for (const name of sorted.links) {
    const st = unlessGone(childPath(path, name), o, () => statSync(join(full, name)));
    if (st !== undefined && !st.isDirectory()) files.push(name);
  }
  const temps: FileInfo[] = [];
  for (const name of sorted.temps) {
    const st = unlessGone(childPath(path, name), o, () => lstatSync(join(full, name)));
    if (st !== undefined) temps.push(toInfo(childPath(path, name), st));
  }
  const listed: { name: string; entries: Dirent[] }[] = [];
  for (const name of sorted.dirs) {
    const below = unlessGone(childPath(path, name), o, () => readdirSync(join(full, name), { withFileTypes: true }));
    if (below !== undefined) listed.push({ name, entries: below });
  }
  yield { path, dirs: listed.map((d) => d.name), files, temps };
  for (const d of listed) yield* treeInSync(childPath(path, d.name), join(full, d.name), d.entries, o);
}
