import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INMEMORY_BASE, configFiles } from './suite/helpers.js';

const files = configFiles('berth-quotas-config-');
beforeAll(files.open);
afterAll(files.close);

const doc = (storage: string): string => `${INMEMORY_BASE}${storage}`;
const errorOf = async (storage: string): Promise<string> => (await files.loadError(doc(storage))).message;
const quota = (body: string): string => `  quotas:\n    - ${body}\n`;

describe('storage.quotas', () => {
  it('reads sizes with units, counts, and globs (default **)', async () => {
    const { config } = await files.load(doc(`  quotas:
    - repositories: ["team/**", "shared/*"]
      storage: 10GiB
      maxrepositories: 50
    - storage: 500MB
    - repositories: ["solo/*"]
      maxrepositories: 0
`));
    expect(config.storage.quotas).toEqual([
      { repositories: ['team/**', 'shared/*'], storageBytes: 10 * 2 ** 30, maxrepositories: 50 },
      { repositories: ['**'], storageBytes: 500e6 },
      { repositories: ['solo/*'], maxrepositories: 0 },
    ]);
    expect((await files.load(doc(''))).config.storage.quotas).toEqual([]);
  });

  it('names the key of a bad glob, size or count, a misspelt key, and a quota without a limit', async () => {
    expect(await errorOf(quota(`{ repositories: ["team/**", "Team/*"], storage: 1GiB }`))).toMatch(
      /^config: storage\.quotas\[0\]\.repositories\[1\]: "Team\/\*" is not a repository glob/,
    );
    expect(await errorOf(quota(`{ storage: 10 gigs }`))).toMatch(/^config: storage\.quotas\[0\]\.storage: expected a size like "200GiB"/);
    expect(await errorOf(quota(`{ storage: -1GiB }`))).toMatch(/^config: storage\.quotas\[0\]\.storage: expected a size/);
    expect(await errorOf(quota(`{ maxrepositories: 2.5 }`))).toMatch(/^config: storage\.quotas\[0\]\.maxrepositories: expected a whole number/);
    expect(await errorOf(quota(`{ maxrepositories: many }`))).toMatch(/^config: storage\.quotas\[0\]\.maxrepositories: expected a whole number/);
    expect(await errorOf(quota(`{ maxrepository: 3 }`))).toBe(
      'config: storage.quotas[0].maxrepository: unknown key (did you mean storage.quotas[0].maxrepositories?)',
    );
    expect(await errorOf(quota(`{ repositories: ["a/*"] }`))).toMatch(/^config: storage\.quotas\[0\]: a quota needs a limit/);
    expect(await errorOf(`  quotas: { storage: 1GiB }\n`)).toMatch(/^config: storage\.quotas: expected a list/);
  });

  it('loads the commented example of config.example.yaml once uncommented', async () => {
    const lines = (await readFile(fileURLToPath(new URL('../../config.example.yaml', import.meta.url)), 'utf8')).split('\n');
    const start = lines.indexOf('  # quotas:');
    expect(start).toBeGreaterThan(0);
    let end = start + 1;
    while (lines[end]?.startsWith('  #   ') === true) end += 1;
    const block = lines.slice(start, end).map((l) => l.replace('  # ', '  ')).join('\n');
    const { config } = await files.load(doc(`${block}\n`));
    expect(config.storage.quotas).toEqual([{ repositories: ['team/**'], storageBytes: 10 * 2 ** 30, maxrepositories: 50 }]);
  });
});
