import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INMEMORY_BASE, configFiles } from './suite/helpers.js';

const files = configFiles('berth-retention-config-');
beforeAll(files.open);
afterAll(files.close);

/** The document with `storage` lines (indented under storage) after the inmemory driver. */
const doc = (storage: string): string => `${INMEMORY_BASE}${storage}`;
const errorOf = async (storage: string): Promise<string> => (await files.loadError(doc(storage))).message;

describe('storage.maintenance.retention and storage.immutabletags', () => {
  it('reads policies with defaults: repositories **, deleteuntagged true, deletereferrers false, delay = gc grace period', async () => {
    const { config } = await files.load(doc(`  maintenance:
    gc: { graceperiod: 2h }
    retention:
      policies:
        - keeptags:
            - patterns: ['^v']
              mostrecentlypushed: 3
              pushedwithin: 100h
        - repositories: ["team/**"]
          deletereferrers: true
  immutabletags:
    - repositories: ["prod/*"]
      patterns: ['^release-']
`));
    expect(config.storage.maintenance.retention).toEqual({
      dryrun: false,
      delayMs: 2 * 3_600_000,
      policies: [
        { repositories: ['**'], deleteuntagged: true, deletereferrers: false, keeptags: [{ patterns: ['^v'], mostrecentlypushed: 3, pushedwithinMs: 100 * 3_600_000 }] },
        { repositories: ['team/**'], deleteuntagged: true, deletereferrers: true, keeptags: [] },
      ],
    });
    expect(config.storage.immutabletags).toEqual([{ repositories: ['prod/*'], patterns: ['^release-'] }]);
  });

  it('has no retention without policies, and takes dryrun and delay from the environment', async () => {
    expect((await files.load(doc(''))).config.storage.maintenance.retention).toBeUndefined();
    const { config } = await files.load(doc('  maintenance:\n    retention:\n      policies: [{}]\n'), {
      REGISTRY_STORAGE_MAINTENANCE_RETENTION_DRYRUN: 'true',
      REGISTRY_STORAGE_MAINTENANCE_RETENTION_DELAY: '30m',
    });
    expect(config.storage.maintenance.retention).toMatchObject({ dryrun: true, delayMs: 30 * 60_000 });
  });

  it('names the key of a bad regex, glob, duration or count, and suggests a misspelt key', async () => {
    const policy = (body: string): string => `  maintenance:\n    retention:\n      policies:\n        - ${body}\n`;
    expect(await errorOf(policy(`keeptags: [{ patterns: ['^ok', '(unclosed'] }]`))).toMatch(
      /^config: storage\.maintenance\.retention\.policies\[0\]\.keeptags\[0\]\.patterns\[1\]: not a regular expression/,
    );
    expect(await errorOf(policy(`repositories: ["team/**", "Team/*"]`))).toMatch(/^config: storage\.maintenance\.retention\.policies\[0\]\.repositories\[1\]: "Team\/\*" is not a repository glob/);
    expect(await errorOf(policy(`keeptags: [{ pulledwithin: 30d }]`))).toMatch(/^config: storage\.maintenance\.retention\.policies\[0\]\.keeptags\[0\]\.pulledwithin: expected a duration/);
    expect(await errorOf(policy(`keeptags: [{ mostrecentlypushed: -1 }]`))).toMatch(/keeptags\[0\]\.mostrecentlypushed: expected a whole number/);
    expect(await errorOf(policy(`keeptag: []`))).toBe(
      'config: storage.maintenance.retention.policies[0].keeptag: unknown key (did you mean storage.maintenance.retention.policies[0].keeptags?)',
    );
    expect(await errorOf(policy(`keeptags: [{ mostrecentlypulld: 2 }]`))).toMatch(/did you mean .*keeptags\[0\]\.mostrecentlypulled\?/);
    expect(await errorOf('  maintenance:\n    retention:\n      delay: soon\n      policies: [{}]\n')).toMatch(/^config: storage\.maintenance\.retention\.delay: expected a duration/);
    expect(await errorOf('  maintenance:\n    retention:\n      polices: []\n')).toMatch(/retention\.polices: unknown key \(did you mean storage\.maintenance\.retention\.policies\?\)/);
    expect(await errorOf(`  immutabletags:\n    - repositories: ["a/*"]\n`)).toMatch(/^config: storage\.immutabletags\[0\]\.patterns: missing/);
    expect(await errorOf(`  immutabletags:\n    - patterns: ['[']\n`)).toMatch(/^config: storage\.immutabletags\[0\]\.patterns\[0\]: not a regular expression/);
  });
});

describe('config.example.yaml', () => {
  it('loads its commented retention and immutabletags examples once uncommented', async () => {
    const example = await readFile(fileURLToPath(new URL('../../config.example.yaml', import.meta.url)), 'utf8');
    const lines = example.split('\n');
    const block = (marker: string, indent: string): string => {
      const start = lines.indexOf(`${indent}# ${marker}:`);
      expect(start).toBeGreaterThan(0);
      let end = start + 1;
      while (lines[end]?.startsWith(`${indent}#   `) === true) end += 1;
      return lines.slice(start, end).map((l) => l.replace(`${indent}# `, indent)).join('\n');
    };
    const { config } = await files.load(doc(`  maintenance:\n${block('retention', '    ')}\n${block('immutabletags', '  ')}\n`));
    expect(config.storage.maintenance.retention).toMatchObject({ dryrun: true, delayMs: 24 * 3_600_000 });
    expect(config.storage.maintenance.retention?.policies[0]?.keeptags).toHaveLength(3);
    expect(config.storage.maintenance.retention?.policies[0]?.keeptags[1]).toEqual({ patterns: ['.*'], mostrecentlypushed: 10, pulledwithinMs: 720 * 3_600_000 });
    expect(config.storage.immutabletags).toEqual([{ repositories: ['prod/**'], patterns: ['^v[0-9]+\\.[0-9]+\\.[0-9]+$'] }]);
  });
});
