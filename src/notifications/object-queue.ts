/**
 * An endpoint's queue as objects in a store: with S3 storage and no `redis`, the bucket itself
 * (`/berth/notifications/<endpoint>/`, outside docker/registry/v2), so queued events survive a restart
 * of the process as they do in the filesystem journal (file-queue.ts).
 *
 * - Appends are group-committed: lines accepted while a write is under way go out together in the
 *   next write, and each write is one new object holding its lines (one event JSON per line), named
 *   `<ms since the epoch, 13 digits>-<counter, 6 digits>-<this process, 8 hex>.jsonl` so that names
 *   sort in the order they were written. `append`'s `durable` resolves once the object is stored; a
 *   PUT is all or nothing, so no object is ever torn. Only stored lines are delivered.
 * - Delivery reads from memory (the lines were written from there). Once every line of an object has
 *   been acknowledged the object is deleted; a crash before that delivers its lines again at the next
 *   start. Delivery is therefore at least once, as with the other queues.
 * - At open, every object of the queue is read, in name order, and its lines are queued before any
 *   new event (a clean stop with events pending leaves them there too). Two processes over one bucket
 *   without `redis` would each deliver the other's objects found at their start: duplicates, never a
 *   loss (replicas are meant to share one Redis stream instead, redis-queue.ts).
 * - At most `maxBytes` of lines are held; beyond that `append` refuses new events (the caller counts
 *   and logs them). A failed write loses the lines of that write (reported to `onLost`); a failed
 *   delete is logged, and those events are delivered again after a restart.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { type AppendResult, type EventQueue, type QueuedEvent, waitFor } from './queue.js';

/** The objects of one queue: names relative to the queue (no slashes). */
export interface QueueObjects {
  /** Where they are, for log lines (`s3 /berth/notifications/hook-1a2b3c4d/`). */
  readonly where: string;
  /** Every object's name, in no particular order ([] when there are none). */
  list(): Promise<string[]>;
  /** The object's bytes, or undefined when it is gone. */
  read(name: string): Promise<Buffer | undefined>;
  write(name: string, data: Buffer): Promise<void>;
  /** Removes the object (nothing when it is gone). */
  remove(name: string): Promise<void>;
}

export interface ObjectQueueOptions {
  readonly objects: QueueObjects;
  /** The most bytes of undelivered lines the queue holds; appends beyond are refused. */
  readonly maxBytes: number;
  readonly log: Logger;
  /** Told how many accepted lines a failed write lost. */
  readonly onLost?: (count: number) => void;
}

/** The lines of one object (or of the next write, while `stored` is false). */
interface Batch {
  readonly name: string;
  readonly lines: string[];
  /** Position of the first line; lines are numbered in queue order. */
  readonly first: number;
  bytes: number;
  stored: boolean;
  /** Lines acknowledged, from the start. */
  acked: number;
}

const OBJECT_NAME = /^\d{13}-\d{6}-[0-9a-f]{8}\.jsonl$/;

/** Opens the queue in `o.objects`, queueing what an earlier run left there. */
export async function openObjectQueue(o: ObjectQueueOptions): Promise<EventQueue> {
  const names = (await o.objects.list()).filter((n) => OBJECT_NAME.test(n)).sort();
  const found: { name: string; lines: string[]; bytes: number }[] = [];
  for (const name of names) {
    const data = await o.objects.read(name);
    if (data === undefined) continue;
    const lines = data.toString('utf8').split('\n').filter((l) => l !== '');
    if (lines.length === 0) {
      await o.objects.remove(name);
      continue;
    }
    found.push({ name, lines, bytes: data.length });
  }
  const pending = found.reduce((n, b) => n + b.lines.length, 0);
  if (pending > 0) o.log.info('notification queue: events left by an earlier run are delivered first', { where: o.objects.where, objects: found.length, events: pending });
  return new ObjectQueue(o, found);
}

class ObjectQueue implements EventQueue {
  /** Stored batches not wholly acknowledged, oldest first, then the one being written and the one filling. */
  private readonly batches: Batch[] = [];
  private nextPosition = 0;
  private heldBytes = 0;
  private pendingCount = 0;
  private closed = false;
  private readonly instance = randomBytes(4).toString('hex');
  private counter = 0;
  /** The batch taking appends (not yet being written), and who waits for it to be durable. */
  private filling: Batch | undefined;
  private fillingWaiters: (() => void)[] = [];
  private flushing: Promise<void> | undefined;
  private readonly readers = new Set<() => void>();
  private removals: Promise<void> = Promise.resolve();

  constructor(
    private readonly o: ObjectQueueOptions,
    found: readonly { name: string; lines: string[]; bytes: number }[],
  ) {
    for (const f of found) {
      this.batches.push({ name: f.name, lines: f.lines, first: this.nextPosition, bytes: f.bytes, stored: true, acked: 0 });
      this.nextPosition += f.lines.length;
      this.heldBytes += f.bytes;
      this.pendingCount += f.lines.length;
    }
  }

  get pending(): number {
    return this.pendingCount;
  }

  append(line: string): AppendResult {
    const size = Buffer.byteLength(line) + 1;
    if (this.closed || this.heldBytes + size > this.o.maxBytes) return { accepted: false, durable: Promise.resolve() };
    let batch = this.filling;
    if (batch === undefined) {
      batch = { name: this.objectName(), lines: [], first: this.nextPosition, bytes: 0, stored: false, acked: 0 };
      this.filling = batch;
      this.batches.push(batch);
      // Lines accepted in the same turn of the event loop (or during a write) share one object.
      setImmediate(() => void this.flush());
    }
    batch.lines.push(line);
    batch.bytes += size;
    this.nextPosition += 1;
    this.heldBytes += size;
    this.pendingCount += 1;
    return { accepted: true, durable: new Promise<void>((resolve) => this.fillingWaiters.push(resolve)) };
  }

  private objectName(): string {
    this.counter = (this.counter + 1) % 1_000_000;
    return `${String(Date.now()).padStart(13, '0')}-${String(this.counter).padStart(6, '0')}-${this.instance}.jsonl`;
  }

  /** Writes the filling batch (after the write under way, if any), one object per write. */
  private flush(): Promise<void> {
    const previous = this.flushing ?? Promise.resolve();
    const run = previous.then(() => this.writeFilling());
    this.flushing = run;
    return run;
  }

  private async writeFilling(): Promise<void> {
    const batch = this.filling;
    if (batch === undefined) return;
    const waiters = this.fillingWaiters;
    this.filling = undefined;
    this.fillingWaiters = [];
    try {
      await this.o.objects.write(batch.name, Buffer.from(batch.lines.map((l) => `${l}\n`).join(''), 'utf8'));
      batch.stored = true;
    } catch (err) {
      this.o.log.warn('notification queue: writing events failed, they are lost', { where: this.o.objects.where, events: batch.lines.length, err: String(err) });
      this.batches.splice(this.batches.indexOf(batch), 1);
      this.heldBytes -= batch.bytes;
      this.pendingCount -= batch.lines.length;
      this.o.onLost?.(batch.lines.length);
    }
    for (const w of waiters) w();
    this.wakeReaders();
  }

  async next(signal?: AbortSignal): Promise<QueuedEvent | undefined> {
    for (;;) {
      if (this.closed || signal?.aborted === true) return undefined;
      const head = this.batches[0];
      if (head !== undefined && head.stored) {
        const line = head.lines[head.acked];
        if (line !== undefined) return { line, position: head.first + head.acked };
      }
      await waitFor(this.readers, signal);
    }
  }

  ack(event: QueuedEvent): void {
    const head = this.batches[0];
    if (head === undefined || !head.stored || event.position !== head.first + head.acked) {
      throw new Error('ack of an event that is not at the head of the queue');
    }
    head.acked += 1;
    this.pendingCount -= 1;
    if (head.acked < head.lines.length) return;
    this.batches.shift();
    this.heldBytes -= head.bytes;
    this.removals = this.removals.then(() =>
      this.o.objects.remove(head.name).catch((err: unknown) => {
        this.o.log.warn('notification queue: removing delivered events failed; they are delivered again after a restart', {
          where: this.o.objects.where, object: head.name, err: String(err),
        });
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeReaders();
    await this.flush();
    await this.removals;
  }

  private wakeReaders(): void {
    for (const wake of this.readers) wake();
    this.readers.clear();
  }
}
