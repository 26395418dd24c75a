/**
 * The filesystem driver: driver paths map one to one under a root directory, as in registry:2's
 * filesystem driver (distribution registry/storage/driver/filesystem/driver.go), so a registry:2 data
 * directory can be served unchanged.
 *
 * Durability and atomicity:
 * - `putContent` writes a temporary file beside the target (`.<name>.<16 hex>.tmp`), fsyncs it, renames
 *   it over the target and fsyncs the directory, so a reader sees the old bytes or the new, never a part,
 *   and a crash leaves at worst a stray temporary file (which `list` and `walk` never report).
 * - `writer` writes straight into the file at its path (upload `data` files are resumable in place),
 *   starting an fdatasync in the background every FLUSH_EVERY bytes so a large file reaches the disk as
 *   it arrives; `end()` fsyncs the file (and its directory when the writer created it), so `commit()`
 *   has nothing left to do but wait for that.
 * - `getContent`, `putContent` and `reader` use raw descriptors through the callback API, cheaper per
 *   call than FileHandle's; getContent keeps small files (links) and answers them again after a single
 *   stat that shows the inode unchanged; a reader can also send itself to a socket through reused buffers (FileReader).
 * - `move` renames and fsyncs the destination's directory.
 *
 * Defense in depth: every path is resolved against the root and refused (InvalidPathError) if it would
 * leave it, even though `instrument()` has already validated it. `delete` never follows a symlink: removing
 * a symlink removes the link, and a recursive delete does not descend through links. Symlinks that an
 * operator placed on the way (a blob directory on another volume, say) are traversed like directories.
 */
import { randomBytes } from 'node:crypto';
import { close as closeFd, constants, fstat as fstatFd, fsync as fsyncFd, open as openFd, read as readFd, stat as statPath, write as writeFd } from 'node:fs';
import type { BigIntStats, Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Readable, Writable, addAbortSignal } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DriverError, InvalidOffsetError, InvalidPathError, PathNotFoundError } from './driver.js';
import type { CallOptions, FileInfo, FileWriter, SendableReader, StorageDriver } from './driver.js';
import { isValidPath } from './instrument.js';

const NAME = 'filesystem';
/** Read chunk size: large reads keep blob downloads fast. */
const READ_CHUNK = 1 << 20;
/** getContent's smallest read buffer: links, `startedat` and most manifests fit. */
const SMALL_READ = 16 * 1024;
/** getContent keeps files up to this size (links are 71 bytes) … */
const KEEP_UP_TO = 4 * 1024;
/** … and at most this many of them … */
const KEEP_ENTRIES = 4096;
/** … once they have not changed for this long (2 s: coarser than any filesystem's timestamps). */
const KEEP_AFTER_NS = 2_000_000_000n;
/** Bytes a writer may hold before `write()` returns false. */
const WRITE_BUFFER = 1 << 20;
/**
 * Bytes a writer appends between two background flushes (fdatasync, not awaited by the writes). The
 * kernel would otherwise keep a large upload's pages dirty until the final fsync and write them all
 * only then, after the last byte arrived; flushing as the bytes come overlaps the disk with the network.
 */
const FLUSH_EVERY = 32 << 20;
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
  /** Its readers are FileReaders. */
  readonly capabilities = { sendableReaders: true } as const;
  /** Small files getContent has read, by full path, each with the inode state it was read in. */
  private readonly kept = new Map<string, KeptContent>();

  constructor(private readonly root: string) {}

  /**
   * Reads a small object. Files of up to KEEP_UP_TO bytes (links, `startedat`) are kept once read, and a
   * later read of the same path answers them after one stat instead of open, fstat, read and close, when
   * the stat shows the very same inode state (device, inode, size, and the nanosecond mtime and ctime,
   * which any write, rename over or touch changes). Nothing stale can be answered: the check is made on
   * every read, what is kept was stat'ed before it was read, and only files unchanged for 2 s are kept
   * (so a rewrite cannot share the last change's timestamp tick).
   */
  async getContent(path: string, o?: CallOptions): Promise<Buffer> {
    const full = this.full(path);
    return guard(path, o, [...MISSING, 'EISDIR'], async () => {
      const kept = this.kept.get(full);
      if (kept !== undefined) {
        const st = await fdCall<BigIntStats>((cb) => statPath(full, { bigint: true }, cb)).catch((err: unknown) => {
          this.kept.delete(full);
          throw err;
        });
        if (versionOf(st) === kept.version) {
          this.kept.delete(full); // re-inserted: Map order makes it the most recently used
          this.kept.set(full, kept);
          return Buffer.from(kept.content);
        }
      }
      const read = await readWhole(full, path, o);
      this.keep(full, read);
      return read.content;
    });
  }

  /**
   * Keeps a small file's bytes for getContent (bounded, least recently used dropped first), once the
   * file has been left alone for KEEP_AFTER: a filesystem's clock ticks coarser than a nanosecond, and
   * a rewrite in place within the same tick as the last change would keep all of the state unchanged.
   */
  private keep(full: string, read: KeptContent): void {
    this.kept.delete(full);
    if (read.content.length > KEEP_UP_TO || BigInt(Date.now()) * 1_000_000n - read.changedNs < KEEP_AFTER_NS) return;
    this.kept.set(full, { ...read, content: Buffer.from(read.content) });
    if (this.kept.size > KEEP_ENTRIES) this.kept.delete(this.kept.keys().next().value as string);
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

  async reader(path: string, offset: number, o?: CallOptions): Promise<SendableReader> {
    const full = this.full(path);
    checkOffset(path, offset);
    return guard(path, o, MISSING, async () => {
      const fd = await fdCall<number>((cb) => openFd(full, 'r', cb));
      try {
        const st = await fdCall<Stats>((cb) => fstatFd(fd, cb));
        if (st.isDirectory()) throw new PathNotFoundError(NAME, path);
        if (offset > st.size) throw new InvalidOffsetError(NAME, path, offset);
        o?.signal?.throwIfAborted();
      } catch (err) {
        await fdCall((cb) => closeFd(fd, cb)).catch(() => undefined);
        throw err;
      }
      const stream = new FileReader(fd, path, offset);
      return o?.signal ? addAbortSignal(o.signal, stream) : stream;
    });
  }

  async writer(path: string, o: CallOptions & { append: boolean }): Promise<FileWriter> {
    const full = this.full(path);
    return guard(path, o, [], async () => {
      await mkdir(dirname(full), { recursive: true });
      const { O_WRONLY, O_CREAT, O_TRUNC } = constants;
      const flags = O_WRONLY | (o.append ? 0 : O_TRUNC);
      // Opened without O_CREAT first, to know whether the file is new: only a new file's directory
      // entry needs the directory synced at end() (an upload's later chunks skip that fsync).
      let created = false;
      const fh = await open(full, flags).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT') throw err;
        created = true;
        return open(full, flags | O_CREAT, 0o666);
      });
      try {
        const { size } = await fh.stat();
        o.signal?.throwIfAborted();
        return new FilesystemWriter(fh, { path, full, created }, size, o.signal);
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

  /**
   * The temporary files of writes cut short (StorageDriver.leftovers). One readdir per directory (with
   * entry types, so no lstat of every file as `walk` does) and an lstat per temporary file only.
   */
  async *leftovers(path: string, o?: CallOptions): AsyncGenerator<FileInfo> {
    yield* this.leftoversIn(path, this.full(path, true), true, o);
  }

  private async *leftoversIn(path: string, full: string, top: boolean, o?: CallOptions): AsyncGenerator<FileInfo> {
    const listed = guard(path, o, MISSING, () => readdir(full, { withFileTypes: true }));
    const entries = top ? await listed : await listed.catch(skipMissing);
    for (const e of entries ?? []) {
      const child = childPath(path, e.name);
      if (e.isDirectory()) {
        yield* this.leftoversIn(child, join(full, e.name), false, o);
      } else if (e.isFile() && TEMP_FILE.test(e.name)) {
        const st = await guard(child, o, MISSING, () => lstat(join(full, e.name))).catch(skipMissing);
        if (st !== undefined) yield toInfo(child, st);
      }
    }
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
    // The common case, checked without path.resolve: a valid driver path stays under the root by construction.
    if (isValidPath(path)) return this.root + path;
    const full = resolve(this.root, `.${path}`);
    const inside = full.startsWith(this.root + sep) || (allowRoot && full === this.root);
    if (!path.startsWith('/') || path.includes('\0') || !inside) throw new InvalidPathError(NAME, path);
    return full;
  }
}

/**
 * A file's bytes from an offset, as a Readable over a raw descriptor (the callback API costs about half
 * the CPU per call of FileHandle's, which counts for small ranged reads), read `READ_CHUNK` at a time.
 *
 * A SendableReader (driver.ts), which the driver declares with `capabilities.sendableReaders`:
 * `cap(n)` caps what it yields, so a byte range reads no more than it needs; `sendTo(dest)` writes what
 * it would yield straight to a writable through two buffers, reading into one while the other is being
 * written and reusing each only once the writable has called back for it (the bytes have left for the
 * socket). A download then allocates two buffers instead of one per chunk, which otherwise costs a
 * garbage collection every few dozen megabytes.
 */
class FileReader extends Readable implements SendableReader {
  readonly sendable = true;
  private position: number;
  private remaining = Number.POSITIVE_INFINITY;
  private started = false;
  /** The read in flight, settled either way: the descriptor is closed only after it. */
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly fd: number,
    private readonly path: string,
    offset: number,
  ) {
    super();
    this.position = offset;
  }

  /** Yields at most `length` bytes. @throws when reading has started */
  cap(length: number): this {
    if (this.started) throw new Error('cap() after reading started');
    this.remaining = length;
    return this;
  }

  override _read(): void {
    this.started = true;
    const want = Math.min(READ_CHUNK, this.remaining);
    if (want <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafeSlow(want);
    this.readInto(buf, want).then(
      (n) => {
        this.remaining -= n; // Infinity stays Infinity
        this.push(n === 0 ? null : n === buf.length ? buf : buf.subarray(0, n));
      },
      (err: unknown) => this.destroy(failure(this.path, err)),
    );
  }

  /**
   * Writes everything this reader would yield to `dest` (which must not keep a chunk after calling back
   * for it, as sockets and HTTP responses do not), then closes the file. Rejects when the file ends
   * before a `cap` length, when reading or writing fails, or when either stream is destroyed (an
   * aborted request). @throws when reading has started
   */
  async sendTo(dest: Writable): Promise<void> {
    if (this.started) throw new Error('sendTo() after reading started');
    this.started = true;
    const stopped = this.stopped(dest);
    const size = Math.min(READ_CHUNK, this.remaining);
    const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] as const;
    const writes: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
    try {
      for (let i = 0; this.remaining > 0; i ^= 1) {
        const buf = buffers[i] as Buffer;
        await Promise.race([writes[i], stopped.promise]); // this buffer is free again
        const n = await Promise.race([this.readInto(buf, Math.min(size, this.remaining)), stopped.promise]);
        if (n === 0) {
          if (Number.isFinite(this.remaining)) throw new Error(`file ended ${this.remaining} bytes early`);
          break;
        }
        this.remaining -= n; // Infinity stays Infinity
        writes[i] = writeChunk(dest, n === buf.length ? buf : buf.subarray(0, n));
      }
      await Promise.race([Promise.all(writes), stopped.promise]);
    } catch (err) {
      throw err instanceof DriverError || isAbort(err) ? err : failure(this.path, err);
    } finally {
      stopped.dispose();
      await close(this);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    void this.inFlight.then(() => closeFd(this.fd, (closeErr) => cb(err ?? (closeErr ? toError(closeErr) : null))));
  }

  /** Reads up to `length` bytes at the current position into `buf`; answers how many (0 at the end). */
  private readInto(buf: Buffer, length: number): Promise<number> {
    const read = fdCall<number>((cb) => readFd(this.fd, buf, 0, length, this.position, cb)).then((n) => {
      this.position += n;
      return n;
    });
    this.inFlight = read.then(
      () => undefined,
      () => undefined,
    );
    return read;
  }

  /** A promise that rejects once this reader or `dest` is destroyed or closed before the end. */
  private stopped(dest: Writable): { promise: Promise<never>; dispose(): void } {
    let onStop = (): void => undefined;
    const promise = new Promise<never>((_, reject) => {
      onStop = () => reject(this.errored ?? dest.errored ?? new Error('the stream was closed before the end'));
    });
    promise.catch(() => undefined);
    for (const s of [this, dest]) s.once('close', onStop);
    if (this.destroyed || dest.destroyed) onStop();
    return {
      promise,
      dispose: () => {
        for (const s of [this, dest]) s.off('close', onStop);
      },
    };
  }
}

/** Writes `chunk` to `dest`, settling when `dest` calls back for it. */
function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    dest.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()));
  });
  written.catch(() => undefined); // awaited by sendTo, or dropped once it has failed for another reason
  return written;
}

/** A callback-style fs call as a promise. */
function fdCall<T = void>(call: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * A Writable over an open file handle. Each chunk is written at the end of what is already there before
 * its callback fires, so at most `WRITE_BUFFER` bytes are held in memory. Every `FLUSH_EVERY` bytes a
 * background fdatasync starts (one at a time) so that the disk writes while more bytes arrive; `end()`
 * waits for it and fsyncs, so durability is decided there as before. I/O errors (a failed background
 * flush included) destroy the writer with a DRIVER_FAILURE DriverError.
 */
class FilesystemWriter extends Writable implements FileWriter {
  private written: number;
  /** Bytes appended since the last background flush started. */
  private unflushed = 0;
  /** The background flush in flight, if any; it settles to undefined, keeping a failure in flushError. */
  private flushing: Promise<void> | undefined;
  private flushError: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly at: { readonly path: string; readonly full: string; readonly created: boolean },
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

  /** end(): the bytes, and the file's directory entry when the file is new, become durable. */
  override _final(cb: (err?: Error | null) => void): void {
    const sync = async (): Promise<void> => {
      await this.flushing;
      if (this.flushError !== undefined) throw this.flushError;
      await this.fh.sync();
      if (this.at.created) await syncDir(dirname(this.at.full));
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
    if (this.flushError !== undefined) throw this.flushError;
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.fh.writev(pending, this.written);
      this.written += bytesWritten;
      this.unflushed += bytesWritten;
      pending = dropBytes(pending, bytesWritten);
      if (bytesWritten === 0 && pending.length > 0) throw new Error('write made no progress');
    }
    if (this.unflushed >= FLUSH_EVERY && this.flushing === undefined) this.flushInBackground();
  }

  /** Starts an fdatasync that the writes do not wait for (close() and end() do). */
  private flushInBackground(): void {
    this.unflushed = 0;
    this.flushing = this.fh.datasync().then(
      () => {
        this.flushing = undefined;
      },
      (err: unknown) => {
        this.flushError ??= err;
        this.flushing = undefined;
      },
    );
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
async function close(w: Readable | Writable): Promise<void> {
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

/** A file's bytes and the inode state they were read in (see versionOf). */
interface KeptContent {
  readonly version: string;
  /** The inode's last change (ctime), in nanoseconds since the epoch. */
  readonly changedNs: bigint;
  readonly content: Buffer;
}

/** What identifies a file's state: any write, truncation, rename over it or touch changes one of these. */
function versionOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * The whole content of a small file and the state it was read in: open, fstat, read, close, through
 * the callback API, which costs about half the CPU of FileHandle's per call. The fstat comes before the
 * read, so a change during the read shows as a newer state next time. A read that comes back short ends
 * the file, as it does for Node's own readFile. @throws PathNotFoundError for a directory
 */
async function readWhole(full: string, path: string, o?: CallOptions): Promise<KeptContent> {
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
async function writeSynced(file: string, data: Uint8Array, o?: CallOptions): Promise<void> {
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
async function syncDir(dir: string): Promise<void> {
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

function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function toInfo(path: string, st: Stats): FileInfo {
  const isDir = st.isDirectory();
  return { path, size: isDir ? 0 : st.size, modTime: st.mtime, isDir };
}
