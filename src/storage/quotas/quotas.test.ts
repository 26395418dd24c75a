/**
 * Quotas over the storage API and the memory driver: the figures of the walk (deduplicated bytes, the
 * repository count), what an index's figures change (a stale index never blocks a push; an index that
 * knows a blob lets it through for free), and the byte formatting of the messages.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isRegistryError } from '../../errors.js';
import { type Digest, digestOf } from '../digest.js';
import { createMemoryDriver } from '../driver/memory.js';
import type { RegistryIndex, RepoScope, ScopeUsage } from '../indexing/index-port.js';
import { parseRepoName } from '../reference.js';
import { type LocalRegistry, type QuotaReading, type QuotaSpec, type QuotaWarning, createRegistry } from '../registry.js';
import { walkScopeUsage } from './scope-walk.js';
import { createBlobStore } from '../blobs/blobs.js';
import { formatBytes, formatPair } from './quotas.js';

async function push(registry: LocalRegistry, name: string, data: Buffer): Promise<Digest> {
  const d = digestOf(data);
  const uploads = registry.repository(parseRepoName(name)).uploads;
  const session = await uploads.start();
  await uploads.commit(session.id, d, Readable.from([data]));
  return d;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isRegistryError(err, 'DENIED')) return err.message;
    throw err;
  }
  return 'admitted';
}

/** An index that answers only the quota figures, with whatever the test sets (stale on purpose). */
function figuresIndex(figures: { usage?: ScopeUsage; links?: boolean }): RegistryIndex & { asked: RepoScope[] } {
  const asked: RepoScope[] = [];
  return {
    asked,
    repositories: async () => undefined,
    tags: async () => undefined,
    referrers: async () => undefined,
    onChange: async () => undefined,
    async scopeUsage(scope) {
      asked.push(scope);
      return figures.usage;
    },
    scopeLinks: async () => figures.links,
  };
}

const bytes = (n: number, seed: number): Buffer => Buffer.alloc(n, seed);

describe('quota figures read from storage', () => {
  it('count each distinct blob once across the repositories of the glob, and only those', async () => {
    const driver = createMemoryDriver();
    const registry = createRegistry({ driver, deleteEnabled: true });
    await push(registry, 'team/a', bytes(100, 1));
    await push(registry, 'team/b', bytes(100, 1));
    await push(registry, 'team/b/deep', bytes(50, 2));
    await push(registry, 'teamx/a', bytes(1000, 3));
    const scope = (accepts: (n: string) => boolean, prefix: string): RepoScope => ({ prefix, accepts });
    expect(await walkScopeUsage(driver, createBlobStore(driver), scope((n) => n.startsWith('team/'), 'team/'))).toMatchObject({ bytes: 150, repositories: 3 });
    expect(await walkScopeUsage(driver, createBlobStore(driver), scope((n) => /^team\/[^/]+$/.test(n), 'team/'))).toMatchObject({ bytes: 100, repositories: 2 });
    expect(await walkScopeUsage(driver, createBlobStore(driver), scope(() => true, ''))).toMatchObject({ bytes: 1150, repositories: 4 });
  });
});

describe('quotas with an index', () => {
  const spec: QuotaSpec = { repositories: ['team/**'], storageBytes: 1000, maxrepositories: 2 };

  it('are asked of the index with the glob literal prefix as the scope', async () => {
    const index = figuresIndex({ usage: { bytes: 0, repositories: 0 }, links: false });
    const registry = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true, index, quotas: [spec] });
    await push(registry, 'team/a', bytes(10, 1));
    expect(index.asked.length).toBeGreaterThan(0);
    expect(index.asked[0]?.prefix).toBe('team/');
    expect(index.asked[0]?.accepts(parseRepoName('team/x/y'))).toBe(true);
    expect(index.asked[0]?.accepts(parseRepoName('teamx'))).toBe(false);
  });

  it('never refuse on a stale index figure: storage is read again first', async () => {
    const readings: QuotaReading[] = [];
    const index = figuresIndex({ usage: { bytes: 5000, repositories: 9 }, links: false });
    const registry = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true, index, quotas: [spec], observeQuota: (r) => readings.push(r) });
    expect(await refusal(push(registry, 'team/a', bytes(600, 1)))).toBe('admitted');
    expect(readings.at(-2)).toEqual({ quota: 'team/**', kind: 'storage', used: 600, limit: 1000 });
    // The truth is over now: refused, with storage's figures, not the index's.
    expect(await refusal(push(registry, 'team/a', bytes(600, 2)))).toBe('quota exceeded: storage of team/** would be 1.2 KiB, limit 1000 bytes (storage.quotas[0])');
    expect(await refusal(push(registry, 'team/b', bytes(10, 3)))).toBe('admitted');
    expect(await refusal(push(registry, 'team/c', bytes(10, 4)))).toBe('quota exceeded: team/** would hold 3 repositories, limit 2 (storage.quotas[0])');
  });

  it('let a blob through for free when the index says the glob links it', async () => {
    const index = figuresIndex({ usage: { bytes: 990, repositories: 1 }, links: true });
    const registry = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true, index, quotas: [{ repositories: ['team/**'], storageBytes: 1000 }] });
    expect(await refusal(push(registry, 'team/a', bytes(500, 1)))).toBe('admitted');
  });
});

describe('quota warnings at 85%', () => {
  it('are told once per crossing, after the link, and again only once usage fell below the mark', async () => {
    const warnings: QuotaWarning[] = [];
    let linkedBeforeWarning = false;
    const registry: LocalRegistry = createRegistry({
      driver: createMemoryDriver(), deleteEnabled: true, quotas: [{ repositories: ['team/**'], storageBytes: 1000, maxrepositories: 4 }],
      warnQuota: async (w) => {
        linkedBeforeWarning = (await registry.repository(w.repository).blobs.stat(w.digest)) !== undefined;
        warnings.push(w);
      },
    });
    await push(registry, 'team/a', bytes(800, 1));
    expect(warnings).toEqual([]);
    const crossing = await push(registry, 'team/a', bytes(60, 2));
    expect(warnings).toEqual([{
      quota: 'team/**', key: 'storage.quotas[0]', repositories: ['team/**'], namespace: 'team', kind: 'storage',
      before: 800, used: 860, limit: 1000, repository: 'team/a', digest: crossing,
    }]);
    expect(linkedBeforeWarning).toBe(true);
    await push(registry, 'team/a', bytes(40, 3)); // 900, still above: nothing
    expect(warnings).toHaveLength(1);
    await registry.repository(parseRepoName('team/a')).blobs.delete(crossing); // 840: below again
    await push(registry, 'team/a', bytes(10, 4));
    expect(warnings).toHaveLength(2);
    // The repository count: 4 × 0.85 = 3.4, crossed by the fourth repository.
    await push(registry, 'team/b', bytes(1, 5));
    await push(registry, 'team/c', bytes(1, 6));
    expect(warnings).toHaveLength(2);
    await push(registry, 'team/d', bytes(1, 7));
    expect(warnings.slice(2).map((w) => [w.kind, w.before, w.used])).toEqual([['repositories', 3, 4]]);
  });
});

describe('quota messages', () => {
  it('show bytes in binary units, with decimals only where they keep usage and limit apart', () => {
    expect(formatBytes(10 * 2 ** 30)).toBe('10 GiB');
    expect(formatBytes(10.2 * 2 ** 30)).toBe('10.2 GiB');
    expect(formatBytes(512)).toBe('512 bytes');
    expect(formatPair(10.2 * 2 ** 30, 10 * 2 ** 30)).toEqual(['10.2 GiB', '10 GiB']);
    expect(formatPair(10 * 2 ** 30 + 2 ** 24, 10 * 2 ** 30)).toEqual(['10.02 GiB', '10 GiB']);
    expect(formatPair(10 * 2 ** 30 + 1, 10 * 2 ** 30)).toEqual(['10737418241 bytes', '10737418240 bytes']);
  });
});
