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
 *
 * The driver is split by concern: this file (the StorageDriver), filesystem-reader.ts (FileReader),
 * filesystem-writer.ts (FilesystemWriter) and filesystem-io.ts (descriptor calls, synced writes, errors).
 * - `move` renames and fsyncs the destination's directory.
 * - `delete` with `freeLater` (a repository delete) of a directory renames it out of the tree (into
 *   `berth/discarded/`) and removes its entries in the background (filesystem-discard.ts); without it,
 *   or with blocking reads (an offline command), it removes in place.
 *
 * Defense in depth: every path is resolved against the root and refused (InvalidPathError) if it would
 * leave it, even though `instrument()` has already validated it. `delete` never follows a symlink: removing
 * a symlink removes the link, and a recursive delete does not descend through links. Symlinks that an
 * operator placed on the way (a blob directory on another volume, say) are traversed like directories.
 */
import { close as closeFd, constants, fstat as fstatFd, open as openFd, readFileSync, readdirSync, stat as statPath, statSync } from 'node:fs';
import type { BigIntStats, Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { InvalidOffsetError, InvalidPathError, PathNotFoundError } from './driver.js';
import type { CallOptions, DeleteOptions, DirectoryEntries, FileInfo, FileWriter, LeftoverOptions, SendableReader, StorageDriver, WriterRecord } from './driver.js';
import { isValidPath } from './instrument.js';
import {
  type KeptContent, MISSING, NAME, TEMP_FILE, checkOffset, childPath, errno, fdCall, guard, readWhole, syncDir,
  tempPathFor, toInfo, versionOf, writeSynced,
} from './filesystem-io.js';
import { DISCARDED, Discarder } from './filesystem-discard.js';
import { FileReader } from './filesystem-reader.js';
import { FilesystemWriter } from './filesystem-writer.js';
import { tempFiles, treeOf, walkTree } from './filesystem-walk.js';
import { guardSync, tempFilesSync, treeSync, walkTreeSync } from './filesystem-blocking.js';
import { WriteRecords } from './filesystem-writers.js';
import { SharedStats, isLocalFilesystem } from './filesystem-shared-stat.js';

/** getContent keeps files up to this size (links are 71 bytes) … */
const KEEP_UP_TO = 4 * 1024;
/** … and at most this many of them … */
const KEEP_ENTRIES = 4096;
/** … once they have not changed for this long (2 s: coarser than any filesystem's timestamps). */
const KEEP_AFTER_NS = 2_000_000_000n;

/** Options of the filesystem driver. */
export interface FilesystemDriverOptions {
  /** Directory that driver path `/` maps to; created on the first write if it does not exist. */
  readonly root: string;
  /**
   * Read with blocking calls (getContent, stat, list, walk, tree, leftovers; see filesystem-blocking.ts):
   * for an offline command that owns its process and reads a whole tree, never for a server, whose
   * event loop each call would stop. Writes stay asynchronous.
   */
  readonly blocking?: boolean;
  /**
   * A server that is one of several processes sharing two or more full cores (`http.workers`): the
   * stats that check kept small files stay blocking on a local filesystem while this process writes
   * an upload, instead of going through the thread pool then (filesystem-shared-stat.ts says why).
   */
  readonly blockingStatsWhileWriting?: boolean;
  /**
   * The directory where each writing process keeps its record (filesystem-writers.ts), outside
   * registry:2's tree. Default `<root>/berth/writers`, beside Berth's other files (driver path
   * `/berth/writers`, as `writers` and `forgetWriter` name it in errors).
   */
  readonly writers?: string;
  /**
   * The directory deleted directories are renamed into while their entries are removed (filesystem-discard.ts),
   * outside registry:2's tree and on the root's filesystem. Default `<root>/berth/discarded`.
   */
  readonly discarded?: string;
}

/** Where writing processes keep their records unless told otherwise (FilesystemDriverOptions.writers). */
const WRITERS = '/berth/writers';

/**
 * A driver storing files under `root`. Paths that would resolve outside `root` are refused with
 * InvalidPathError; missing paths give PathNotFoundError; other I/O failures give a DriverError
 * with code DRIVER_FAILURE and the system error as `cause`.
 */
export function createFilesystemDriver({ root, blocking = false, blockingStatsWhileWriting = false, writers, discarded }: FilesystemDriverOptions): StorageDriver {
  const full = resolve(root);
  const discarder = new Discarder(discarded === undefined ? full + DISCARDED : resolve(discarded));
  const stats = new SharedStats(isLocalFilesystem(full), blockingStatsWhileWriting);
  return new FilesystemDriver(full, blocking, stats, writers === undefined ? full + WRITERS : resolve(writers), discarder);
}

class FilesystemDriver implements StorageDriver {
  readonly name = NAME;
  /** Its readers are FileReaders. */
  readonly capabilities = { sendableReaders: true, readsWhileWriting: true } as const;
  /** Small files getContent has read, by full path, each with the inode state it was read in. */
  private readonly kept = new Map<string, KeptContent>();
  /** This process's record of its writes (filesystem-writers.ts). */
  private readonly records: WriteRecords;

  constructor(
    private readonly root: string,
    private readonly blocking: boolean,
    /** The stats that check kept files, shared by concurrent reads of one path (filesystem-shared-stat.ts). */
    private readonly stats: SharedStats,
    writers: string,
    /** Takes deleted directories out of the tree at once and removes them in the background. */
    private readonly discarder: Discarder,
  ) {
    this.records = new WriteRecords(writers);
    // A server's driver removes what a stopped process left to remove; an offline command (blocking,
    // several reading threads at once) deletes in place and leaves that to the next server.
    if (!blocking) this.discarder.sweepLeftBehind();
  }


  /**
   * Reads a small object. Files of up to KEEP_UP_TO bytes (links, `startedat`) are kept once read, and a
   * later read of the same path answers them after one stat instead of open, fstat, read and close, when
   * the stat shows the very same inode state (device, inode, size, and the nanosecond mtime and ctime,
   * which any write, rename over or touch changes). Nothing stale can be answered: the check is made on
   * every read, what is kept was stat'ed before it was read, and only files unchanged for 2 s are kept
   * (so a rewrite cannot share the last change's timestamp tick). On a local filesystem the stat is
   * made at once, blocking (answered from the inode cache); elsewhere concurrent reads of one path
   * share a stat, but only one that started after they were called (SharedStats), so each still sees
   * every change made before it was called.
   */
  async getContent(path: string, o?: CallOptions): Promise<Buffer> {
    const full = this.full(path);
    if (this.blocking) return guardSync(path, o, [...MISSING, 'EISDIR'], () => readFileSync(full));
    return guard(path, o, [...MISSING, 'EISDIR'], async () => {
      const kept = this.kept.get(full);
      if (kept !== undefined) {
        let st: BigIntStats;
        try {
          st = await this.stats.stat(full);
        } catch (err) {
          this.kept.delete(full);
          throw err;
        }
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
      this.records.begin();
      let leftBehind = false;
      try {
        await writeSynced(tmp, data, o);
        o?.signal?.throwIfAborted();
        await rename(tmp, full);
      } catch (err) {
        await rm(tmp, { force: true }).catch((cleanup: unknown) => {
          leftBehind = true;
          throw cleanup;
        });
        throw err;
      } finally {
        this.records.end(leftBehind);
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
      return new FileReader(fd, path, offset, o?.signal);
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
    if (this.blocking) return guardSync(path, o, MISSING, () => toInfo(path, statSync(full)));
    // The callback API: a stat through fs/promises costs more CPU, the more so when it fails (the
    // promise's error gets a stack captured), which the un-prefixed names of a mirror meet on every GET.
    return guard(path, o, MISSING, async () => toInfo(path, await fdCall<Stats>((cb) => statPath(full, cb))));
  }

  async exists(path: string, o?: CallOptions): Promise<boolean> {
    const full = this.full(path, true);
    const answer = async (): Promise<boolean> => {
      // `throwIfNoEntry: false`: a missing path is answered without an error built and thrown.
      if (this.blocking) return guardSync(path, o, MISSING, () => statSync(full, { throwIfNoEntry: false }) !== undefined);
      return guard(path, o, MISSING, async () => (await fdCall<Stats>((cb) => statPath(full, cb)), true));
    };
    try {
      return await answer();
    } catch (err) {
      if (err instanceof PathNotFoundError) return false;
      throw err;
    }
  }

  async list(path: string, o?: CallOptions): Promise<string[]> {
    const full = this.full(path, true);
    const named = (names: string[]): string[] => names.filter((n) => !TEMP_FILE.test(n)).map((n) => childPath(path, n));
    if (this.blocking) return guardSync(path, o, MISSING, () => named(readdirSync(full)));
    return guard(path, o, MISSING, async () => named(await readdir(full)));
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

  async delete(path: string, o?: DeleteOptions): Promise<void> {
    const full = this.full(path);
    await guard(path, o, MISSING, async () => {
      // lstat: a symlink is unlinked, never followed; rm() does the same at every level below. An
      // offline command (blocking) removes in place: the space is free when it exits, as its user expects.
      if (o?.freeLater === true && !this.blocking && (await lstat(full)).isDirectory()) await this.discarder.discard(full);
      else await rm(full, { recursive: true, force: false });
    });
  }

  async *walk(path: string, o?: CallOptions): AsyncGenerator<FileInfo> {
    if (this.blocking) yield* walkTreeSync(path, this.full(path, true), o);
    else yield* walkTree(path, this.full(path, true), o);
  }

  /** StorageDriver.tree: one readdir (with entry types) per directory; a stat only for symlinks and temporary files. */
  async *tree(path: string, o?: CallOptions): AsyncGenerator<DirectoryEntries> {
    if (this.blocking) yield* treeSync(path, this.full(path, true), o);
    else yield* treeOf(path, this.full(path, true), o);
  }

  async during<T>(work: () => Promise<T>): Promise<T> {
    this.records.begin();
    try {
      return await work();
    } finally {
      this.records.end();
    }
  }

  async writers(o?: CallOptions): Promise<readonly WriterRecord[]> {
    return guard(WRITERS, o, [], async () => this.records.list());
  }

  async forgetWriter(name: string, o?: CallOptions): Promise<void> {
    await guard(WRITERS, o, [], async () => this.records.forget(name));
  }

  /**
   * The temporary files of writes cut short (StorageDriver.leftovers). One readdir per directory (with
   * entry types, so no lstat of every file as `walk` does) and an lstat per temporary file only.
   */
  async *leftovers(path: string, o?: LeftoverOptions): AsyncGenerator<FileInfo> {
    if (this.blocking) yield* tempFilesSync(path, this.full(path, true), true, o);
    else yield* tempFiles(path, this.full(path, true), true, o);
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
