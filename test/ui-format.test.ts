/** The web UI's formatting (web/src/format.ts): pure functions, no browser needed. */
import { describe, expect, it } from 'vitest';
import { bytes, platformName, shortDigest, when } from '../web/src/format.js';

describe('web UI formatting', () => {
  it('formats sizes, times, digests and platforms', () => {
    expect([bytes(999), bytes(1000), bytes(2_120_000), bytes(16_648), bytes(undefined)]).toEqual(['999 B', '1.00 kB', '2.12 MB', '16.6 kB', '—']);
    expect(when('2026-11-02T10:00:00Z')).toBe('2026-11-02 10:00 UTC');
    expect([when(null), when(undefined), when('not a time')]).toEqual(['—', '—', 'not a time']);
    expect(shortDigest(`sha256:${'ab'.repeat(32)}`)).toBe('sha256:abababababab');
    expect(platformName({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
    expect(platformName(undefined)).toBe('unknown platform');
  });
});
