/**
 * `http.prefix` against a real Berth: the API answers under the prefix only, every URL it hands out
 * (upload and blob Locations, list Links, the token realm) carries the prefix, and the probes and `/`
 * stay at the root. The push goes by the Locations the server gave, as a client does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, builtinAuth, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { errorCode, locationPath, makeImage, raw } from './helpers/oci.js';

const PREFIX = '/registry';

describe('http.prefix without auth', () => {
  let berth: TestBerth;
  beforeAll(async () => {
    berth = await startBerth({ prefix: PREFIX });
  });
  afterAll(async () => {
    expect(berth.errors).toEqual([]);
    await berth.close();
  });

  it('pushes and pulls an image under the prefix, following the Locations it hands out', async () => {
    const img = makeImage(7);
    for (const b of [img.config, ...img.layers]) {
      const post = await raw(berth.url, 'POST', `${PREFIX}/v2/app/blobs/uploads/`);
      expect(post.status).toBe(202);
      expect(post.header('Location')).toMatch(new RegExp(`^${berth.url}${PREFIX}/v2/app/blobs/uploads/`));
      const put = await raw(berth.url, 'PUT', `${locationPath(post)}&digest=${encodeURIComponent(b.digest)}`, {
        headers: { 'Content-Type': 'application/octet-stream' }, body: b.bytes,
      });
      expect(put.status).toBe(201);
      expect(put.header('Location')).toBe(`${berth.url}${PREFIX}/v2/app/blobs/${b.digest}`);
      const got = await raw(berth.url, 'GET', locationPath(put));
      expect(got.status).toBe(200);
      expect(got.body.equals(Buffer.from(b.bytes))).toBe(true);
    }
    for (const tag of ['a', 'b']) {
      const put = await raw(berth.url, 'PUT', `${PREFIX}/v2/app/manifests/${tag}`, { headers: { 'Content-Type': img.mediaType }, body: img.manifest.bytes });
      expect(put.status).toBe(201);
      expect(put.header('Location')).toBe(`${berth.url}${PREFIX}/v2/app/manifests/${img.manifest.digest}`);
    }
    const page = await raw(berth.url, 'GET', `${PREFIX}/v2/app/tags/list?n=1`);
    expect(page.json()).toEqual({ name: 'app', tags: ['a'] });
    expect(page.header('Link')).toBe(`<${PREFIX}/v2/app/tags/list?n=1&last=a>; rel="next"`);
  });

  it('answers the API only under the prefix; probes and / stay at the root', async () => {
    expect((await raw(berth.url, 'GET', `${PREFIX}/v2/`)).status).toBe(200);
    const outside = await raw(berth.url, 'GET', '/v2/');
    expect(outside.status).toBe(404);
    expect(errorCode(outside)).toBe('UNSUPPORTED');
    expect((await raw(berth.url, 'GET', '/readyz')).status).toBe(200);
    expect((await raw(berth.url, 'GET', '/healthz')).status).toBe(200);
    expect((await raw(berth.url, 'GET', '/')).status).toBe(200);
    expect(errorCode(await raw(berth.url, 'GET', `${PREFIX}/v2/app/blobs/nope/x`))).toBe('DIGEST_INVALID');
  });
});

describe('http.prefix with the built-in issuer', () => {
  let dir: string;
  let berth: TestBerth;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-prefix-'));
    const htpasswd = await writeHtpasswd(dir, { alice: 'pw' });
    berth = await startBerth({ prefix: PREFIX, auth: builtinAuth({ htpasswd, rules: [{ users: ['alice'], repositories: ['**'], actions: ['pull', 'push'] }] }) });
  });
  afterAll(async () => {
    await berth.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with a realm under the prefix, where a token is then issued and accepted', async () => {
    const challenge = await raw(berth.url, 'GET', `${PREFIX}/v2/`);
    expect(challenge.status).toBe(401);
    const realm = /realm="([^"]+)"/.exec(challenge.header('WWW-Authenticate') ?? '')?.[1];
    expect(realm).toBe(`${berth.url}${PREFIX}/auth/token`);
    const issued = await raw(berth.url, 'GET', `${new URL(realm ?? '').pathname}?service=berth`, { headers: { Authorization: basic('alice', 'pw') } });
    expect(issued.status).toBe(200);
    const token = (issued.json() as { token: string }).token;
    expect((await raw(berth.url, 'GET', `${PREFIX}/v2/`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
  });
});
