import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { createMemoryDriver } from '../storage/driver/memory.js';
import type { StorageDriver } from '../storage/driver/driver.js';
import { type QueueObjects, openObjectQueue } from './object-queue.js';
import type { EventQueue } from './queue.js';
import { ev, take } from './suite/queue.js';

const lines: string[] = [];
const log = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(l) });
const DIR = '/berth/notifications/hook';

const queues: EventQueue[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) await q.close();
  lines.length = 0;
});

/** The queue's objects in a real (in-memory) storage driver, with a switch that makes writes fail. */
function objectsIn(driver: StorageDriver): QueueObjects & { failWrites: boolean; names(): Promise<string[]> } {
  const objects = {
    failWrites: false,
    where: `memory ${DIR}/`,
    async list() {
      try {
        return (await driver.list(DIR)).map((p) => p.slice(p.lastIndexOf('/') + 1));
      } catch {
        return [];
      }
    },
    async read(name: string) {
      return driver.getContent(`${DIR}/${name}`).catch(() => undefined);
    },
    async write(name: string, data: Buffer) {
      if (objects.failWrites) throw new Error('the store refused the write');
      await driver.putContent(`${DIR}/${name}`, data);
    },
    async remove(name: string) {
      await driver.delete(`${DIR}/${name}`).catch(() => undefined);
    },
    async names() {
      return (await objects.list()).sort();
    },
  };
  return objects;
}

async function open(objects: QueueObjects, o: { maxBytes?: number; onLost?: (n: number) => void } = {}): Promise<EventQueue> {
  const q = await openObjectQueue({ objects, log, maxBytes: o.maxBytes ?? 1 << 20, ...(o.onLost && { onLost: o.onLost }) });
  queues.push(q);
  return q;
}

async function closeNow(q: EventQueue): Promise<void> {
  await q.close();
  queues.splice(queues.indexOf(q), 1);
}


describe('object queue (the bucket journal)', () => {
  it('writes the lines of one turn as one object, delivers them in order, and removes the object once all are acknowledged', async () => {
    const objects = objectsIn(createMemoryDriver());
    const q = await open(objects);
    const durable = [0, 1, 2].map((i) => q.append(ev(i)));
    expect(durable.every((r) => r.accepted)).toBe(true);
    await Promise.all(durable.map((r) => r.durable));
    const names = await objects.names();
    expect(names).toHaveLength(1);
    expect((await objects.read(names[0] as string))?.toString()).toBe(`${ev(0)}\n${ev(1)}\n${ev(2)}\n`);
    expect(q.pending).toBe(3);
    expect(await take(q, 2)).toEqual([ev(0), ev(1)]);
    expect(await objects.names()).toHaveLength(1); // one line of it is still undelivered
    expect(await take(q, 1)).toEqual([ev(2)]);
    await closeNow(q); // waits for the removal
    expect(await objects.names()).toEqual([]);
    expect(q.pending).toBe(0);
  });

  it('answers no event before its object is stored', async () => {
    const objects = objectsIn(createMemoryDriver());
    const q = await open(objects);
    const { durable } = q.append(ev(0));
    let stored = false;
    void durable.then(() => {
      stored = true;
    });
    const e = await q.next(AbortSignal.timeout(5000));
    expect(stored).toBe(true);
    expect(e?.line).toBe(ev(0));
  });

  it('hands what a stopped run left over to the next one, oldest object first, before new events', async () => {
    const objects = objectsIn(createMemoryDriver());
    const first = await open(objects);
    await first.append(ev(0)).durable;
    await Promise.all([first.append(ev(1)).durable, first.append(ev(2)).durable]);
    expect(await take(first, 1)).toEqual([ev(0)]); // acknowledged: its object goes
    await closeNow(first);
    expect(await objects.names()).toHaveLength(1);

    const second = await open(objects);
    expect(second.pending).toBe(2);
    second.append(ev(3));
    expect(await take(second, 3)).toEqual([ev(1), ev(2), ev(3)]);
  });

  it('delivers a half-acknowledged object again after a crash (at least once), and ignores objects that are not its own', async () => {
    const driver = createMemoryDriver();
    const objects = objectsIn(driver);
    await driver.putContent(`${DIR}/notes.txt`, Buffer.from('not an event\n'));
    const crashed = await open(objects);
    await Promise.all([crashed.append(ev(0)).durable, crashed.append(ev(1)).durable]);
    expect(await take(crashed, 1)).toEqual([ev(0)]);
    queues.splice(queues.indexOf(crashed), 1); // never closed: the process "died" here

    const next = await open(objects);
    expect(await take(next, 2)).toEqual([ev(0), ev(1)]);
    await closeNow(next);
    expect(await objects.names()).toEqual(['notes.txt']);
  });

  it('counts the lines a failed write lost, resolves their durability anyway, and goes on with later writes', async () => {
    const objects = objectsIn(createMemoryDriver());
    const lost: number[] = [];
    const q = await open(objects, { onLost: (n) => lost.push(n) });
    objects.failWrites = true;
    await Promise.all([q.append(ev(0)).durable, q.append(ev(1)).durable]);
    expect(lost).toEqual([2]);
    expect(q.pending).toBe(0);
    expect(lines.some((l) => l.includes('writing events failed'))).toBe(true);
    objects.failWrites = false;
    await q.append(ev(2)).durable;
    expect(await take(q, 1)).toEqual([ev(2)]);
  });

  it('refuses appends beyond maxBytes until deliveries make room', async () => {
    const objects = objectsIn(createMemoryDriver());
    const size = Buffer.byteLength(ev(0)) + 1;
    const q = await open(objects, { maxBytes: 2 * size });
    expect(q.append(ev(0)).accepted).toBe(true);
    expect(q.append(ev(1)).accepted).toBe(true);
    expect(q.append(ev(2)).accepted).toBe(false);
    expect(await take(q, 2)).toEqual([ev(0), ev(1)]);
    expect(q.append(ev(3)).accepted).toBe(true);
  });

  it('wakes a waiting reader on close', async () => {
    const q = await open(objectsIn(createMemoryDriver()));
    const waiting = q.next();
    await closeNow(q);
    expect(await waiting).toBeUndefined();
  });
});
