/**
 * The queue of one endpoint: events (one JSON line each) waiting to be delivered, oldest first.
 * `append` accepts a line unless the queue is full and says when it is durable; the endpoint's
 * delivery loop takes the oldest event with `next` (which waits for one), and `ack`s it once the
 * endpoint answered 2xx or 3xx, so an event that never got through stays at the head and is retried.
 *
 * Two implementations: file-queue.ts (filesystem storage: an append-only, fsync'd journal that
 * survives restarts) and `createMemoryQueue` here (inmemory storage: gone with the process, like
 * everything else that storage holds).
 */

/** One queued event and where it sits in its queue. */
export interface QueuedEvent {
  /** The event's JSON. */
  readonly line: string;
  /** Opaque position, meaningful to the queue that gave it. */
  readonly position: number;
}

/** What `append` did with a line. */
export interface AppendResult {
  /** False when the queue was full (or closed): the line was dropped. */
  readonly accepted: boolean;
  /** Resolves once the line is durable (at once for memory queues and dropped lines); never rejects. */
  readonly durable: Promise<void>;
}

export interface EventQueue {
  /** Queues one event line (no newlines). */
  append(line: string): AppendResult;
  /**
   * The oldest undelivered event, once it is durable; waits for one. The same event is answered until
   * it is acknowledged. Undefined once the queue is closed or `signal` aborts.
   */
  next(signal?: AbortSignal): Promise<QueuedEvent | undefined>;
  /** Marks `event` (the one `next` answered) delivered. */
  ack(event: QueuedEvent): void;
  /** Events accepted and not yet acknowledged. */
  readonly pending: number;
  /** Refuses further appends, writes what was accepted, and wakes waiting readers. */
  close(): Promise<void>;
}

/** A queue in memory, bounded by the bytes of its lines. */
export function createMemoryQueue(o: { maxBytes: number }): EventQueue {
  const lines: QueuedEvent[] = [];
  let bytes = 0;
  let position = 0;
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiters) w();
    waiters.clear();
  };
  return {
    append(line) {
      const size = Buffer.byteLength(line) + 1;
      if (closed || bytes + size > o.maxBytes) return { accepted: false, durable: Promise.resolve() };
      lines.push({ line, position: position++ });
      bytes += size;
      wake();
      return { accepted: true, durable: Promise.resolve() };
    },
    async next(signal) {
      for (;;) {
        const head = lines[0];
        if (head !== undefined && !closed) return head;
        if (closed || signal?.aborted === true) return undefined;
        await waitFor(waiters, signal);
      }
    },
    ack(event) {
      if (lines[0] !== event) throw new Error('ack of an event that is not at the head of the queue');
      lines.shift();
      bytes -= Buffer.byteLength(event.line) + 1;
    },
    get pending() {
      return lines.length;
    },
    async close() {
      closed = true;
      wake();
    },
  };
}

/** Resolves when one of `waiters` is called or `signal` aborts. */
export function waitFor(waiters: Set<() => void>, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      waiters.delete(done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    waiters.add(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
