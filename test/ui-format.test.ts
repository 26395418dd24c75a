/** The web UI's ordering and formatting (web/src/format.ts): pure functions, no browser needed. */
import { describe, expect, it } from 'vitest';
import { bytes, compareVersionsDesc, platformName, shortDigest, sortByVersionDesc, when } from '../web/src/format.js';

describe('web UI formatting', () => {
  it('orders tags by version, newest first: numbers by value, releases after their pre-releases, words last', () => {
    const tags = ['1.2.0', 'latest', 'v1.10.0', '1.9.2', '1.2.0-rc1', '1.2', '2', 'edge', '1.2.1', '1.2.0-rc10', '1.2.0-rc2'];
    const newestFirst = ['2', 'v1.10.0', '1.9.2', '1.2.1', '1.2.0', '1.2.0-rc10', '1.2.0-rc2', '1.2.0-rc1', '1.2', 'latest', 'edge'];
    expect([...tags].sort(compareVersionsDesc)).toEqual(newestFirst);
    // The page's sort (each tag parsed once) gives the same order, whatever order the rows come in.
    const rows = tags.map((tag) => ({ tag }));
    expect(sortByVersionDesc(rows, (r) => r.tag).map((r) => r.tag)).toEqual(newestFirst);
    expect(sortByVersionDesc([...rows].reverse(), (r) => r.tag).map((r) => r.tag)).toEqual(newestFirst);
  });

  it('formats sizes, times, digests and platforms', () => {
    expect([bytes(999), bytes(1000), bytes(2_120_000), bytes(16_648), bytes(undefined)]).toEqual(['999 B', '1.00 kB', '2.12 MB', '16.6 kB', '—']);
    expect(when('2026-11-02T10:00:00Z')).toBe('2026-11-02 10:00 UTC');
    expect([when(null), when(undefined), when('not a time')]).toEqual(['—', '—', 'not a time']);
    expect(shortDigest(`sha256:${'ab'.repeat(32)}`)).toBe('sha256:abababababab');
    expect(platformName({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
    expect(platformName(undefined)).toBe('unknown platform');
  });
});
