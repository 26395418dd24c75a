/**
 * The key encoding against a real LevelDB: a range read gives exactly what sorting the names and
 * slicing after `last` gives (the distribution-spec's lexical order), for nested and prefix names.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sliceSorted } from '../storage/indexing/index-port.js';
import { compareStrings } from '../storage/listing.js';
import { isIndexable, lastField, repoKey, repoRange, tagKey, tagRange } from './keys.js';

const REPOS = ['b', 'a/b', 'a-b', 'a', 'a.b', 'a_b', 'a__b', 'ab', 'a/b/c', 'a0', 'z/z', 'library/ubuntu', 'a/a'];
const TAGS: Record<string, string[]> = {
  a: ['v1', 'V1', '1.0', '1.0-rc', 'latest', '_x', 'v1.10', 'v1.9', 'A'],
  'a/b': ['only-in-a-b'],
  ab: ['only-in-ab'],
};

describe('index keys', () => {
  let dir: string;
  let db: Level<string, unknown>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-keys-'));
    db = new Level<string, unknown>(join(dir, 'db'), { valueEncoding: 'json' });
    await db.batch([
      ...REPOS.map((r) => ({ type: 'put' as const, key: repoKey(r), value: 1 })),
      ...Object.entries(TAGS).flatMap(([r, tags]) => tags.map((t) => ({ type: 'put' as const, key: tagKey(r, t), value: '' }))),
    ]);
  });
  afterAll(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  const read = async (range: { gt: string; lt: string; limit?: number }): Promise<string[]> => {
    const out: string[] = [];
    for await (const k of db.keys(range)) out.push(lastField(k));
    return out;
  };
  const sorted = (names: string[]): string[] => [...names].sort(compareStrings);

  const pages: [string | undefined, number | undefined][] = [
    [undefined, undefined], [undefined, 3], ['a', 2], ['a/b', undefined], ['a-', 4], ['', 1], ['zzz', 5], ['0', 0], ['a/b/c', 100],
  ];

  it.each(pages)('catalog after %j, limit %j: one range read equals sorting and slicing', async (after, limit) => {
    expect(await read(repoRange({ after, limit }))).toEqual(sliceSorted(sorted(REPOS), { after, limit }));
  });

  it.each(pages)('tags of a after %j, limit %j: only its own tags, in lexical order', async (after, limit) => {
    expect(await read(tagRange('a', { after, limit }))).toEqual(sliceSorted(sorted(TAGS['a']!), { after, limit }));
  });

  it('a repository whose name is a prefix of another keeps its tags apart', async () => {
    expect(await read(tagRange('a/b', {}))).toEqual(['only-in-a-b']);
    expect(await read(tagRange('ab', {}))).toEqual(['only-in-ab']);
    expect(await read(tagRange('a/b/c', {}))).toEqual([]);
  });

  it('a `last` that is not ASCII still pages in code-unit order', async () => {
    expect(await read(repoRange({ after: 'a\u00e9' }))).toEqual(sliceSorted(sorted(REPOS), { after: 'a\u00e9' }));
    expect(await read(repoRange({ after: 'a\u0000z' }))).toEqual(sliceSorted(sorted(REPOS), { after: 'a\u0000z' }));
  });

  it.each([
    ['library/ubuntu', true], ['v1.0-rc_1', true], ['with space', true], ['', false], ['caf\u00e9', false], ['a\u0000b', false], ['tab\t', false],
  ])('isIndexable(%j) is %s', (name, ok) => {
    expect(isIndexable(name)).toBe(ok);
  });
});
