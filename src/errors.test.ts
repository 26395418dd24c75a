/**
 * Berth answers only with codes a client of the distribution-spec or of registry:2 knows. The lists
 * below are the spec's error-code table (distribution-spec v1.1, "Error Codes") and the codes registry:2
 * registers beyond it (its errcode package and api/v2 errors); the test reads the source, so a code added
 * anywhere, by type or by literal, must be one of them.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from './http/error-response.js';

const SPEC_CODES = [
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED',
  'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
];
const REGISTRY2_CODES = ['UNKNOWN', 'UNAVAILABLE', 'TAG_INVALID', 'RANGE_INVALID', 'PAGINATION_NUMBER_INVALID', 'MANIFEST_UNVERIFIED'];
const KNOWN = new Set([...SPEC_CODES, ...REGISTRY2_CODES]);

const SRC = new URL('.', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

describe('error codes', () => {
  it('the OciCode union holds only the spec\'s and registry:2\'s codes', () => {
    const text = readFileSync(join(SRC, 'errors.ts'), 'utf8');
    const union = /export type OciCode =([^;]+);/.exec(text)?.[1] ?? '';
    const codes = [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]);
    expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((c) => !KNOWN.has(c ?? ''))).toEqual([]);
    expect(Object.keys(ERROR_STATUS).sort()).toEqual([...codes].sort());
  });

  it('every code written in the source (thrown, tested or answered) is one of them', () => {
    const found = new Map<string, string>();
    const usage = /(?:RegistryError|NoRouteError|TooLargeError|tooLarge|readSmallBody)\([^)]*?'([A-Z][A-Z_]+)'|\bcode\s*:\s*(?:OciCode\s*=\s*)?'([A-Z][A-Z_]+)'|return '([A-Z][A-Z_]+)'/g;
    for (const file of sourceFiles(SRC)) {
      for (const m of readFileSync(file, 'utf8').matchAll(usage)) {
        const code = m[1] ?? m[2] ?? m[3];
        if (code !== undefined) found.set(code, file);
      }
    }
    expect(found.size).toBeGreaterThan(5);
    const driverCodes = new Set(['PATH_NOT_FOUND', 'INVALID_PATH', 'INVALID_OFFSET', 'DRIVER_FAILURE']); // DriverError, never answered
    const unknown = [...found].filter(([code]) => !KNOWN.has(code) && !driverCodes.has(code));
    // Internal error classes (`readonly code = 'GC_BUSY'`…) are not matched: they never reach a client
    // as such (error-response.ts answers anything but a RegistryError as UNKNOWN).
    expect(unknown).toEqual([]);
  });
});
