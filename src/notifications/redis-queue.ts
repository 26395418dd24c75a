/**
 * An endpoint's queue shared by every replica (`redis` configured): a Redis Stream with one consumer
 * group, so an event journalled by any replica is delivered by whichever replica is alive.
 *
 * - Journal: `append` is an XADD; its `durable` resolves once Redis acknowledged it, and the request
 *   that caused the event (a push, mount or delete) is answered only then (notifier.ts). Redis is
 *   the journal, so it must persist (`appendonly yes`; Berth warns at start otherwise): a Redis that
 *   restarts empty has lost what it held. While Redis cannot be reached, lines wait in memory and are
 *   retried every half second; `durable` resolves when they are written or after 5 s (the request
 *   goes on; the line is still retried, and is lost only if this process dies before Redis returns).
 * - Delivery, in order, by one replica at a time: the replica holding the endpoint's lease (a cluster
 *   lock that a killed replica's lease lets go of within `leaseMs`) reads with XREADGROUP, one event at
 *   a time, and XACKs (and XDELs) it once the endpoint took it. An event read and not acknowledged
 *   stays in the group's pending list; the next holder first claims those (XAUTOCLAIM, oldest first)
 *   and sends them again. So a replica killed mid-delivery loses nothing, and an event may arrive
 *   twice (deduplicate on its `id`), as with the file queue after a crash.
 * - No blocking reads (the connection is shared with every other Redis user in the process): an
 *   empty stream is polled every 200 ms, and at once after a local append.
 * - Bound: about `maxBytes / 1 KiB` events in the stream (XLEN, refreshed by every poll); beyond
 *   that new events are refused (counted as dropped), queued ones kept.
 * - Consumers: each process reads as a consumer of its own name, which Redis keeps in the group until
 *   it is deleted. A queue that closes deletes its own consumer when nothing is pending on it, and a
 *   replica that takes the lease deletes the consumers of processes gone for good (nothing pending, idle
 *   for an hour; atomically, in a script), so restarts and replaced replicas do not pile up names.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { ClusterLock, Lease } from '../coordination/cluster-lock.js';
import { type RedisClient, luaScript } from '../coordination/redis-client.js';
import type { Logger } from '../log.js';
import { type AppendResult, type EventQueue, type QueuedEvent, waitFor } from './queue.js';

export interface RedisQueueOptions {
  readonly client: RedisClient;
  /** The stream's key (e.g. `berth:notify:<endpoint>-<hash>`). */
  readonly key: string;
  /** The endpoint's delivery lease (one deliverer at a time, in order). */
  readonly lock: ClusterLock;
  readonly maxBytes: number;
  readonly log: Logger;
  /** A consumer idle this long with nothing pending is deleted (default STALE_CONSUMER_MS). */
  readonly staleConsumerMs?: number;
}

const GROUP = 'berth';
const POLL_MS = 200;
const RETRY_MS = 500;
const DURABLE_WAIT_MS = 5_000;
/** A consumer idle this long with nothing pending belongs to a process that is gone. */
export const STALE_CONSUMER_MS = 60 * 60 * 1000;

/**
 * Deletes the group's consumers other than ARGV[2] that have nothing pending and have been idle longer
 * than ARGV[3] ms; answers how many. Atomic, so no read can give such a consumer an entry between the
 * look and the delete (an entry pending on a deleted consumer would never be delivered again).
 * KEYS: the stream. ARGV: group, own consumer, idle limit.
 */
const PRUNE_CONSUMERS = luaScript(`
local removed = 0
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for i = 1, #info, 2 do c[info[i]] = info[i + 1] end
  if c['name'] ~= ARGV[2] and tonumber(c['pending']) == 0 and tonumber(c['idle']) > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c['name'])
    removed = removed + 1
  end
end
return removed
`);

/** Opens (creating when missing) the stream and its consumer group. @throws when Redis fails */
export async function openRedisQueue(o: RedisQueueOptions): Promise<EventQueue> {
  try {
    await o.client.call('XGROUP', 'CREATE', o.key, GROUP, '0', 'MKSTREAM');
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
  }
  const queue = new StreamQueue(o);
  await queue.refreshLength();
  return queue;
}

interface Waiting {
  readonly line: string;
  readonly written: () => void;
}

class StreamQueue implements EventQueue {
  private readonly consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly waiters = new Set<() => void>();
  private readonly unwritten: Waiting[] = [];
  private readonly ids = new Map<number, string>();
  private readonly toAck: string[] = [];
  private current: QueuedEvent | undefined;
  private lease: Lease | undefined;
  private position = 0;
  private length = 0;
  private closed = false;
  private writing: Promise<void> | undefined;

  constructor(private readonly o: RedisQueueOptions) {}

  get pending(): number {
    return this.length + this.unwritten.length;
  }

  append(line: string): AppendResult {
    if (this.closed || (this.length + this.unwritten.length + 1) * 1024 > this.o.maxBytes) return { accepted: false, durable: Promise.resolve() };
    let written!: () => void;
    const durable = new Promise<void>((resolve) => (written = resolve));
    this.unwritten.push({ line, written });
    void this.write();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, DURABLE_WAIT_MS).unref());
    return { accepted: true, durable: Promise.race([durable, timeout]) };
  }

  async next(signal?: AbortSignal): Promise<QueuedEvent | undefined> {
    for (;;) {
      if (this.closed || signal?.aborted === true) return undefined;
      if (this.current && this.lease && !this.lease.signal.aborted) return this.current;
      try {
        const event = await this.take();
        if (event) return event;
      } catch (err) {
        this.o.log.debug('notification queue: redis read failed; retrying', { err });
      }
      await Promise.race([waitFor(this.waiters, signal), new Promise((r) => setTimeout(r, POLL_MS).unref())]);
    }
  }

  ack(event: QueuedEvent): void {
    const id = this.ids.get(event.position);
    this.ids.delete(event.position);
    if (this.current === event) this.current = undefined;
    if (id !== undefined) this.toAck.push(id);
    void this.flushAcks().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters) w();
    await this.write();
    await this.flushAcks().catch(() => undefined);
    await this.deleteOwnConsumer().catch(() => undefined);
    await this.lease?.release();
    this.lease = undefined;
  }

  async refreshLength(): Promise<void> {
    this.length = Number(await this.o.client.call('XLEN', this.o.key));
  }

  /** Deletes this process's consumer from the group unless an event it read is still pending on it. */
  private async deleteOwnConsumer(): Promise<void> {
    const pending = await this.o.client.call('XPENDING', this.o.key, GROUP, '-', '+', 1, this.consumer);
    if (Array.isArray(pending) && pending.length === 0) await this.o.client.call('XGROUP', 'DELCONSUMER', this.o.key, GROUP, this.consumer);
  }

  /** Writes waiting lines in order (one writer at a time); on failure retries after a pause. */
  private write(): Promise<void> {
    this.writing ??= (async () => {
      while (this.unwritten.length > 0) {
        const head = this.unwritten[0] as Waiting;
        try {
          await this.o.client.call('XADD', this.o.key, '*', 'e', head.line);
        } catch (err) {
          if (this.closed) return;
          this.o.log.warn('notification queue: cannot write the event to redis; retrying', { err: err instanceof Error ? err.message : String(err) });
          await new Promise((r) => setTimeout(r, RETRY_MS));
          continue;
        }
        this.unwritten.shift();
        this.length += 1;
        head.written();
        for (const w of this.waiters) w();
      }
    })().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async flushAcks(): Promise<void> {
    while (this.toAck.length > 0) {
      const id = this.toAck[0] as string;
      await this.o.client.call('XACK', this.o.key, GROUP, id);
      await this.o.client.call('XDEL', this.o.key, id);
      this.toAck.shift();
      this.length = Math.max(0, this.length - 1);
    }
  }

  /** The next event for this replica to deliver, when it holds (or takes) the lease. */
  private async take(): Promise<QueuedEvent | undefined> {
    await this.flushAcks();
    if (!this.lease || this.lease.signal.aborted) {
      this.current = undefined;
      this.lease = await this.o.lock.tryAcquire();
      if (!this.lease) return undefined;
      await this.o.client.run(PRUNE_CONSUMERS, [this.o.key], [GROUP, this.consumer, this.o.staleConsumerMs ?? STALE_CONSUMER_MS]);
    }
    await this.refreshLength();
    // Events read by an earlier holder (or by this one) and never acknowledged come first.
    const claimed = await this.o.client.call('XAUTOCLAIM', this.o.key, GROUP, this.consumer, 0, '0-0', 'COUNT', 1);
    const entry = firstEntry(Array.isArray(claimed) ? claimed[1] : undefined)
      ?? firstEntry(streamEntries(await this.o.client.call('XREADGROUP', 'GROUP', GROUP, this.consumer, 'COUNT', 1, 'STREAMS', this.o.key, '>')));
    if (!entry) return undefined;
    const event: QueuedEvent = { line: entry.line, position: this.position++ };
    this.ids.set(event.position, entry.id);
    this.current = event;
    return event;
  }
}

/** The entries of an XREADGROUP reply for one stream. */
function streamEntries(reply: unknown): unknown {
  return Array.isArray(reply) && Array.isArray(reply[0]) ? reply[0][1] : undefined;
}

/** The first `[id, ['e', line]]` of a list of stream entries. */
function firstEntry(entries: unknown): { id: string; line: string } | undefined {
  if (!Array.isArray(entries)) return undefined;
  for (const entry of entries) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) continue;
    const fields = entry[1] as unknown[];
    const at = fields.indexOf('e');
    const line = at >= 0 ? fields[at + 1] : undefined;
    if (typeof line === 'string') return { id: entry[0], line };
  }
  return undefined;
}
