/**
 * Range (blob reads, RFC 9110 §14), Content-Range (upload chunks, distribution-spec), the upload Range
 * answer (registry:2's `0-<size-1>`, `0-0` when empty) and the pagination Link header.
 */
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import type { ByteRange } from './headers.js';
import { nextLink, parseContentRange, parseRange, uploadRange } from './headers.js';

describe('parseRange', () => {
  const cases: readonly (readonly [string | undefined, number, ByteRange | 'unsatisfiable' | undefined])[] = [
    [undefined, 10, undefined],
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=1-3', 10, { start: 1, end: 3 }],
    ['bytes=0-9', 10, { start: 0, end: 9 }],
    ['bytes=9-9', 10, { start: 9, end: 9 }],
    ['bytes=5-', 10, { start: 5, end: 9 }],
    ['bytes=0-', 10, { start: 0, end: 9 }],
    ['bytes=-2', 10, { start: 8, end: 9 }],
    ['bytes=-10', 10, { start: 0, end: 9 }],
    ['bytes=-100', 10, { start: 0, end: 9 }],
    ['bytes=-0', 10, 'unsatisfiable'],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=10-20', 10, 'unsatisfiable'],
    ['bytes=100-200', 10, 'unsatisfiable'],
    ['bytes=0-100', 10, { start: 0, end: 9 }],
    ['bytes=5-10', 10, { start: 5, end: 9 }],
    [' bytes=1-3 ', 10, { start: 1, end: 3 }],
    ['bytes=3-1', 10, undefined],
    ['bytes=0-1,3-4', 10, undefined],
    ['bytes=0-1, 3-4', 10, undefined],
    ['bytes=-', 10, undefined],
    ['bytes=', 10, undefined],
    ['bytes=a-b', 10, undefined],
    ['bytes=1.5-3', 10, undefined],
    ['bytes 1-3', 10, undefined],
    ['items=1-3', 10, undefined],
    ['1-3', 10, undefined],
    ['', 10, undefined],
    ['garbage', 10, undefined],
    ['bytes=0-0', 0, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-1', 0, 'unsatisfiable'],
    ['bytes=0-0', 1, { start: 0, end: 0 }],
    ['bytes=-5', 1, { start: 0, end: 0 }],
  ];
  it.each(cases)('%j of %d bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('parseContentRange', () => {
  it.each([
    ['0-99', { start: 0, end: 99 }],
    ['0-0', { start: 0, end: 0 }],
    ['100-199', { start: 100, end: 199 }],
    ['bytes 0-99/100', { start: 0, end: 99 }],
    ['bytes 0-99/*', { start: 0, end: 99 }],
    ['bytes 100-199', { start: 100, end: 199 }],
    ['0-99/1000', { start: 0, end: 99 }],
    [' 0-99 ', { start: 0, end: 99 }],
  ])('%j', (header, expected) => {
    expect(parseContentRange(header)).toEqual(expected);
  });

  it.each([undefined, ''])('%j is absent', (header) => {
    expect(parseContentRange(header)).toBeUndefined();
  });

  it.each([
    ['no end', '0-'],
    ['no start', '-99'],
    ['letters', 'a-b'],
    ['negative', '-1-5'],
    ['equals form', 'bytes=0-99'],
    ['garbage', 'garbage'],
    ['bad total', 'bytes 0-99/x'],
    ['two ranges', '0-1,2-3'],
    ['end before start', '10-5'],
    ['end before start, bytes form', 'bytes 100-99/200'],
    ['beyond safe integers', '0-99999999999999999999'],
  ])('refuses %s (%j) with RANGE_INVALID', (_what, header) => {
    let caught: unknown;
    try {
      parseContentRange(header);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RegistryError);
    expect((caught as RegistryError).code).toBe('RANGE_INVALID');
  });
});

describe('uploadRange', () => {
  it.each([
    [0, '0-0'],
    [1, '0-0'],
    [2, '0-1'],
    [100, '0-99'],
    [100_000, '0-99999'],
  ])('%d bytes → %s', (size, expected) => {
    expect(uploadRange(size)).toBe(expected);
  });
});

describe('nextLink', () => {
  it.each([
    ['/v2/_catalog', { n: '2', last: 'b' }, '</v2/_catalog?n=2&last=b>; rel="next"'],
    ['/v2/library/tiny/tags/list', { n: '100', last: 'v1.2' }, '</v2/library/tiny/tags/list?n=100&last=v1.2>; rel="next"'],
    ['/v2/_catalog', { n: '1', last: 'library/tiny' }, '</v2/_catalog?n=1&last=library%2Ftiny>; rel="next"'],
    ['/v2/a/tags/list', { last: 'a b&c' }, '</v2/a/tags/list?last=a+b%26c>; rel="next"'],
  ])('%s %j', (path, params, expected) => {
    expect(nextLink(path, params)).toBe(expected);
  });
});
