/**
 * Names, tags, digests and upload ids as they arrive in a URL: the grammar of DESIGN.md §4 and the
 * error code each refusal carries (D:reference/regexp.go; D:registry/api/v2/routes_test.go).
 */
import { describe, expect, it } from 'vitest';
import type { OciCode } from '../errors.js';
import { RegistryError } from '../errors.js';
import {
  MAX_NAME_LENGTH,
  parseDigestParam,
  parseReference,
  parseRepoName,
  parseTag,
  parseUploadId,
  referenceString,
} from './reference.js';

const HEX256 = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const HEX512 =
  '9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043';

/** Runs `fn` and returns the RegistryError it throws; fails the test if it throws anything else or nothing. */
function registryErrorOf(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw new Error(`expected a RegistryError, got ${String(err)}`);
  }
  throw new Error('expected a RegistryError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: OciCode): void {
  expect(registryErrorOf(fn).code).toBe(code);
}

/** A valid name of exactly 255 characters made of 128 one-letter components, and one of 256. */
const NESTED_255 = `${'a/'.repeat(127)}a`;
const NESTED_256 = `${'a/'.repeat(127)}ab`;

describe('parseRepoName', () => {
  const valid: readonly string[] = [
    'a',
    '0',
    'a/b',
    'library/tiny',
    'a/b/c/d',
    'a-b',
    'a--b',
    'a---b',
    'a__b',
    'a.b',
    'a_b',
    'a1.b2_c3__d4-e5',
    'x'.repeat(MAX_NAME_LENGTH),
    NESTED_255,
  ];
  it.each(valid.map((s) => [s.length > 40 ? `${s.slice(0, 20)}…(${s.length})` : s, s]))('accepts %s', (_label, s) => {
    expect(parseRepoName(s)).toBe(s);
  });

  it('uses 255 as the limit', () => {
    expect(MAX_NAME_LENGTH).toBe(255);
    expect(NESTED_255).toHaveLength(255);
    expect(NESTED_256).toHaveLength(256);
  });

  const invalid: readonly (readonly [string, string])[] = [
    ['upper case', 'Library/tiny'],
    ['upper case inside', 'aB'],
    ['dot dot', '..'],
    ['single dot', '.'],
    ['dot dot component', 'a/../b'],
    ['dot component', 'a/./b'],
    ['double slash only', '//'],
    ['leading slash', '/a'],
    ['trailing slash', 'a/'],
    ['empty component', 'a//b'],
    ['percent-encoded dots', '%2e%2e'],
    ['percent-encoded slash', 'a%2fb'],
    ['256 characters', 'x'.repeat(256)],
    ['256 characters with slashes', NESTED_256],
    ['leading underscore', '_a'],
    ['trailing underscore', 'a_'],
    ['triple underscore', 'a___b'],
    ['double dot separator', 'a..b'],
    ['leading dot', '.a'],
    ['trailing dot', 'a.'],
    ['leading dash', '-a'],
    ['trailing dash', 'a-'],
    ['empty', ''],
    ['space', 'a b'],
    ['leading space', ' a'],
    ['trailing newline', 'a\n'],
    ['unicode', 'café'],
    ['unicode lookalike', 'а'], // Cyrillic a
    ['colon', 'a:b'],
    ['backslash', 'a\\b'],
    ['NUL', 'a\u0000b'],
  ];
  it.each(invalid)('refuses %s with NAME_INVALID', (_what, s) => {
    expectCode(() => parseRepoName(s), 'NAME_INVALID');
  });
});

describe('parseTag', () => {
  const valid: readonly string[] = [
    'latest',
    'v1',
    '1',
    'V1.2.3',
    '_private',
    'a.b-c_d',
    '1.0-rc.1',
    'sha256-abc.sig',
    'x'.repeat(128),
  ];
  it.each(valid.map((s) => [s.length > 40 ? `${s.slice(0, 10)}…(${s.length})` : s, s]))('accepts %s', (_label, s) => {
    expect(parseTag(s)).toBe(s);
  });

  const invalid: readonly (readonly [string, string])[] = [
    ['129 characters', 'x'.repeat(129)],
    ['empty', ''],
    ['leading dot', '.latest'],
    ['dot dot', '..'],
    ['leading dash', '-v1'],
    ['slash', 'a/b'],
    ['colon', 'a:b'],
    ['space', 'a b'],
    ['plus', 'v1+build'],
    ['unicode', 'tâg'],
    ['percent-encoded', '%2e%2e'],
    ['trailing newline', 'v1\n'],
  ];
  it.each(invalid)('refuses %s with TAG_INVALID', (_what, s) => {
    expectCode(() => parseTag(s), 'TAG_INVALID');
  });

  it('puts the tag in the error detail', () => {
    expect(registryErrorOf(() => parseTag('-x')).detail).toEqual({ tag: '-x' });
  });
});

describe('parseDigestParam', () => {
  it.each([`sha256:${HEX256}`, `sha512:${HEX512}`])('accepts %s', (s) => {
    expect(parseDigestParam(s)).toBe(s);
  });

  const invalid: readonly (readonly [string, string])[] = [
    ['upper-case hex', `sha256:${HEX256.toUpperCase()}`],
    ['one upper-case hex digit', `sha256:${HEX256.slice(0, 63)}A`],
    ['sha256 too short', `sha256:${HEX256.slice(0, 63)}`],
    ['sha256 too long', `sha256:${HEX256}0`],
    ['sha512 with sha256 length', `sha512:${HEX256}`],
    ['sha256 with sha512 length', `sha256:${HEX512}`],
    ['unknown algorithm', 'md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['upper-case algorithm', `SHA256:${HEX256}`],
    ['empty hex', 'sha256:'],
    ['empty algorithm', `:${HEX256}`],
    ['no colon', HEX256],
    ['two colons', `sha256:${HEX256}:x`],
    ['path traversal', 'sha256:../../x'],
    ['slash in hex', `sha256:${HEX256.slice(0, 32)}/${HEX256.slice(33)}`],
    ['non-hex letter', `sha256:${HEX256.slice(0, 63)}g`],
    ['empty', ''],
  ];
  it.each(invalid)('refuses %s with DIGEST_INVALID', (_what, s) => {
    expectCode(() => parseDigestParam(s), 'DIGEST_INVALID');
  });

  it('puts the digest in the error detail', () => {
    expect(registryErrorOf(() => parseDigestParam('md5:00')).detail).toEqual({ digest: 'md5:00' });
  });
});

describe('parseReference', () => {
  it.each([
    ['latest', { tag: 'latest' }],
    ['v1.2', { tag: 'v1.2' }],
    [`sha256:${HEX256}`, { digest: `sha256:${HEX256}` }],
    [`sha512:${HEX512}`, { digest: `sha512:${HEX512}` }],
  ])('parses %s', (s, expected) => {
    const ref = parseReference(s);
    expect(ref).toEqual(expected);
    expect(referenceString(ref)).toBe(s);
  });

  it.each([
    ['bad digest', 'sha256:abc', 'DIGEST_INVALID'],
    ['unknown algorithm', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_INVALID'],
    ['colon makes it a digest', 'v1:2', 'DIGEST_INVALID'],
    ['bad tag', '.hidden', 'TAG_INVALID'],
    ['empty', '', 'TAG_INVALID'],
    ['too long tag', 'x'.repeat(129), 'TAG_INVALID'],
  ] as const)('refuses %s with %s', (_what, s, code) => {
    expectCode(() => parseReference(s), code);
  });
});

describe('parseUploadId', () => {
  it.each(['41f2948d-9757-48f7-bc4c-fb6d86687a4f', '00000000-0000-0000-0000-000000000000'])('accepts %s', (s) => {
    expect(parseUploadId(s)).toBe(s);
  });

  it.each([
    ['upper case', '41F2948D-9757-48F7-BC4C-FB6D86687A4F'],
    ['no dashes', '41f2948d975748f7bc4cfb6d86687a4f'],
    ['too short', '41f2948d-9757-48f7-bc4c-fb6d86687a4'],
    ['too long', '41f2948d-9757-48f7-bc4c-fb6d86687a4f0'],
    ['path traversal', '..'],
    ['slash', '41f2948d-9757-48f7-bc4c/fb6d86687a4f'],
    ['braces', '{41f2948d-9757-48f7-bc4c-fb6d86687a4f}'],
    ['empty', ''],
  ])('refuses %s with BLOB_UPLOAD_UNKNOWN', (_what, s) => {
    expectCode(() => parseUploadId(s), 'BLOB_UPLOAD_UNKNOWN');
  });
});
