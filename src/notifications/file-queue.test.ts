import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { openFileQueue } from './file-queue.js';
import { type EventQueue, createMemoryQueue } from './queue.js';
import { ev, take } from './suite/queue.js';

const lines: string[] = [];
const log = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(l) });

const dirs: string[] = [];
const queues: EventQueue[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) await q.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  lines.length = 0;
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'berth-file-queue-'));
  dirs.push(d);
  return d;
}

async function open(dir: string, o: { maxBytes?: number; segmentBytes?: number } = {}): Promise<EventQueue> {
  const q = await openFileQueue({ dir, log, maxBytes: o.maxBytes ?? 1 << 20, segmentBytes: o.segmentBytes ?? 1 << 16 });
  queues.push(q);
  return q;
}

/** Closes `q` now, so that afterEach does not close it again. */
async function closeNow(q: EventQueue): Promise<void> {
  await q.close();
  queues.splice(queues.indexOf(q), 1);
}

/** Writes ev(0) and ev(1) (the second durably) to a queue in `dir`, and closes it. */
async function writeTwo(dir: string): Promise<void> {
  const q = await open(dir);
  q.append(ev(0));
  await q.append(ev(1)).durable;
  await closeNow(q);
}


describe('file queue', () => {
  it('answers events in order, the same one until it is acknowledged', async () => {
    const q = await open(await tempDir());
    for (let i = 0; i < 3; i++) expect(q.append(ev(i)).accepted).toBe(true);
    expect(q.pending).toBe(3);
    const first = await q.next();
    expect(first?.line).toBe(ev(0));
    expect((await q.next())?.line).toBe(ev(0));
    if (first === undefined) throw new Error('no event');
    q.ack(first);
    expect(await take(q, 2)).toEqual([ev(1), ev(2)]);
    expect(q.pending).toBe(0);
  });

  it('next() waits for an append, and resolves undefined on close or abort', async () => {
    const q = await open(await tempDir());
    const waiting = q.next();
    setTimeout(() => q.append(ev(7)), 20);
    expect((await waiting)?.line).toBe(ev(7));
    const aborted = new AbortController();
    const other = await open(await tempDir());
    const pendingNext = other.next(aborted.signal);
    aborted.abort();
    expect(await pendingNext).toBeUndefined();
    const closing = other.next();
    await other.close();
    expect(await closing).toBeUndefined();
  });

  it('resolves `durable` only once the line is on disk: a copy of the directory taken then holds it', async () => {
    const dir = await tempDir();
    const q = await open(dir);
    const results = [0, 1, 2].map((i) => q.append(ev(i)));
    await Promise.all(results.map((r) => r.durable));
    // A snapshot of the directory now is what a crash right now would leave behind.
    const crashed = await tempDir();
    await cp(dir, crashed, { recursive: true });
    const recovered = await open(crashed);
    expect(recovered.pending).toBe(3);
    expect(await take(recovered, 3)).toEqual([ev(0), ev(1), ev(2)]);
  });

  it('keeps undelivered events across a restart, and does not deliver acknowledged ones again after a clean close', async () => {
    const dir = await tempDir();
    const q = await open(dir);
    for (let i = 0; i < 5; i++) q.append(ev(i));
    expect(await take(q, 2)).toEqual([ev(0), ev(1)]);
    await closeNow(q);
    const again = await open(dir);
    expect(again.pending).toBe(3);
    expect(await take(again, 3)).toEqual([ev(2), ev(3), ev(4)]);
    again.append(ev(5));
    expect(await take(again, 1)).toEqual([ev(5)]);
  });

  it('after a crash that lost the cursor, delivers from the last saved position again (at least once)', async () => {
    const dir = await tempDir();
    const q = await open(dir);
    for (let i = 0; i < 4; i++) q.append(ev(i));
    await take(q, 1);
    await closeNow(q);
    const saved = await readFile(join(dir, 'cursor'), 'utf8');
    const again = await open(dir);
    await take(again, 2); // acknowledged, but the process "dies" before the cursor is saved:
    const crashed = await tempDir();
    await cp(dir, crashed, { recursive: true });
    await writeFile(join(crashed, 'cursor'), saved);
    const recovered = await open(crashed);
    expect(await take(recovered, 3)).toEqual([ev(1), ev(2), ev(3)]);
  });

  it('delivers everything again rather than lose events when the cursor file is damaged', async () => {
    for (const damaged of ['99 0\n', 'garbage']) {
      const dir = await tempDir();
      await writeTwo(dir);
      await writeFile(join(dir, 'cursor'), damaged);
      const again = await open(dir);
      expect(await take(again, 2)).toEqual([ev(0), ev(1)]);
    }
  });

  it('cuts a line torn by a crash and keeps the complete ones', async () => {
    const dir = await tempDir();
    await writeTwo(dir);
    const segment = (await readdir(dir)).filter((f) => f.endsWith('.log')).sort()[0] ?? '';
    await writeFile(join(dir, segment), `${await readFile(join(dir, segment), 'utf8')}{"id":"torn`);
    const again = await open(dir);
    expect(lines.some((l) => l.includes('cut an incomplete last line'))).toBe(true);
    expect(await readFile(join(dir, segment), 'utf8')).toBe(`${ev(0)}\n${ev(1)}\n`);
    expect(again.pending).toBe(2);
    expect(await take(again, 2)).toEqual([ev(0), ev(1)]);
  });

  it('rolls over to new segments and deletes each once it is delivered', async () => {
    const dir = await tempDir();
    const q = await open(dir, { segmentBytes: 1000 });
    for (let i = 0; i < 30; i++) await q.append(ev(i)).durable; // one write each: ~8 lines per segment
    const segments = async (): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.log'));
    expect((await segments()).length).toBeGreaterThanOrEqual(4);
    const got = await take(q, 30);
    expect(got).toEqual(Array.from({ length: 30 }, (_, i) => ev(i)));
    await new Promise((r) => setTimeout(r, 50)); // deletes are not awaited by ack
    expect((await segments()).length).toBe(1);
  });

  it('refuses appends beyond maxBytes, and takes them again once delivery made room', async () => {
    const dir = await tempDir();
    const line = ev(0);
    const q = await open(dir, { maxBytes: 3 * (line.length + 1), segmentBytes: line.length + 1 });
    expect([0, 1, 2].map((i) => q.append(ev(i)).accepted)).toEqual([true, true, true]);
    expect(q.append(ev(3)).accepted).toBe(false);
    expect(q.pending).toBe(3);
    await take(q, 2);
    expect(q.append(ev(4)).accepted).toBe(true);
    expect(await take(q, 2)).toEqual([ev(2), ev(4)]);
  });

  it('refuses appends after close, and what it accepted is on disk', async () => {
    const dir = await tempDir();
    const q = await openFileQueue({ dir, log, maxBytes: 1 << 20, segmentBytes: 1 << 16 });
    for (let i = 0; i < 100; i++) q.append(ev(i));
    await q.close(); // the appends were not awaited: close writes them
    expect(q.append(ev(100)).accepted).toBe(false);
    const again = await open(dir);
    expect(again.pending).toBe(100);
    expect((await take(again, 100))[99]).toBe(ev(99));
  });

  it('writes the appends of one tick, in order, to the current segment, and only then resolves them', async () => {
    const dir = await tempDir();
    const q = await open(dir);
    const before = (await readdir(dir)).filter((f) => f.endsWith('.log'));
    const results = Array.from({ length: 50 }, (_, i) => q.append(ev(i)));
    await Promise.all(results.map((r) => r.durable));
    const after = (await readdir(dir)).filter((f) => f.endsWith('.log'));
    expect(after).toEqual(before);
    const text = await readFile(join(dir, after[0] ?? ''), 'utf8');
    expect(text).toBe(Array.from({ length: 50 }, (_, i) => `${ev(i)}\n`).join(''));
  });
});

describe('memory queue', () => {
  it('keeps order, waits, acknowledges and bounds like the file queue', async () => {
    const line = ev(0);
    const q = createMemoryQueue({ maxBytes: 2 * (line.length + 1) });
    const waiting = q.next();
    expect(q.append(ev(0)).accepted).toBe(true);
    expect((await waiting)?.line).toBe(ev(0));
    expect(q.append(ev(1)).accepted).toBe(true);
    expect(q.append(ev(2)).accepted).toBe(false);
    expect(await take(q, 2)).toEqual([ev(0), ev(1)]);
    expect(q.pending).toBe(0);
    await q.close();
    expect(await q.next()).toBeUndefined();
  });
});
