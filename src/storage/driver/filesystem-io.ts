/**
 * The filesystem driver's I/O helpers (filesystem.ts): callback-style descriptor calls as promises,
 * whole-file reads and synced writes, directory syncs, temporary names, and the translation of what
 * the filesystem throws into DriverErrors.
 */
import { randomBytes } from 'node:crypto';
import { close as closeFd, fstat as fstatFd, fsync as fsyncFd, open as openFd, read as readFd, write as writeFd } from 'node:fs';
import type { BigIntStats, Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DriverError, InvalidOffsetError, PathNotFoundError } from './driver.js';
import type { CallOptions, FileInfo } from './driver.js';


/** The driver's name, in errors and metrics. */
export const NAME = 'filesystem';
/** getContent's smallest read buffer: links, `startedat` and most manifests fit. */
export const SMALL_READ = 16 * 1024;
/** The driver's own temporary files, skipped by `list` and `walk`. */
export const TEMP_FILE = /^\..*\.[0-9a-f]{16}\.tmp$/;
/** errno codes that mean "nothing at this path" when reading. */
export const MISSING = ['ENOENT', 'ENOTDIR'] as const;

/** A callback-style fs call as a promise. */
export function fdCall<T = void>(call: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value))));
}

/** Ends `w` (if not yet ended) and waits until every byte is flushed. */
export async function finish(w: Writable): Promise<void> {
  if (w.writableFinished) return;
  if (w.destroyed) throw w.errored ?? new DriverError('DRIVER_FAILURE', NAME, 'writer destroyed before end()');
  if (!w.writableEnded) w.end();
  await finished(w, { readable: false });
}

/** Destroys `w` (if not yet destroyed) and waits for its 'close'. */
export async function close(w: Readable | Writable): Promise<void> {
  if (w.closed) return;
  const closed = new Promise<void>((res) => w.once('close', () => res()));
  if (!w.destroyed) w.destroy();
  await closed;
}

/** `buffers` without their first `n` bytes. */
export function dropBytes(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= (buffers[i]?.length ?? 0)) {
    skip -= buffers[i]?.length ?? 0;
    i += 1;
  }
  const rest = buffers.slice(i);
  const first = rest[0];
  if (first !== undefined && skip > 0) rest[0] = first.subarray(skip);
  return rest;
}

/** A file's bytes and the inode state they were read in (see versionOf). */
export interface KeptContent {
  readonly version: string;
  /** The inode's last change (ctime), in nanoseconds since the epoch. */
  readonly changedNs: bigint;
  readonly content: Buffer;
}

/** What identifies a file's state: any write, truncation, rename over it or touch changes one of these. */
export function versionOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * The whole content of a small file and the state it was read in: open, fstat, read, close, through
 * the callback API, which costs about half the CPU of FileHandle's per call. The fstat comes before the
 * read, so a change during the read shows as a newer state next time. A read that comes back short ends
 * the file, as it does for Node's own readFile. @throws PathNotFoundError for a directory
 */
export async function readWhole(full: string, path: string, o?: CallOptions): Promise<KeptContent> {
  const fd = await fdCall<number>((cb) => openFd(full, 'r', cb));
  let failed = false;
  try {
    const st = await fdCall<BigIntStats>((cb) => fstatFd(fd, { bigint: true }, cb));
    if (st.isDirectory()) throw new PathNotFoundError(NAME, path);
    // The size is a hint (it may change, and some files report 0): read until a short read.
    let buf = Buffer.allocUnsafeSlow(Math.max(Number(st.size) + 1, SMALL_READ));
    let length = 0;
    for (;;) {
      o?.signal?.throwIfAborted();
      const at = length;
      const n = await fdCall<number>((cb) => readFd(fd, buf, at, buf.length - at, at, cb));
      length += n;
      if (n === 0 || length < buf.length) break;
      const grown = Buffer.allocUnsafeSlow(buf.length * 2);
      buf.copy(grown, 0, 0, length);
      buf = grown;
    }
    // An exact-size copy, so that what callers keep (cached manifests) holds no unused buffer space.
    const content = Buffer.allocUnsafe(length);
    buf.copy(content, 0, 0, length);
    return { version: versionOf(st), changedNs: st.ctimeNs, content };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await new Promise<void>((res, rej) => closeFd(fd, (err) => (err && !failed ? rej(err) : res())));
  }
}

/** Creates `file` (it must not exist), writes `data` and fsyncs it. */
export async function writeSynced(file: string, data: Uint8Array, o?: CallOptions): Promise<void> {
  const fd = await fdCall<number>((cb) => openFd(file, 'wx', 0o666, cb));
  try {
    for (let at = 0; at < data.length; ) {
      o?.signal?.throwIfAborted();
      const from = at;
      at += await fdCall<number>((cb) => writeFd(fd, data, from, data.length - from, null, cb));
    }
    await fdCall((cb) => fsyncFd(fd, cb));
  } finally {
    await fdCall((cb) => closeFd(fd, cb));
  }
}

/** Makes the entries of `dir` durable. Filesystems that cannot fsync a directory are tolerated. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await fdCall<number>((cb) => openFd(dir, 'r', cb));
  try {
    await fdCall((cb) => fsyncFd(fd, cb)).catch((err: unknown) => {
      if (!['EINVAL', 'EISDIR', 'EPERM', 'EBADF'].includes(errno(err) ?? '')) throw err;
    });
  } finally {
    await fdCall((cb) => closeFd(fd, cb));
  }
}

/** A unique temporary name beside `full`; the target's name is shortened to stay under NAME_MAX. */
export function tempPathFor(full: string): string {
  return join(dirname(full), `.${basename(full).slice(0, 200)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * Runs `fn`, translating what it throws: errno codes in `missing` become PathNotFoundError for
 * `path`, DriverErrors pass through, an aborted call rejects with what aborted it, and anything else
 * becomes a DRIVER_FAILURE with the original as `cause`.
 */
export async function guard<T>(
  path: string,
  o: CallOptions | undefined,
  missing: readonly string[],
  fn: () => Promise<T>,
): Promise<T> {
  o?.signal?.throwIfAborted();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DriverError || o?.signal?.aborted) throw err;
    if (missing.includes(errno(err) ?? '')) throw new PathNotFoundError(NAME, path, { cause: err });
    throw failure(path, err);
  }
}

/** `undefined` for PathNotFoundError (the entry went away); rethrows anything else. */
export function skipMissing(err: unknown): undefined {
  if (err instanceof PathNotFoundError) return undefined;
  throw err;
}

/** @throws InvalidOffsetError unless `offset` is a non-negative integer */
export function checkOffset(path: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(NAME, path, offset);
}

/** A DRIVER_FAILURE for `path`, with `err` as its cause. */
export function failure(path: string, err: unknown): DriverError {
  const message = err instanceof Error ? err.message : String(err);
  return new DriverError('DRIVER_FAILURE', NAME, `${path}: ${message}`, { cause: err });
}

/** The errno code of a Node.js system error (`ENOENT`…), if `err` is one. */
export function errno(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Whether `err` is the AbortError of an aborted call. */
export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** `err` as an Error (wrapped when it is not one). */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The driver path of `name` in directory `dir` (the root is `/`). */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** What `stat` and `walk` report of a path, from its Stats. */
export function toInfo(path: string, st: Stats): FileInfo {
  const isDir = st.isDirectory();
  return { path, size: isDir ? 0 : st.size, modTime: st.mtime, isDir };
}

