/**
 * Forgetting the Redis index's tickets (redis-index.ts). `applied` (item → the ticket of the last
 * refresh applied to it) would grow by every item ever refreshed. Each refresh is recorded in flight
 * (`inflight`, with Redis's time) from its ticket (TAKE_TICKET) until it applies (APPLY). About once a
 * minute one replica finds the lowest ticket still in flight (TRIM_FLOOR), giving up on refreshes older
 * than REFRESH_MAX_MS (APPLY refuses those, and they read storage again with a new ticket), and drops
 * every `applied` entry below it (DROP_APPLIED): any refresh that could still apply has a ticket at
 * least that high, so it would have been applied over the forgotten entry anyway.
 */
import type { RedisClient } from '../coordination/redis-client.js';
import { DROP_APPLIED, type IndexKeys, TRIM_FLOOR } from './redis-scripts.js';

/** How often `applied` is trimmed (by one replica). */
const TRIM_EVERY_MS = 60_000;

/** How long a refresh may take before APPLY refuses it and it must read storage again. */
export const REFRESH_MAX_MS = 600_000;

export interface TrimOptions {
  /** Who trims (host/pid), recorded in the key that says a trim is not due yet. */
  readonly by: string;
  /** Trim now, whether or not another replica trimmed in the last minute. */
  readonly force: boolean;
  /** True once the index closed: the scan stops. */
  stopped(): boolean;
}

/** Trims `applied` unless another replica did in the last minute (or `force`); answers how many entries were dropped. @throws when Redis fails */
export async function trimApplied(client: RedisClient, k: IndexKeys, o: TrimOptions): Promise<number> {
  if (!o.force && (await client.call('SET', k.trimDue, o.by, 'NX', 'PX', TRIM_EVERY_MS)) !== 'OK') return 0;
  const floor = Number(await client.run(TRIM_FLOOR, [k.ticket, k.inflight], [REFRESH_MAX_MS]));
  let dropped = 0;
  let cursor = '0';
  do {
    const [next, flat] = (await client.call('HSCAN', k.applied, cursor, 'COUNT', 1000)) as [string, string[]];
    const fields = flat.filter((_, i) => i % 2 === 0);
    if (fields.length > 0) dropped += Number(await client.run(DROP_APPLIED, [k.applied], [floor, ...fields]));
    cursor = next;
  } while (cursor !== '0' && !o.stopped());
  return dropped;
}
