/**
 * An endpoint's queue on disk: a journal that survives restarts (registry:2 keeps its queues in memory
 * and loses them).
 *
 * Layout of the queue's directory (`<rootdirectory>/berth/notifications/<endpoint>/`):
 *   `000000000001.log`, `000000000002.log`, …  segments: one event JSON per line, appended in order
 *   `cursor`                                     `<segment> <offset>`: where the first unacknowledged event starts
 *
 * - Appends are group-committed: lines accepted while a write is under way go out together in the next
 *   write, each write is followed by fdatasync, and `append`'s `durable` resolves after it. Only synced
 *   bytes are ever read back for delivery.
 * - The tail segment rolls over past `segmentBytes`; a segment is deleted once every event in it was
 *   acknowledged (and a new one is started at each open, so a torn tail is never appended to).
 * - The cursor is saved lazily (at most every 200 ms, and at close), not synced: after a crash the
 *   cursor may lag, and the events after it are delivered again. Delivery is therefore at least once;
 *   after a clean close nothing is delivered twice.
 * - At open, a segment whose last line was torn by a crash is cut back to its last complete line.
 * - The queue holds at most `maxBytes` of segments; beyond that `append` refuses new events (the
 *   caller counts and logs them). Write errors (a full disk) lose the lines of that write, which are
 *   reported to `onLost`; the segment is cut back to its last good size.
 */
import { type FileHandle, mkdir, open, readFile, readdir, rename, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { type AppendResult, type EventQueue, type QueuedEvent, waitFor } from './queue.js';

export interface FileQueueOptions {
  readonly dir: string;
  /** The most bytes of segments the queue keeps; appends beyond are refused. */
  readonly maxBytes: number;
  /** A segment is closed and a new one started once it is this large. */
  readonly segmentBytes: number;
  readonly log: Logger;
  /** Told how many accepted lines a failed write lost. */
  readonly onLost?: (count: number) => void;
}

interface Segment {
  readonly seq: number;
  /** Bytes on disk and synced: whole lines only. */
  size: number;
}

interface Position {
  seq: number;
  offset: number;
}

/** A queued event with where it ends, so acknowledging it moves the cursor there. */
interface Entry extends QueuedEvent {
  readonly seq: number;
  readonly end: number;
}

const SEGMENT_FILE = /^(\d{12})\.log$/;
const CURSOR_FILE = 'cursor';
const READ_CHUNK = 1024 * 1024;
const CURSOR_SAVE_DELAY_MS = 200;
const NEWLINE = 0x0a;

const segmentName = (seq: number): string => `${String(seq).padStart(12, '0')}.log`;

/** Opens (creating if needed) the queue in `o.dir`, recovering what an earlier run left. */
export async function openFileQueue(o: FileQueueOptions): Promise<EventQueue> {
  await mkdir(o.dir, { recursive: true });
  const recovered = await recover(o);
  const seq = (recovered.segments.at(-1)?.seq ?? 0) + 1;
  const handle = await open(join(o.dir, segmentName(seq)), 'wx');
  await syncDir(o.dir);
  recovered.segments.push({ seq, size: 0 });
  if (recovered.segments[0]?.seq === seq) recovered.cursor = { seq, offset: 0 };
  return new FileQueue(o, recovered.segments, recovered.cursor, recovered.pending, handle);
}

/** Segments from the cursor on (earlier ones deleted, torn tails cut), and how many events they hold. */
async function recover(o: FileQueueOptions): Promise<{ segments: Segment[]; cursor: Position; pending: number }> {
  const seqs = (await readdir(o.dir))
    .map((name) => SEGMENT_FILE.exec(name)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  let cursor = await readCursor(o.dir);
  // A cursor past every segment cannot be right (a damaged file): keep everything rather than lose it.
  if (cursor !== undefined && cursor.seq > (seqs.at(-1) ?? 0)) cursor = undefined;
  const segments: Segment[] = [];
  let pending = 0;
  for (const seq of seqs) {
    const path = join(o.dir, segmentName(seq));
    if (cursor !== undefined && seq < cursor.seq) {
      await unlink(path);
      continue;
    }
    const data = await readFile(path);
    const size = data.lastIndexOf(NEWLINE) + 1;
    if (size < data.length) {
      o.log.warn('notification queue: cut an incomplete last line (an interrupted write)', { file: path, bytes: data.length - size });
      await truncate(path, size);
    }
    if (size === 0) {
      await unlink(path);
      continue;
    }
    const start = cursor?.seq === seq ? Math.min(cursor.offset, size) : 0;
    pending += countLines(data.subarray(start, size));
    segments.push({ seq, size });
  }
  // Segments before the cursor are gone, so a cursor not on the first segment points at one that was
  // deleted (fully delivered, or empty): delivery starts at the first segment left.
  const first = segments[0];
  if (first !== undefined && cursor?.seq !== first.seq) cursor = { seq: first.seq, offset: 0 };
  return { segments, cursor: cursor ?? { seq: 0, offset: 0 }, pending };
}

async function readCursor(dir: string): Promise<Position | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, CURSOR_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const m = /^(\d+) (\d+)\n?$/.exec(text);
  return m ? { seq: Number(m[1]), offset: Number(m[2]) } : undefined;
}

function countLines(data: Uint8Array): number {
  let n = 0;
  for (let i = data.indexOf(NEWLINE); i >= 0; i = data.indexOf(NEWLINE, i + 1)) n += 1;
  return n;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

class FileQueue implements EventQueue {
  private readonly readAhead: Entry[] = [];
  private readPos: Position;
  private totalBytes: number;
  private pendingCount: number;
  private closed = false;
  /** Accepted lines not yet written, their bytes, and who waits for them to be durable. */
  private writeLines: string[] = [];
  private writeBytes = 0;
  private writeWaiters: (() => void)[] = [];
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  /** Moves on every durable write, so a reader can tell it missed one while it was reading. */
  private writeVersion = 0;
  private readonly readers = new Set<() => void>();
  private cursorTimer: NodeJS.Timeout | undefined;
  private cursorSave: Promise<void> = Promise.resolve();
  private reading: Promise<boolean> | undefined;

  constructor(
    private readonly o: FileQueueOptions,
    private readonly segments: Segment[],
    private cursor: Position,
    pending: number,
    private handle: FileHandle,
  ) {
    this.readPos = { ...cursor };
    this.totalBytes = segments.reduce((n, s) => n + s.size, 0);
    this.pendingCount = pending;
  }

  get pending(): number {
    return this.pendingCount;
  }

  append(line: string): AppendResult {
    const size = Buffer.byteLength(line) + 1;
    if (this.closed || this.usedBytes() + this.writeBytes + size > this.o.maxBytes) {
      return { accepted: false, durable: Promise.resolve() };
    }
    this.writeLines.push(line);
    this.writeBytes += size;
    this.pendingCount += 1;
    const durable = new Promise<void>((resolve) => this.writeWaiters.push(resolve));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Lines accepted in the same turn of the event loop share one write and one sync.
      setImmediate(() => {
        this.flushScheduled = false;
        void this.flush();
      });
    }
    return { accepted: true, durable };
  }

  /** Bytes of undelivered events on disk (the delivered start of the head segment does not count). */
  private usedBytes(): number {
    return this.totalBytes - (this.segments[0]?.seq === this.cursor.seq ? this.cursor.offset : 0);
  }

  async next(signal?: AbortSignal): Promise<QueuedEvent | undefined> {
    for (;;) {
      if (this.closed || signal?.aborted === true) return undefined;
      const head = this.readAhead[0];
      if (head !== undefined) return head;
      const version = this.writeVersion;
      if (await this.fill()) continue;
      if (this.writeVersion === version && !this.closed) await waitFor(this.readers, signal);
    }
  }

  ack(event: QueuedEvent): void {
    const head = this.readAhead[0];
    if (head === undefined || head !== event) throw new Error('ack of an event that is not at the head of the queue');
    this.readAhead.shift();
    this.pendingCount -= 1;
    this.cursor = { seq: head.seq, offset: head.end };
    this.dropConsumedSegments();
    this.scheduleCursorSave();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeReaders();
    while (this.flushing !== undefined || this.writeLines.length > 0) await this.flush();
    clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    await this.saveCursor();
    await this.handle.close();
  }

  // ---- writing ----

  private flush(): Promise<void> {
    this.flushing ??= this.writeAll().finally(() => {
      this.flushing = undefined;
      if (this.writeLines.length > 0 && !this.closed) void this.flush();
    });
    return this.flushing;
  }

  private async writeAll(): Promise<void> {
    while (this.writeLines.length > 0) {
      const lines = this.writeLines;
      const waiters = this.writeWaiters;
      this.writeLines = [];
      this.writeWaiters = [];
      const data = Buffer.from(`${lines.join('\n')}\n`);
      this.writeBytes -= data.length;
      try {
        await this.writeBatch(data);
      } catch (err) {
        this.pendingCount -= lines.length;
        this.o.log.error('notification queue: write failed; these events are lost', { dir: this.o.dir, events: lines.length, err });
        this.o.onLost?.(lines.length);
      } finally {
        for (const resolve of waiters) resolve();
      }
    }
  }

  private async writeBatch(data: Buffer): Promise<void> {
    let tail = this.tail();
    if (tail.size > 0 && tail.size + data.length > this.o.segmentBytes) tail = await this.rollover(tail);
    try {
      for (let done = 0; done < data.length;) {
        const { bytesWritten } = await this.handle.write(data, done, data.length - done, tail.size + done);
        done += bytesWritten;
      }
      await this.handle.datasync();
    } catch (err) {
      await this.handle.truncate(tail.size).catch(() => undefined);
      throw err;
    }
    tail.size += data.length;
    this.totalBytes += data.length;
    this.writeVersion += 1;
    this.wakeReaders();
  }

  private tail(): Segment {
    const tail = this.segments.at(-1);
    if (tail === undefined) throw new Error('unreachable: a file queue always has a tail segment');
    return tail;
  }

  private async rollover(old: Segment): Promise<Segment> {
    const next: Segment = { seq: old.seq + 1, size: 0 };
    const handle = await open(join(this.o.dir, segmentName(next.seq)), 'wx');
    await syncDir(this.o.dir);
    const previous = this.handle;
    this.handle = handle;
    this.segments.push(next);
    await previous.close();
    return next;
  }

  private wakeReaders(): void {
    for (const wake of this.readers) wake();
    this.readers.clear();
  }

  // ---- reading ----

  /** Reads the next durable lines into readAhead; false when there are none yet. */
  private fill(): Promise<boolean> {
    this.reading ??= this.readMore().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async readMore(): Promise<boolean> {
    for (;;) {
      const index = this.segments.findIndex((s) => s.seq >= this.readPos.seq);
      const segment = this.segments[index];
      if (segment === undefined) return false;
      if (segment.seq !== this.readPos.seq) this.readPos = { seq: segment.seq, offset: 0 };
      if (this.readPos.offset >= segment.size) {
        const following = this.segments[index + 1];
        if (following === undefined) return false;
        this.readPos = { seq: following.seq, offset: 0 };
        continue;
      }
      const start = this.readPos.offset;
      const data = await this.readLines(segment, start);
      let lineStart = 0;
      for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, lineStart)) {
        const line = data.subarray(lineStart, nl).toString('utf8');
        lineStart = nl + 1;
        if (line !== '') this.readAhead.push({ line, position: start + lineStart, seq: segment.seq, end: start + lineStart });
      }
      this.readPos = { seq: segment.seq, offset: start + lineStart };
      if (this.readAhead.length > 0) return true;
    }
  }

  /** Whole lines of `segment` from `start`: about READ_CHUNK bytes, more when one line is longer. */
  private async readLines(segment: Segment, start: number): Promise<Buffer> {
    const handle = await open(join(this.o.dir, segmentName(segment.seq)), 'r');
    try {
      for (let want = READ_CHUNK; ; want *= 2) {
        const length = Math.min(want, segment.size - start);
        const buffer = Buffer.alloc(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handle.read(buffer, got, length - got, start + got);
          if (bytesRead === 0) throw new Error(`notification queue segment ${segmentName(segment.seq)} is shorter than expected`);
          got += bytesRead;
        }
        const last = buffer.lastIndexOf(NEWLINE);
        if (last >= 0) return buffer.subarray(0, last + 1);
        if (length === segment.size - start) return buffer.subarray(0, 0);
      }
    } finally {
      await handle.close();
    }
  }

  // ---- acknowledging ----

  /** Deletes head segments every event of which was acknowledged (never the tail). */
  private dropConsumedSegments(): void {
    for (;;) {
      const head = this.segments[0];
      const following = this.segments[1];
      if (head === undefined || following === undefined) return;
      if (head.seq > this.cursor.seq || (head.seq === this.cursor.seq && this.cursor.offset < head.size)) return;
      this.segments.shift();
      this.totalBytes -= head.size;
      if (this.cursor.seq <= head.seq) this.cursor = { seq: following.seq, offset: 0 };
      const path = join(this.o.dir, segmentName(head.seq));
      unlink(path).catch((err: unknown) => this.o.log.warn('notification queue: cannot delete a delivered segment', { file: path, err }));
    }
  }

  private scheduleCursorSave(): void {
    if (this.cursorTimer !== undefined || this.closed) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      void this.saveCursor();
    }, CURSOR_SAVE_DELAY_MS);
    this.cursorTimer.unref();
  }

  /** Writes the cursor (temporary file, then rename); saves never overlap. */
  private saveCursor(): Promise<void> {
    const text = `${this.cursor.seq} ${this.cursor.offset}\n`;
    const file = join(this.o.dir, CURSOR_FILE);
    this.cursorSave = this.cursorSave.then(async () => {
      try {
        await writeFile(`${file}.tmp`, text);
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.o.log.warn('notification queue: cannot save the cursor; delivered events may be sent again after a restart', { file, err });
      }
    });
    return this.cursorSave;
  }
}
