/** The tag orders of the tags endpoint (tag-order.ts): version and push time, and cursors into them. */
import { describe, expect, it } from 'vitest';
import { byPushed, byVersion, firstAfter, sortTags, versionKey } from './tag-order.js';

const tags = ['1.2.0', 'latest', 'v1.10.0', '1.9.2', '1.2.0-rc1', '1.2', '2', 'edge', '1.2.1', '1.2.0-rc10', '1.2.0-rc2'];
const newestFirst = ['2', 'v1.10.0', '1.9.2', '1.2.1', '1.2.0', '1.2.0-rc10', '1.2.0-rc2', '1.2.0-rc1', '1.2', 'latest', 'edge'];

describe('tag orders', () => {
  it('orders by version, newest first: numbers by value, releases after their pre-releases, words last', () => {
    expect(sortTags(tags, byVersion).map((t) => t.tag)).toEqual(newestFirst);
    expect(sortTags([...tags].reverse(), byVersion).map((t) => t.tag)).toEqual(newestFirst);
  });

  it('puts tags equal as versions in code-unit order, so the order is total', () => {
    expect(sortTags(['1_0', 'v1.0', '1.0'], byVersion).map((t) => t.tag)).toEqual(['1.0', '1_0', 'v1.0']);
  });

  it('orders by push time, newest first; unknown times last; equal times in version order', () => {
    const pushed = new Map([['1.0', 100], ['2.0', 100], ['0.9', 300]]);
    expect(sortTags(['1.0', '2.0', '0.9', 'edge'], byPushed, pushed).map((t) => t.tag)).toEqual(['0.9', '2.0', '1.0', 'edge']);
  });

  it('finds the page after a cursor, also when the cursor tag is no longer in the list', () => {
    const sorted = sortTags(tags, byVersion);
    const at = (tag: string): number => firstAfter(sorted, { tag, key: versionKey(tag) }, byVersion);
    expect(sorted.slice(at('1.2.1'), at('1.2.1') + 2).map((t) => t.tag)).toEqual(['1.2.0', '1.2.0-rc10']);
    expect(sorted[at('1.3.0')]?.tag).toBe('1.2.1'); // never listed: its place in the order
    expect(at('edge')).toBe(sorted.length);
    const byTime = sortTags(['a', 'b', 'c'], byPushed, new Map([['a', 3], ['b', 2], ['c', 1]]));
    expect(firstAfter(byTime, { tag: 'gone', key: versionKey('gone'), pushed: 2.5 }, byPushed)).toBe(1);
  });
});
