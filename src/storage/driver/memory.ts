/**
 * The in-memory driver, for tests and throwaway registries (registry:2's `inmemory`).
 *
 * State is one Map from file path to content. Directories are implied: a path is a directory when some
 * file lies under it, so deleting the last file of a directory removes the directory, and the root `/`
 * always exists (it lists as empty). Content is held as immutable chunks, copied on the way in and on
 * the way out, so no caller can change stored bytes; appends add chunks without copying the old ones.
 *
 * It follows the filesystem driver's semantics exactly where the contract leaves room: creating a file
 * over a directory, or under a file, fails with DRIVER_FAILURE; a writer creates (or truncates) its file
 * when it opens; a writer destroyed before `end()` keeps the bytes it had accepted.
 */
import { Readable, Writable, addAbortSignal } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DriverError, InvalidOffsetError, InvalidPathError, PathNotFoundError } from './driver.js';
import type { CallOptions, FileInfo, FileWriter, StorageDriver } from './driver.js';

const NAME = 'inmemory';
/** Largest chunk a reader emits. */
const READ_CHUNK = 1 << 20;
/** Bytes a writer may hold before `write()` returns false. */
const WRITE_BUFFER = 1 << 20;

/** A file: its bytes as chunks that are never mutated once stored. */
interface MemoryFile {
  readonly chunks: readonly Buffer[];
  readonly size: number;
  readonly modTime: Date;
}

/** Where a writer publishes what it has written. */
interface WriterTarget {
  publish(file: MemoryFile): void;
  remove(): void;
}

/** A new, empty in-memory driver (name `inmemory`). Each call returns an independent store. */
export function createMemoryDriver(): StorageDriver {
  return new MemoryDriver();
}

class MemoryDriver implements StorageDriver {
  readonly name = NAME;
  private readonly files = new Map<string, MemoryFile>();

  async getContent(path: string, o?: CallOptions): Promise<Buffer> {
    o?.signal?.throwIfAborted();
    return Buffer.concat(this.file(path).chunks); // always a fresh copy
  }

  async putContent(path: string, data: Uint8Array, o?: CallOptions): Promise<void> {
    o?.signal?.throwIfAborted();
    this.assertCanCreate(path);
    this.files.set(path, { chunks: [Buffer.from(data)], size: data.byteLength, modTime: new Date() });
  }

  async reader(path: string, offset: number, o?: CallOptions): Promise<Readable> {
    o?.signal?.throwIfAborted();
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(NAME, path, offset);
    const file = this.file(path);
    if (offset > file.size) throw new InvalidOffsetError(NAME, path, offset);
    const stream = Readable.from(copiesFrom(file.chunks, offset), { objectMode: false });
    return o?.signal ? addAbortSignal(o.signal, stream) : stream;
  }

  async writer(path: string, o: CallOptions & { append: boolean }): Promise<FileWriter> {
    o.signal?.throwIfAborted();
    this.assertCanCreate(path);
    let base = o.append ? this.files.get(path) : undefined;
    if (base === undefined) {
      base = { chunks: [], size: 0, modTime: new Date() };
      this.files.set(path, base);
    }
    const target: WriterTarget = {
      publish: (file) => this.files.set(path, file),
      remove: () => this.files.delete(path),
    };
    return new MemoryWriter(base, target, path, o.signal);
  }

  async stat(path: string, o?: CallOptions): Promise<FileInfo> {
    o?.signal?.throwIfAborted();
    const file = this.files.get(path);
    if (file !== undefined) return { path, size: file.size, modTime: file.modTime, isDir: false };
    let modTime: Date | undefined;
    for (const [, f] of this.filesUnder(path)) if (modTime === undefined || f.modTime > modTime) modTime = f.modTime;
    if (modTime === undefined && path !== '/') throw new PathNotFoundError(NAME, path);
    return { path, size: 0, modTime: modTime ?? new Date(0), isDir: true };
  }

  async list(path: string, o?: CallOptions): Promise<string[]> {
    o?.signal?.throwIfAborted();
    const children = new Set<string>();
    const pre = dirPrefix(path);
    for (const [key] of this.filesUnder(path)) children.add(pre + (key.slice(pre.length).split('/')[0] ?? ''));
    if (children.size === 0 && path !== '/') throw new PathNotFoundError(NAME, path);
    return [...children];
  }

  async move(from: string, to: string, o?: CallOptions): Promise<void> {
    o?.signal?.throwIfAborted();
    const file = this.files.get(from);
    const under = [...this.filesUnder(from)];
    if (file === undefined && under.length === 0) throw new PathNotFoundError(NAME, from);
    if (from === to) return;
    if (file === undefined) {
      // A directory, as rename(2) does it: not into itself, not onto a file or a non-empty directory.
      if (to.startsWith(dirPrefix(from))) throw failure(to, `cannot move ${from} into itself`);
      if (this.files.has(to)) throw failure(to, 'not a directory');
    }
    this.assertCanCreate(to);
    if (file !== undefined) {
      this.files.delete(from);
      this.files.set(to, file);
      return;
    }
    for (const [key, f] of under) {
      this.files.delete(key);
      this.files.set(to + key.slice(from.length), f);
    }
  }

  async delete(path: string, o?: CallOptions): Promise<void> {
    o?.signal?.throwIfAborted();
    if (path === '/') throw new InvalidPathError(NAME, path);
    if (this.files.delete(path)) return;
    const under = [...this.filesUnder(path)];
    if (under.length === 0) throw new PathNotFoundError(NAME, path);
    for (const [key] of under) this.files.delete(key);
  }

  walk(path: string, o?: CallOptions): AsyncIterable<FileInfo> {
    return this.walkFrom(path, o);
  }

  /** A snapshot of everything under `path`, taken at the first iteration, in depth-first pre-order. */
  private async *walkFrom(path: string, o?: CallOptions): AsyncGenerator<FileInfo> {
    o?.signal?.throwIfAborted();
    const entries = new Map<string, FileInfo>();
    const pre = dirPrefix(path);
    for (const [key, file] of this.filesUnder(path)) {
      entries.set(key, { path: key, size: file.size, modTime: file.modTime, isDir: false });
      for (const dir of ancestorsOf(key)) {
        if (!dir.startsWith(pre)) break;
        const seen = entries.get(dir);
        if (seen === undefined || seen.modTime < file.modTime) {
          entries.set(dir, { path: dir, size: 0, modTime: file.modTime, isDir: true });
        }
      }
    }
    if (entries.size === 0 && path !== '/') throw new PathNotFoundError(NAME, path);
    for (const key of [...entries.keys()].sort(bySegments)) {
      o?.signal?.throwIfAborted();
      const info = entries.get(key);
      if (info !== undefined) yield info;
    }
  }

  /** The file at `path`. @throws PathNotFoundError, also for a directory. */
  private file(path: string): MemoryFile {
    const file = this.files.get(path);
    if (file === undefined) throw new PathNotFoundError(NAME, path);
    return file;
  }

  /** Refuses, as the filesystem would, to create a file over a directory or below a file. */
  private assertCanCreate(path: string): void {
    if (path === '/') throw new InvalidPathError(NAME, path);
    if (!this.filesUnder(path).next().done) throw failure(path, 'is a directory');
    for (const dir of ancestorsOf(path)) {
      if (this.files.has(dir)) throw failure(path, `not a directory: ${dir}`);
    }
  }

  /** Every file strictly below `path`. */
  private *filesUnder(path: string): Generator<[string, MemoryFile]> {
    const pre = dirPrefix(path);
    for (const entry of this.files) if (entry[0].startsWith(pre)) yield entry;
  }
}

/**
 * Collects chunks as they are written and publishes them on `end()`, or when destroyed (an abort
 * keeps what was accepted, as a file would), never after `cancel()`.
 */
class MemoryWriter extends Writable implements FileWriter {
  private readonly chunks: Buffer[];
  private published: number;
  private written: number;
  private cancelled = false;

  constructor(
    base: MemoryFile,
    private readonly target: WriterTarget,
    private readonly path: string,
    signal: AbortSignal | undefined,
  ) {
    super({ highWaterMark: WRITE_BUFFER });
    this.chunks = [...base.chunks];
    this.published = this.chunks.length;
    this.written = base.size;
    if (signal) addAbortSignal(signal, this);
  }

  get size(): number {
    return this.written;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk)); // the caller may reuse its buffer once called back
    this.written += chunk.length;
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.publish();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.cancelled) this.publish();
    cb(err);
  }

  /** Ends the writer if needed; the content is then in place. */
  async commit(): Promise<void> {
    if (this.writableFinished) return;
    if (this.destroyed) throw this.errored ?? failure(this.path, 'writer destroyed before end()');
    if (!this.writableEnded) this.end();
    await finished(this, { readable: false });
  }

  /** Stops the writer and removes the file. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    if (!this.closed) {
      const closed = new Promise<void>((res) => this.once('close', () => res()));
      if (!this.destroyed) this.destroy();
      await closed;
    }
    this.target.remove();
  }

  private publish(): void {
    if (this.published === this.chunks.length) return;
    this.target.publish({ chunks: [...this.chunks], size: this.written, modTime: new Date() });
    this.published = this.chunks.length;
  }
}

/** Copies of the bytes from `offset` on, at most READ_CHUNK at a time. */
function* copiesFrom(chunks: readonly Buffer[], offset: number): Generator<Buffer> {
  let skip = offset;
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    for (let i = skip; i < chunk.length; i += READ_CHUNK) yield Buffer.from(chunk.subarray(i, i + READ_CHUNK));
    skip = 0;
  }
}

/** `/a/b/c` → `/a/b`, `/a` (the root excluded). */
function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) out.push(path.slice(0, i));
  return out;
}

/** The prefix every path strictly below `path` starts with. */
function dirPrefix(path: string): string {
  return path === '/' ? '/' : `${path}/`;
}

/** Orders paths segment by segment, so a directory comes right before what is under it. */
function bySegments(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const [s, t] = [x[i] ?? '', y[i] ?? ''];
    if (s !== t) return s < t ? -1 : 1;
  }
  return x.length - y.length;
}

function failure(path: string, message: string): DriverError {
  return new DriverError('DRIVER_FAILURE', NAME, `${path}: ${message}`);
}
