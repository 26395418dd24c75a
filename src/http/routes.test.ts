/**
 * The route table over raw paths, with multi-segment names and names that contain route keywords
 * (D:registry/api/v2/routes_test.go). A malformed name still routes; the handler refuses it.
 */
import { describe, expect, it } from 'vitest';
import type { RouteName } from './routes.js';
import { matchRoute, ROUTE_NAMES, ROUTES } from './routes.js';

const HEX = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const DIGEST = `sha256:${HEX}`;
const UUID = '41f2948d-9757-48f7-bc4c-fb6d86687a4f';

describe('matchRoute', () => {
  const cases: readonly (readonly [string, RouteName, Record<string, string>])[] = [
    ['/v2/', 'base', {}],
    ['/v2', 'base', {}],
    ['/v2/_catalog', 'catalog', {}],
    ['/v2/a/tags/list', 'tags', { name: 'a' }],
    ['/v2/a/b/tags/list', 'tags', { name: 'a/b' }],
    ['/v2/a/b/manifests/latest', 'manifest', { name: 'a/b', reference: 'latest' }],
    ['/v2/library/tiny/manifests/v1', 'manifest', { name: 'library/tiny', reference: 'v1' }],
    [`/v2/a/manifests/${DIGEST}`, 'manifest', { name: 'a', reference: DIGEST }],
    ['/v2/a/b/manifests/manifests/tags', 'manifest', { name: 'a/b/manifests', reference: 'tags' }],
    ['/v2/a/tags/list/manifests/x', 'manifest', { name: 'a/tags/list', reference: 'x' }],
    ['/v2/a/manifests/b/tags/list', 'tags', { name: 'a/manifests/b' }],
    ['/v2/a/blobs/uploads/', 'blob-upload-start', { name: 'a' }],
    ['/v2/a/blobs/uploads', 'blob-upload-start', { name: 'a' }],
    ['/v2/library/tiny/blobs/uploads/', 'blob-upload-start', { name: 'library/tiny' }],
    [`/v2/a/blobs/uploads/${UUID}`, 'blob-upload', { name: 'a', uuid: UUID }],
    [`/v2/a/b/c/blobs/uploads/${UUID}`, 'blob-upload', { name: 'a/b/c', uuid: UUID }],
    [`/v2/a/blobs/${DIGEST}`, 'blob', { name: 'a', digest: DIGEST }],
    [`/v2/a/b/blobs/${DIGEST}`, 'blob', { name: 'a/b', digest: DIGEST }],
    [`/v2/blobs/uploads/blobs/${DIGEST}`, 'blob', { name: 'blobs/uploads', digest: DIGEST }],
    [`/v2/a/referrers/${DIGEST}`, 'referrers', { name: 'a', digest: DIGEST }],
    [`/v2/a/b/referrers/${DIGEST}`, 'referrers', { name: 'a/b', digest: DIGEST }],
    ['/v2/a/..%2f/manifests/x', 'manifest', { name: 'a/..%2f', reference: 'x' }],
    ['/v2/../manifests/x', 'manifest', { name: '..', reference: 'x' }],
    ['/v2/A/tags/list', 'tags', { name: 'A' }],
  ];

  it.each(cases)('%s → %s', (path, name, params) => {
    const m = matchRoute(path);
    expect(m?.route.name).toBe(name);
    expect(m?.params).toEqual(params);
  });

  it.each([
    '/v1/x',
    '/v1/',
    '/',
    '',
    '/v2x',
    '/v3/',
    '/v2//',
    '/v2/_catalog/',
    '/v2/a/tags/list/',
    '/v2/a/manifests/',
    '/v2/a/manifests',
    '/v2/a/b/manifests/x/y',
    '/v2/a/blobs/',
    '/v2/a/blobs/uploads/x/y',
    '/v2/a/referrers/',
    '/v2/a',
    '/v2/a/unknown/x',
    '/v2/tags/list',
    '/v2/manifests/x',
    '/V2/',
  ])('%j matches nothing', (path) => {
    expect(matchRoute(path)).toBeUndefined();
  });
});

describe('ROUTES', () => {
  it('has one route per name, with the route name constants', () => {
    expect(ROUTES.map((r) => r.name)).toEqual([
      'base',
      'catalog',
      'tags',
      'manifest',
      'blob-upload-start',
      'blob-upload',
      'blob',
      'referrers',
    ]);
    expect(new Set(Object.values(ROUTE_NAMES)).size).toBe(ROUTES.length);
  });

  it.each([
    ['base', ['GET', 'HEAD'], 'none'],
    ['catalog', ['GET'], 'catalog'],
    ['tags', ['GET'], 'repository'],
    ['manifest', ['GET', 'HEAD', 'PUT', 'DELETE'], 'repository'],
    ['blob-upload-start', ['POST'], 'repository'],
    ['blob-upload', ['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'], 'repository'],
    ['blob', ['GET', 'HEAD', 'DELETE'], 'repository'],
    ['referrers', ['GET'], 'repository'],
  ] as const)('%s answers %j with scope %s', (name, methods, scope) => {
    const route = ROUTES.find((r) => r.name === name);
    expect(route).toBeDefined();
    expect(Object.keys(route?.methods ?? {}).sort()).toEqual([...methods].sort());
    expect(Object.values(route?.methods ?? {}).every((h) => typeof h === 'function')).toBe(true);
    expect(route?.scope).toBe(scope);
  });
});

it('gives every call its own params, also for the same path twice in a row (the last match is kept)', () => {
  const first = matchRoute('/v2/a/b/manifests/latest');
  expect(first?.params['name']).toBe('a/b');
  if (first) first.params['name'] = 'mirror/a/b'; // as dispatch does for a mirror's name
  const again = matchRoute('/v2/a/b/manifests/latest');
  expect(again?.params).toEqual({ name: 'a/b', reference: 'latest' });
  expect(matchRoute('/v2/a/b/manifests/other')?.params['reference']).toBe('other');
  expect(matchRoute('/nothing')).toBeUndefined();
  expect(matchRoute('/nothing')).toBeUndefined();
});
