/** Test support for the queue implementations (file-queue.ts, object-queue.ts, queue.ts). */
import type { EventQueue } from '../queue.js';

/** Takes (and acknowledges) `n` events of `q`, in order; throws when the queue ends or stalls for 5 s. */
export async function take(q: EventQueue, n: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = await q.next(AbortSignal.timeout(5000));
    if (e === undefined) throw new Error(`queue ended after ${i} of ${n} events`);
    got.push(e.line);
    q.ack(e);
  }
  return got;
}

/** The `i`th test event's JSON line. */
export const ev = (i: number): string => JSON.stringify({ id: `event-${i}`, pad: 'x'.repeat(100) });
