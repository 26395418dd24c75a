/**
 * The in-memory tag lists in front of the index database: kept and shared, bounded, and never kept
 * from a read that a write overtook.
 */
import { describe, expect, it } from 'vitest';
import { createTagLists } from './tag-lists.js';

/** A read whose answer the test gives when it chooses, counting how often it was started. */
function heldRead(): { read: () => Promise<readonly string[] | undefined>; answer: (list: readonly string[] | undefined) => void; fail: (e: Error) => void; started: () => number } {
  let started = 0;
  const pending: { resolve: (l: readonly string[] | undefined) => void; reject: (e: Error) => void }[] = [];
  return {
    read: () => {
      started += 1;
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
    answer: (list) => pending.shift()?.resolve(list),
    fail: (e) => pending.shift()?.reject(e),
    started: () => started,
  };
}

const readOf = (list: readonly string[] | undefined) => async (): Promise<readonly string[] | undefined> => list;

describe('tag lists held in memory', () => {
  it('reads a repository once and answers the same list after', async () => {
    const lists = createTagLists(100);
    let reads = 0;
    const read = async (): Promise<readonly string[]> => {
      reads += 1;
      return ['a', 'b'];
    };
    const first = await lists.get('app', read);
    expect(first).toEqual(['a', 'b']);
    expect(await lists.get('app', read)).toBe(first);
    expect(reads).toBe(1);
    expect(lists.held).toBe(2);
  });

  it('concurrent misses of one repository share one read', async () => {
    const lists = createTagLists(100);
    const r = heldRead();
    const both = Promise.all([lists.get('app', r.read), lists.get('app', r.read)]);
    r.answer(['x']);
    expect(await both).toEqual([['x'], ['x']]);
    expect(r.started()).toBe(1);
  });

  it('a read that a write overtook answers its callers but is not kept; the next caller reads again', async () => {
    const lists = createTagLists(100);
    const r = heldRead();
    const before = lists.get('app', r.read);
    lists.invalidate('app'); // the write landed in the database while the read was under way
    const after = lists.get('app', r.read); // arrived after the write: must not join the old read
    expect(r.started()).toBe(2);
    r.answer(['old']);
    r.answer(['old', 'new']);
    expect(await before).toEqual(['old']);
    expect(await after).toEqual(['old', 'new']);
    expect(await lists.get('app', readOf(['never read']))).toEqual(['old', 'new']);
  });

  it('clear discards every list and every read under way', async () => {
    const lists = createTagLists(100);
    await lists.get('kept', readOf(['k']));
    const r = heldRead();
    const under = lists.get('app', r.read);
    lists.clear();
    r.answer(['stale']);
    expect(await under).toEqual(['stale']);
    expect(lists.held).toBe(0);
    expect(await lists.get('app', readOf(['fresh']))).toEqual(['fresh']);
    expect(await lists.get('kept', readOf(['k2']))).toEqual(['k2']);
  });

  it('a failed read is not kept and does not block the next', async () => {
    const lists = createTagLists(100);
    const r = heldRead();
    const failing = lists.get('app', r.read);
    r.fail(new Error('LevelDB said no'));
    await expect(failing).rejects.toThrow('LevelDB said no');
    expect(await lists.get('app', readOf(['a']))).toEqual(['a']);
  });

  it('an unknown repository (undefined) is not kept', async () => {
    const lists = createTagLists(100);
    expect(await lists.get('gone', readOf(undefined))).toBeUndefined();
    expect(await lists.get('gone', readOf(['now here']))).toEqual(['now here']);
  });

  it('holds at most the budget, dropping the least recently used first', async () => {
    const lists = createTagLists(5);
    await lists.get('a', readOf(['1', '2']));
    await lists.get('b', readOf(['1', '2']));
    await lists.get('a', readOf(['unused'])); // a is now the most recently used
    await lists.get('c', readOf(['1', '2'])); // 6 > 5: b goes
    expect(lists.held).toBe(4);
    expect(await lists.get('a', readOf(['reread']))).toEqual(['1', '2']);
    expect(await lists.get('c', readOf(['reread']))).toEqual(['1', '2']);
    expect(await lists.get('b', readOf(['reread']))).toEqual(['reread']);
  });

  it('a list longer than the whole budget is answered, not kept, and its repository marked oversized', async () => {
    const lists = createTagLists(3);
    await lists.get('small', readOf(['1']));
    expect(await lists.get('huge', readOf(['1', '2', '3', '4']))).toEqual(['1', '2', '3', '4']);
    expect(lists.oversized('huge')).toBe(true);
    expect(lists.oversized('small')).toBe(false);
    expect(lists.held).toBe(1);
  });
});
