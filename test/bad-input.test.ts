/**
 * Bad input against a real listening Berth: invalid names, tags and digests get the spec's error and
 * change nothing on disk; no request reaches outside the storage root; a client error is never a 500.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blob, errorCode, makeImage, pushImage, raw } from './helpers/oci.js';

let berth: TestBerth;
let sentinelDir: string;
beforeAll(async () => {
  berth = await startBerth();
  await pushImage(berth.url, 'good/repo', 'v1', makeImage(1));
  // A file beside the storage root that a traversal would reach: it must never be served or touched.
  sentinelDir = join(berth.root, '..', `${join(berth.root).split('/').pop()}-outside`);
  await mkdir(sentinelDir, { recursive: true });
  await writeFile(join(sentinelDir, 'secret'), 'do not serve');
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

async function tree(): Promise<string[]> {
  return (await readdir(berth.root, { recursive: true })).map(String).sort();
}

const BAD_NAMES = [
  'UPPER/case',
  'a/../b',
  '..',
  'a//b',
  '/leading',
  'trailing/',
  `${'a'.repeat(256)}`,
  `${'abc/'.repeat(63)}abcd`,
  '%2e%2e',
  'a/%2e%2e/b',
  'a%2fb',
  '_layers',
  'a/_manifests',
  'a..b',
  '-a',
];

describe('invalid repository names', () => {
  const digest = blob('x').digest;
  const requests: [string, (name: string) => string][] = [
    ['GET', (n) => `/v2/${n}/manifests/latest`],
    ['PUT', (n) => `/v2/${n}/manifests/latest`],
    ['DELETE', (n) => `/v2/${n}/manifests/${digest}`],
    ['GET', (n) => `/v2/${n}/blobs/${digest}`],
    ['POST', (n) => `/v2/${n}/blobs/uploads/`],
    ['POST', (n) => `/v2/${n}/blobs/uploads/?digest=${digest}`],
    ['GET', (n) => `/v2/${n}/tags/list`],
    ['GET', (n) => `/v2/${n}/referrers/${digest}`],
  ];

  it.each(BAD_NAMES)('%s is NAME_INVALID on every endpoint and changes nothing', async (name) => {
    const before = await tree();
    for (const [method, path] of requests) {
      const res = await raw(berth.url, method, path(name), { body: method === 'GET' ? undefined : 'x' });
      expect(res.status, `${method} ${path(name)}`).toBe(400);
      expect(errorCode(res), `${method} ${path(name)}`).toBe('NAME_INVALID');
    }
    expect(await tree()).toEqual(before);
  });

  it('a name of exactly 255 characters is accepted', async () => {
    const name = `${'abcdefghi/'.repeat(25)}abcde`;
    expect(name.length).toBe(255);
    expect((await raw(berth.url, 'POST', `/v2/${name}/blobs/uploads/`)).status).toBe(202);
  });
});

describe('invalid tags and digests', () => {
  it.each(['-dash', '.dot', 'a'.repeat(129), 'x%20y', 'tag/with'])('tag %s is refused', async (tag) => {
    const before = await tree();
    const res = await raw(berth.url, 'PUT', `/v2/good/repo/manifests/${tag}`, { body: '{}' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(await tree()).toEqual(before);
  });

  it.each([
    'sha256:abc',
    `sha256:${'A'.repeat(64)}`,
    `md5:${'a'.repeat(32)}`,
    `sha384:${'a'.repeat(96)}`,
    'sha256:../../../etc/passwd',
    `sha256:${'a'.repeat(63)}g`,
    ':',
  ])('digest %s is DIGEST_INVALID', async (digest) => {
    for (const [method, path] of [
      ['GET', `/v2/good/repo/blobs/${digest}`],
      ['GET', `/v2/good/repo/manifests/${digest}`],
      ['DELETE', `/v2/good/repo/blobs/${digest}`],
      ['POST', `/v2/good/repo/blobs/uploads/?digest=${encodeURIComponent(digest)}`],
    ] as const) {
      const res = await raw(berth.url, method, path, { body: method === 'POST' ? 'x' : undefined });
      // A digest with '/' in the path routes nowhere (404, still DIGEST_INVALID); in the query it is checked as a digest.
      expect(errorCode(res), `${method} ${path}`).toBe('DIGEST_INVALID');
    }
  });
});

describe('nothing outside the storage root', () => {
  const outside = (): string => sentinelDir.split('/').pop() ?? '';

  it('traversal attempts in every position are refused and read nothing', async () => {
    const attempts = [
      `/v2/../${outside()}/secret`,
      `/v2/good/repo/../../../${outside()}/manifests/secret`,
      `/v2/good/repo/blobs/..%2f..%2f${outside()}%2fsecret`,
      `/v2/good/repo/blobs/uploads/..%2f..%2f${outside()}`,
      `/v2/good/repo/manifests/..%2f..%2f..%2f${outside()}%2fsecret`,
      `/v2/%2e%2e/%2e%2e/${outside()}/tags/list`,
    ];
    for (const path of attempts) {
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
        const res = await raw(berth.url, method, path, { body: method === 'GET' ? undefined : 'x' });
        expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
        expect(res.body.toString()).not.toContain('do not serve');
      }
    }
    expect(await readdir(sentinelDir)).toEqual(['secret']);
  });

  it('`last` is only compared, never used as a path', async () => {
    const res = await raw(berth.url, 'GET', '/v2/good/repo/tags/list?last=../../../../etc');
    expect(res.json()).toEqual({ name: 'good/repo', tags: ['v1'] });
  });
});

describe('client errors are never 500', () => {
  it('odd requests on every route answer 4xx with a JSON error', async () => {
    const b = blob('y');
    const cases: [string, string, Record<string, string>?, string?][] = [
      ['PATCH', '/v2/good/repo/manifests/v1'],
      ['POST', '/v2/good/repo/manifests/v1'],
      ['PUT', '/v2/good/repo/blobs/uploads/'],
      ['GET', '/v2/_catalog?n=x'],
      ['GET', '/v2/good/repo/blobs/uploads/'],
      ['PUT', '/v2/good/repo/manifests/v2', { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, ''],
      ['PUT', '/v2/good/repo/manifests/v2', { 'Content-Type': 'text/plain' }, 'hello'],
      ['PUT', '/v2/good/repo/manifests/v2', {}, JSON.stringify({ schemaVersion: 2, config: { digest: 'x' } })],
      ['PUT', '/v2/good/repo/manifests/v2', {}, JSON.stringify({ schemaVersion: 2, manifests: 'nope' })],
      ['PUT', '/v2/good/repo/manifests/v2', {}, JSON.stringify({ schemaVersion: '2', config: {} })],
      ['PUT', '/v2/good/repo/manifests/v2', {}, 'null'],
      ['PUT', '/v2/good/repo/manifests/v2', {}, '\u0000\u0001'],
      ['GET', `/v2/good/repo/blobs/${b.digest}`, { Range: 'bytes=zz' }],
      ['POST', `/v2/good/repo/blobs/uploads/?mount=${b.digest}&from=UPPER`],
      ['POST', '/v2/good/repo/blobs/uploads/?digest='],
      ['GET', '/v2/good/repo/blobs/uploads/00000000-0000-4000-8000-000000000000?_state=%%%'],
      ['GET', '/v3/'],
      ['GET', '/index.html'], // (GET / itself answers 200, for load balancers, as registry:2)
    ];
    for (const [method, path, headers, body] of cases) {
      const res = await raw(berth.url, method, path, { headers: headers ?? {}, body: body ?? undefined });
      expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${path}`).toBeLessThan(500);
      expect(res.body.length, `${method} ${path}: empty body, status ${res.status}`).toBeGreaterThan(0);
      expect(errorCode(res), `${method} ${path}`).toMatch(/^[A-Z_]+$/);
    }
  });
});
