/**
 * What a path or method that is no endpoint gets, against a real Berth: a known endpoint asked with a
 * wrong method is 405 UNSUPPORTED with `Allow` (as registry:2); a path no route matches is 404 with the
 * spec's code that fits it, as JSON; nothing is logged as a bug.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blob, errorCode, raw } from './helpers/oci.js';

let berth: TestBerth;
beforeAll(async () => {
  berth = await startBerth();
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

const digest = blob('x').digest;

describe('a known endpoint with a method it does not serve', () => {
  it.each([
    ['DELETE', '/v2/a/tags/list', 'GET, HEAD'],
    ['PUT', `/v2/a/blobs/${digest}`, 'GET, HEAD, DELETE'],
    ['PATCH', '/v2/_catalog', 'GET, HEAD'],
    ['POST', '/v2/a/manifests/latest', 'GET, HEAD, PUT, DELETE'],
    ['PUT', '/v2/a/blobs/uploads/', 'POST'],
    ['DELETE', `/v2/a/referrers/${digest}`, 'GET, HEAD'],
    ['DELETE', '/v2/', 'GET, HEAD'],
  ])('%s %s is 405 UNSUPPORTED, Allow: %s', async (method, path, allow) => {
    const res = await raw(berth.url, method, path, { body: method === 'PUT' || method === 'PATCH' ? 'x' : undefined });
    expect(res.status).toBe(405);
    expect(res.header('Content-Type')).toMatch(/^application\/json/);
    expect(errorCode(res)).toBe('UNSUPPORTED');
    expect(res.header('Allow')).toBe(allow);
  });
});

describe('a path that is no endpoint', () => {
  it.each([
    ['/v2/a/blobs/sha256:abc/def', 'DIGEST_INVALID'],
    [`/v2/a/blobs/${digest}/extra`, 'DIGEST_INVALID'],
    ['/v2/a/blobs', 'BLOB_UNKNOWN'],
    ['/v2/a/blobs/uploads/x/y', 'BLOB_UPLOAD_UNKNOWN'],
    ['/v2/a/manifests/x/y', 'MANIFEST_UNKNOWN'],
    ['/v2/a/manifests', 'MANIFEST_UNKNOWN'],
    ['/v2/a/referrers/x/y', 'DIGEST_INVALID'],
    ['/v2/a/tags/other', 'NAME_UNKNOWN'],
    ['/v2/UPPER/case', 'NAME_INVALID'],
    ['/v2/a/../b', 'NAME_INVALID'],
    ['/v2/some/repo', 'NAME_UNKNOWN'],
    ['/nothing-here', 'UNSUPPORTED'],
    ['/v1/_ping', 'UNSUPPORTED'],
  ])('GET %s is 404 %s', async (path, code) => {
    const res = await raw(berth.url, 'GET', path);
    expect(res.status).toBe(404);
    expect(res.header('Content-Type')).toMatch(/^application\/json/);
    expect(errorCode(res)).toBe(code);
  });
});
