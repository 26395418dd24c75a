/**
 * The storage driver contract: a filesystem-like object store that knows nothing of registries.
 *
 * Paths are absolute, slash-separated and relative to the driver's own root: they match
 * `/^(\/[A-Za-z0-9._-]+)+$/` and never contain a `.` or `..` segment (`instrument()` enforces this
 * before any driver sees a path). `/` alone names the root for `list` and `walk`.
 *
 * Drivers throw only the DriverError classes below (and the AbortError of an aborted call); the storage
 * layer turns them into registry errors. A driver also refuses, with InvalidPathError, any path that
 * would leave its root, even one that got past `instrument()`. Whether a file may be created over a
 * directory, or below a file, is driver-specific (filesystem: DRIVER_FAILURE; object stores may allow
 * it); callers must not rely on either.
 * This is CNCF distribution's StorageDriver contract made asynchronous, with an AbortSignal per call.
 */
import type { Readable, Writable } from 'node:stream';

/**
 * Options every driver call accepts. An aborted signal stops I/O and rejects the call with the signal's
 * reason (an AbortError), which is the one rejection that is not a DriverError.
 */
export type CallOptions = { signal?: AbortSignal };

/**
 * The error a stream stopped by an aborted signal fails with when it must make its own: named as Node's
 * own AbortError (what callers look for by name), the signal's reason as its cause.
 */
export function abortError(signal: AbortSignal | undefined): Error {
  const err = new Error('The operation was aborted', { cause: signal?.reason });
  err.name = 'AbortError';
  return err;
}

/**
 * Options of `reader`: with `length`, at most that many bytes from the offset will be read (a byte
 * range), so a driver that fetches ahead need fetch no more. The stream may still yield more.
 */
export type ReaderOptions = CallOptions & { length?: number };

/**
 * Options of `delete`: with `freeLater`, the caller does not need the space back before the call
 * resolves (a repository delete), so a driver may take the path out of the tree at once and remove
 * what it held afterwards (the filesystem driver does: filesystem-discard.ts).
 */
export type DeleteOptions = CallOptions & { freeLater?: boolean };

/** What `stat` and `walk` report of one path. */
export interface FileInfo {
  readonly path: string;
  /** Bytes for a file; 0 for a directory. */
  readonly size: number;
  readonly modTime: Date;
  readonly isDir: boolean;
}

/** One directory of a `tree` walk: the names in it by kind. */
export interface DirectoryEntries {
  /** The directory's driver path. */
  readonly path: string;
  /** Its subdirectories, each listed later in the same walk (a symlink to a directory is not followed). */
  readonly dirs: readonly string[];
  /** Every other entry (files, symlinks to files), the driver's temporary files left out. */
  readonly files: readonly string[];
  /** The driver's temporary files in it (see `leftovers`), with their state. */
  readonly temps: readonly FileInfo[];
}

/** A process writing through a driver's tree, as its record says (`StorageDriver.writers`). */
export interface WriterRecord {
  /** The record's name, for `forgetWriter`. */
  readonly name: string;
  /**
   * `running`: the process is alive on this machine; `gone`: it is not (it exited in the middle of a
   * write, or died): what it was writing may have been cut short; `unknown`: another machine's process.
   */
  readonly state: 'running' | 'gone' | 'unknown';
  /** The process left a temporary file behind while alive (a failed write whose cleanup failed too). */
  readonly dirty: boolean;
}

/** Options of `leftovers`. */
export interface LeftoverOptions extends CallOptions {
  /** Directories (driver paths) not to look in, nor under: a caller that has already looked there. */
  readonly skip?: ReadonlySet<string>;
}

/** Options of `writer`. */
export interface WriterOptions extends CallOptions {
  /** Continue after the file's last byte (true) or replace the file (false). */
  readonly append: boolean;
  /**
   * How many bytes the caller means to write through this writer (a request's Content-Length), when
   * it knows. A hint: a driver may hold less in memory with it (the s3 driver's parts), and a writer
   * given a different number of bytes still stores exactly what it was given.
   */
  readonly expectedBytes?: number;
}

/**
 * A writer for large content (upload data). It respects backpressure: a write is called back only once
 * its bytes are in the file or in a bounded buffer. Bytes written are durable once `end()` has finished
 * (the writer flushes and syncs), and a later `writer(path, { append: true })` continues after them.
 * A writer destroyed before `end()` (its signal aborted, an error) keeps a prefix of what it was given,
 * possibly all of it; the `size` of a later append writer says how much.
 */
export interface FileWriter extends Writable {
  /** Bytes in the file so far, counting those written through this writer. */
  readonly size: number;
  /**
   * Makes the content final and visible at its path. Call after `end()` has finished; if `end()` was
   * not called, commit() calls it and waits. Rejects if the writer was destroyed first.
   */
  commit(): Promise<void>;
  /** Discards the content (what was there before included) and removes the file; before or after end(). */
  cancel(): Promise<void>;
}

/**
 * Optional features a driver declares, so that callers (and the shared suite) branch on what a driver
 * offers rather than on its name. A driver without `capabilities` offers none of them.
 */
export interface DriverCapabilities {
  /** Every stream `reader` answers is a SendableReader (the filesystem driver's are). */
  readonly sendableReaders?: boolean;
  /**
   * A reader of a file that an appending writer is still writing (before its commit) gets every byte
   * written so far, at the path the writer writes to (the filesystem driver's are; an S3 upload's parts
   * cannot be read before it completes).
   */
  readonly readsWhileWriting?: boolean;
}

/**
 * A reader that can do more than Readable, offered by drivers declaring `sendableReaders`. Both
 * methods may be called only before anything has been read (else they throw):
 * - `cap(n)` makes the stream end after `n` bytes (a byte range), reading no more than it needs;
 * - `sendTo(dest)` writes everything the stream would yield to `dest`, a writable that drops each chunk
 *   once it has called back for it (a socket, an HTTP response), through a couple of reused buffers,
 *   then closes the stream. It rejects when the file ends before a cap, when reading or writing fails,
 *   or when either stream is destroyed; `dest` is left open (the caller ends it).
 */
export interface SendableReader extends Readable {
  /** Marks the stream as one of these (see isSendable). */
  readonly sendable: true;
  cap(length: number): this;
  sendTo(dest: Writable): Promise<void>;
}

/** Whether `s` is a SendableReader (a driver with `sendableReaders` made it). */
export function isSendable(s: Readable): s is SendableReader {
  return 'sendable' in s && s.sendable === true;
}

export interface StorageDriver {
  readonly name: string;
  /** Optional features this driver offers (see DriverCapabilities); none when absent. */
  readonly capabilities?: DriverCapabilities;
  /**
   * Whole content of a small object (links, manifests, `startedat`), as a buffer the caller owns.
   * @throws PathNotFoundError when there is no file at `path` (a directory is not a file).
   */
  getContent(path: string, o?: CallOptions): Promise<Buffer>;
  /**
   * Replaces the object at `path` atomically: a reader sees the old bytes or the new, never a part.
   * Parents are created. `data` is copied; the caller may reuse it once the call resolves.
   */
  putContent(path: string, data: Uint8Array, o?: CallOptions): Promise<void>;
  /**
   * Writes `data` at `path` only if no object is there (a conditional write, S3's `If-None-Match: *`),
   * so that of several processes creating one object at once exactly one wins and every other reads
   * the winner's. Resolves true when this call created the object, false when one was there (or
   * another writer's conditional write of it was under way). Drivers that cannot do it atomically
   * across processes do not have it.
   */
  createContent?(path: string, data: Uint8Array, o?: CallOptions): Promise<boolean>;
  /**
   * A stream of the file from `offset`. Resolves once the file is open; rejects before any byte flows.
   * An offset equal to the size gives an empty stream. Aborting the signal destroys the stream.
   * With `capabilities.sendableReaders` the stream is a SendableReader.
   * @throws PathNotFoundError, InvalidOffsetError (offset beyond the end, negative or not an integer).
   */
  reader(path: string, offset: number, o?: ReaderOptions): Promise<Readable>;
  /**
   * A writer that replaces the file (`append: false`) or continues after its last byte (`append: true`;
   * a missing file starts empty). Parents are created. Aborting the signal destroys the writer.
   */
  writer(path: string, o: WriterOptions): Promise<FileWriter>;
  /** What is at `path`, file or directory. @throws PathNotFoundError */
  stat(path: string, o?: CallOptions): Promise<FileInfo>;
  /**
   * Whether anything (file or directory) is at `path`: `stat` answered as a yes or no, for a driver
   * that can tell without building a FileInfo or throwing for a missing path (the filesystem: on a
   * walk through a whole tree, where most such answers are "no", that costs a fraction of a failed
   * stat or a listing; issue #19). Drivers without it: use `stat`.
   */
  exists?(path: string, o?: CallOptions): Promise<boolean>;
  /**
   * Names of the direct children of a directory (files and directories), as full paths, in no
   * particular order: `list('/a')` → `['/a/b', '/a/c']`. `/` lists the root, which is empty, or missing
   * (PathNotFoundError) on a driver that has never been written to, depending on the driver.
   * @throws PathNotFoundError when the directory does not exist or `path` is a file.
   */
  list(path: string, o?: CallOptions): Promise<string[]>;
  /**
   * Moves a file, replacing any file at `to`; parents of `to` are created.
   * @throws PathNotFoundError when there is nothing at `from` (and then creates nothing).
   */
  move(from: string, to: string, o?: CallOptions): Promise<void>;
  /** Removes a file or a directory with everything under it. @throws PathNotFoundError */
  delete(path: string, o?: DeleteOptions): Promise<void>;
  /**
   * Every file and directory under `path` (not `path` itself), depth first (a directory before what is
   * under it), otherwise in no particular order. Calling never throws; errors reject the iteration.
   * @throws PathNotFoundError on iteration when `path` is missing or is a file.
   */
  walk(path: string, o?: CallOptions): AsyncIterable<FileInfo>;
  /**
   * The driver's own temporary files under `path` (recursively), which `list` and `walk` never show:
   * what a write cut short by a crash left behind (the filesystem driver writes `.<name>.<16 hex>.tmp`
   * beside a target, then renames it). Each may be removed with `delete`. Drivers whose writes leave
   * nothing behind (inmemory, s3) do not have it. Errors reject the iteration, as `walk`'s do.
   */
  leftovers?(path: string, o?: LeftoverOptions): AsyncIterable<FileInfo>;
  /**
   * Every directory under `path`, `path` itself first, each with the names in it by kind, listed once
   * and without a stat of each entry: cheaper than `walk` where names are all that matters. Offered by
   * drivers whose directories are real (filesystem); callers fall back on `walk`. Errors reject the
   * iteration; an entry removed while the walk runs is skipped.
   * @throws PathNotFoundError on iteration when `path` is missing or is a file.
   */
  tree?(path: string, o?: CallOptions): AsyncIterable<DirectoryEntries>;
  /**
   * Runs `work`, a write in several steps (a tag's index link, then its current link), so that a crash
   * in the middle of it is recorded as a write cut short, as one inside `putContent` is (`writers`).
   * Offered by drivers that have `writers`; callers without it just run `work`.
   */
  during?<T>(work: () => Promise<T>): Promise<T>;
  /**
   * The records of the processes that write (or wrote) through this tree and may have left temporary
   * files or multi-step writes cut short (see `leftovers`): a process that exits with nothing in flight
   * removes its own; one that dies keeps it. Offered by drivers that have `leftovers`.
   */
  writers?(o?: CallOptions): Promise<readonly WriterRecord[]>;
  /** Removes a record `writers` judged `gone`, once what its process may have left is gone too. */
  forgetWriter?(name: string, o?: CallOptions): Promise<void>;
  /** A URL a client may fetch the file from directly, or undefined to have the server stream it. */
  redirectUrl?(path: string, method: 'GET' | 'HEAD'): Promise<string | undefined>;
}

/** Stable codes for driver failures, so callers branch on `code` rather than on classes or messages. */
export type DriverErrorCode = 'PATH_NOT_FOUND' | 'INVALID_PATH' | 'INVALID_OFFSET' | 'DRIVER_FAILURE';

/** Base of every error a driver throws. `driver` names the driver it came from. */
export class DriverError extends Error {
  constructor(
    readonly code: DriverErrorCode,
    readonly driver: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${driver}: ${message}`, options);
    this.name = new.target.name;
  }
}

export class PathNotFoundError extends DriverError {
  constructor(driver: string, readonly path: string, options?: ErrorOptions) {
    super('PATH_NOT_FOUND', driver, `path not found: ${path}`, options);
  }
}

export class InvalidPathError extends DriverError {
  constructor(driver: string, readonly path: string) {
    super('INVALID_PATH', driver, `invalid path: ${JSON.stringify(path)}`);
  }
}

export class InvalidOffsetError extends DriverError {
  constructor(driver: string, readonly path: string, readonly offset: number) {
    super('INVALID_OFFSET', driver, `invalid offset ${offset} for ${path}`);
  }
}

/** True when `err` is a DriverError of the given code. */
export function isDriverError(err: unknown, code: DriverErrorCode): err is DriverError {
  return err instanceof DriverError && err.code === code;
}
