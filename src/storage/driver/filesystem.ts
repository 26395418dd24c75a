/**
 * The filesystem driver: driver paths map one to one under a root directory, as in registry:2's
 * filesystem driver (distribution registry/storage/driver/filesystem/driver.go), so a registry:2 data
 * directory can be served unchanged.
 *
 * Durability and atomicity:
 * - `putContent` writes a temporary file beside the target (`.<name>.<16 hex>.tmp`), fsyncs it, renames
 *   it over the target and fsyncs the directory, so a reader sees the old bytes or the new, never a part,
 *   and a crash leaves at worst a stray temporary file (which `list` and `walk` never report).
 * - `writer` writes straight into the file at its path (upload `data` files are resumable in place);
 *   `end()` fsyncs the file and its directory, so `commit()` has nothing left to do but wait for that.
 * - `move` renames and fsyncs the destination's directory.
 *
 * Defense in depth: every path is resolved against the root and refused (InvalidPathError) if it would
 * leave it, even though `instrument()` has already validated it. `delete` never follows a symlink: removing
 * a symlink removes the link, and a recursive delete does not descend through links. Symlinks that an
 * operator placed on the way (a blob directory on another volume, say) are traversed like directories.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Writable, addAbortSignal } from 'node:stream';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DriverError, InvalidOffsetError, InvalidPathError, PathNotFoundError } from './driver.js';
import type { CallOptions, FileInfo, FileWriter, StorageDriver } from './driver.js';

const NAME = 'filesystem';
/** Read chunk size: large reads keep blob downloads fast. */
const READ_CHUNK = 1 << 20;
/** Bytes a writer may hold before `write()` returns false. */
const WRITE_BUFFER = 1 << 20;
/** The driver's own temporary files, skipped by `list` and `walk`. */
const TEMP_FILE = /^\..*\.[0-9a-f]{16}\.tmp$/;
/** errno codes that mean "nothing at this path" when reading. */
const MISSING = ['ENOENT', 'ENOTDIR'] as const;

/** Options of the filesystem driver. */
export interface FilesystemDriverOptions {
  /** Directory that driver path `/` maps to; created on the first write if it does not exist. */
  readonly root: string;
}

/**
 * A driver storing files under `root`. Paths that would resolve outside `root` are refused with
 * InvalidPathError; missing paths give PathNotFoundError; other I/O failures give a DriverError
 * with code DRIVER_FAILURE and the system error as `cause`.
 */
export function createFilesystemDriver({ root }: FilesystemDriverOptions): StorageDriver {
  return new FilesystemDriver(resolve(root));
}

class FilesystemDriver implements StorageDriver {
  readonly name = NAME;

  constructor(private readonly root: string) {}

  async getContent(path: string, o?: CallOptions): Promise<Buffer> {
    const full = this.full(path);
    return guard(path, o, [...MISSING, 'EISDIR'], () => readFile(full, withSignal(o)));
  }

  async putContent(path: string, data: Uint8Array, o?: CallOptions): Promise<void> {
    const full = this.full(path);
    await guard(path, o, [], async () => {
      await mkdir(dirname(full), { recursive: true });
      const tmp = tempPathFor(full);
      try {
        await writeSynced(tmp, data, o);
        o?.signal?.throwIfAborted();
        await rename(tmp, full);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      await syncDir(dirname(full));
    });
  }

  async reader(path: string, offset: number, o?: CallOptions): Promise<Readable> {
    const full = this.full(path);
    checkOffset(path, offset);
    return guard(path, o, MISSING, async () => {
      const fh = await open(full, 'r');
      try {
        const st = await fh.stat();
        if (st.isDirectory()) throw new PathNotFoundError(NAME, path);
        if (offset > st.size) throw new InvalidOffsetError(NAME, path, offset);
        o?.signal?.throwIfAborted();
      } catch (err) {
        await fh.close();
        throw err;
      }
      const stream = fh.createReadStream({ start: offset, highWaterMark: READ_CHUNK });
      return o?.signal ? addAbortSignal(o.signal, stream) : stream;
    });
  }

  async writer(path: string, o: CallOptions & { append: boolean }): Promise<FileWriter> {
    const full = this.full(path);
    return guard(path, o, [], async () => {
      await mkdir(dirname(full), { recursive: true });
      const { O_WRONLY, O_CREAT, O_TRUNC } = constants;
      const fh = await open(full, O_WRONLY | O_CREAT | (o.append ? 0 : O_TRUNC), 0o666);
      try {
        const { size } = await fh.stat();
        o.signal?.throwIfAborted();
        return new FilesystemWriter(fh, { path, full }, size, o.signal);
      } catch (err) {
        await fh.close();
        throw err;
      }
    });
  }

  async stat(path: string, o?: CallOptions): Promise<FileInfo> {
    const full = this.full(path, true);
    return guard(path, o, MISSING, async () => toInfo(path, await stat(full)));
  }

  async list(path: string, o?: CallOptions): Promise<string[]> {
    const full = this.full(path, true);
    return guard(path, o, MISSING, async () => {
      const names = await readdir(full);
      return names.filter((n) => !TEMP_FILE.test(n)).map((n) => childPath(path, n));
    });
  }

  async move(from: string, to: string, o?: CallOptions): Promise<void> {
    const src = this.full(from);
    const dst = this.full(to);
    await guard(from, o, MISSING, () => lstat(src));
    // From here ENOTDIR means a file on the way to `to`: a failure, not a missing source.
    await guard(from, o, ['ENOENT'], async () => {
      await mkdir(dirname(dst), { recursive: true });
      o?.signal?.throwIfAborted();
      await rename(src, dst);
      await syncDir(dirname(dst));
    });
  }

  async delete(path: string, o?: CallOptions): Promise<void> {
    const full = this.full(path);
    // rm() lstat()s: a symlink is unlinked, never followed, at the top and at every level below.
    await guard(path, o, MISSING, () => rm(full, { recursive: true, force: false }));
  }

  walk(path: string, o?: CallOptions): AsyncIterable<FileInfo> {
    return this.walkFrom(path, o);
  }

  private async *walkFrom(path: string, o?: CallOptions): AsyncGenerator<FileInfo> {
    const full = this.full(path, true);
    const entries = await guard(path, o, MISSING, () => readdir(full));
    yield* this.walkEntries(path, full, entries, o);
  }

  /** Pre-order: each entry, then (for a real directory, not a symlink) everything under it. */
  private async *walkEntries(
    path: string,
    full: string,
    names: string[],
    o?: CallOptions,
  ): AsyncGenerator<FileInfo> {
    for (const name of names) {
      if (TEMP_FILE.test(name)) continue;
      o?.signal?.throwIfAborted();
      const child = childPath(path, name);
      const childFull = join(full, name);
      const info = await guard(child, o, MISSING, async () => {
        const link = await lstat(childFull);
        return { link, st: link.isSymbolicLink() ? await stat(childFull) : link };
      }).catch(skipMissing);
      if (info === undefined) continue; // removed while walking, or a dangling symlink
      yield toInfo(child, info.st);
      if (!info.link.isDirectory()) continue;
      const below = await guard(child, o, MISSING, () => readdir(childFull)).catch(skipMissing);
      if (below !== undefined) yield* this.walkEntries(child, childFull, below, o);
    }
  }

  /**
   * The absolute location of a driver path. Refuses (InvalidPathError) a path that is not absolute or
   * that resolves outside the root, and the root itself unless `allowRoot`.
   */
  private full(path: string, allowRoot = false): string {
    const full = resolve(this.root, `.${path}`);
    const inside = full.startsWith(this.root + sep) || (allowRoot && full === this.root);
    if (!path.startsWith('/') || path.includes('\0') || !inside) throw new InvalidPathError(NAME, path);
    return full;
  }
}

/**
 * A Writable over an open file handle. Each chunk is written at the end of what is already there before
 * its callback fires, so at most `WRITE_BUFFER` bytes are held in memory. `end()` fsyncs. I/O errors
 * destroy the writer with a DRIVER_FAILURE DriverError.
 */
class FilesystemWriter extends Writable implements FileWriter {
  private written: number;

  constructor(
    private readonly fh: FileHandle,
    private readonly at: { readonly path: string; readonly full: string },
    size: number,
    signal: AbortSignal | undefined,
  ) {
    super({ highWaterMark: WRITE_BUFFER });
    this.written = size;
    if (signal) addAbortSignal(signal, this);
  }

  get size(): number {
    return this.written;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.append([chunk]).then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    this.append(buffers).then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  /** end(): the bytes, and the file's directory entry (it may be new), become durable. */
  override _final(cb: (err?: Error | null) => void): void {
    const sync = async (): Promise<void> => {
      await this.fh.sync();
      await syncDir(dirname(this.at.full));
    };
    sync().then(() => cb(), (err: unknown) => cb(failure(this.at.path, err)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // FileHandle.close() waits for a write still in flight.
    this.fh.close().then(() => cb(err), (closeErr: unknown) => cb(err ?? toError(closeErr)));
  }

  /** Ends the writer if needed; once end() has synced, the file is already in place. */
  async commit(): Promise<void> {
    try {
      await finish(this);
    } catch (err) {
      throw err instanceof DriverError || isAbort(err) ? err : failure(this.at.path, err);
    }
  }

  /** Stops writing, closes the file and removes it. */
  async cancel(): Promise<void> {
    await close(this);
    await rm(this.at.full, { force: true }).catch((err: unknown) => {
      throw failure(this.at.path, err);
    });
  }

  /** Writes all of `buffers` at the current end, looping over short writes. */
  private async append(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.fh.writev(pending, this.written);
      this.written += bytesWritten;
      pending = dropBytes(pending, bytesWritten);
      if (bytesWritten === 0 && pending.length > 0) throw new Error('write made no progress');
    }
  }
}

/** Ends `w` (if not yet ended) and waits until every byte is flushed. */
async function finish(w: Writable): Promise<void> {
  if (w.writableFinished) return;
  if (w.destroyed) throw w.errored ?? new DriverError('DRIVER_FAILURE', NAME, 'writer destroyed before end()');
  if (!w.writableEnded) w.end();
  await finished(w, { readable: false });
}

/** Destroys `w` (if not yet destroyed) and waits for its 'close'. */
async function close(w: Writable): Promise<void> {
  if (w.closed) return;
  const closed = new Promise<void>((res) => w.once('close', () => res()));
  if (!w.destroyed) w.destroy();
  await closed;
}

/** `buffers` without their first `n` bytes. */
function dropBytes(buffers: Buffer[], n: number): Buffer[] {
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

/** Creates `file` (it must not exist), writes `data` and fsyncs it. */
async function writeSynced(file: string, data: Uint8Array, o?: CallOptions): Promise<void> {
  const fh = await open(file, 'wx', 0o666);
  try {
    await fh.writeFile(data, withSignal(o));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes the entries of `dir` durable. Filesystems that cannot fsync a directory are tolerated. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync().catch((err: unknown) => {
      if (!['EINVAL', 'EISDIR', 'EPERM', 'EBADF'].includes(errno(err) ?? '')) throw err;
    });
  } finally {
    await fh.close();
  }
}

/** A unique temporary name beside `full`; the target's name is shortened to stay under NAME_MAX. */
function tempPathFor(full: string): string {
  return join(dirname(full), `.${basename(full).slice(0, 200)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * Runs `fn`, translating what it throws: errno codes in `missing` become PathNotFoundError for
 * `path`, DriverErrors pass through, an aborted call rejects with what aborted it, and anything else
 * becomes a DRIVER_FAILURE with the original as `cause`.
 */
async function guard<T>(
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
function skipMissing(err: unknown): undefined {
  if (err instanceof PathNotFoundError) return undefined;
  throw err;
}

function checkOffset(path: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(NAME, path, offset);
}

function failure(path: string, err: unknown): DriverError {
  const message = err instanceof Error ? err.message : String(err);
  return new DriverError('DRIVER_FAILURE', NAME, `${path}: ${message}`, { cause: err });
}

function errno(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function withSignal(o: CallOptions | undefined): { signal?: AbortSignal } {
  return o?.signal ? { signal: o.signal } : {};
}

function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function toInfo(path: string, st: Stats): FileInfo {
  const isDir = st.isDirectory();
  return { path, size: isDir ? 0 : st.size, modTime: st.mtime, isDir };
}
