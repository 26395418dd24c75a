/**
 * The management API's router (`/berth/v1/`, src/http/management/): OCI JSON errors, 404 for a path
 * under it that is no endpoint, 405 with `Allow` for a wrong method, read-only mode, and the same auth
 * as `/v2/` (built-in issuer: the challenge names the scope an endpoint needs, a token without it is
 * refused, a token with it passes).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, builtinAuth, getToken, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { errorCode, makeImage, pushImage, raw } from './helpers/oci.js';

describe('management API router, no auth', () => {
  let berth: TestBerth;
  beforeAll(async () => {
    berth = await startBerth({ index: true });
  });
  afterAll(() => berth.close());

  it('answers 404 with an OCI error for a path under /berth/v1/ that is no endpoint', async () => {
    for (const path of ['/berth/v1', '/berth/v1/', '/berth/v1/nothing', '/berth/v1/repositories']) {
      const res = await raw(berth.url, 'GET', path);
      expect({ path, status: res.status, type: res.header('Content-Type') }).toEqual({ path, status: 404, type: 'application/json; charset=utf-8' });
      expect(errorCode(res)).toBe('UNSUPPORTED');
    }
  });

  it('answers 405 UNSUPPORTED with Allow for a method an endpoint lacks', async () => {
    const cases: [string, string, string][] = [
      ['PATCH', '/berth/v1/usage', 'GET, HEAD'],
      ['POST', '/berth/v1/repositories/a', 'DELETE'],
      ['PUT', '/berth/v1/repositories/a/usage', 'GET, DELETE, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await raw(berth.url, method, path);
      expect({ method, path, status: res.status, code: errorCode(res), allow: res.header('Allow') }).toEqual({ method, path, status: 405, code: 'UNSUPPORTED', allow });
    }
  });

  it('routes by method: DELETE of a repository named …/usage is a delete, not a wrong method on usage', async () => {
    await pushImage(berth.url, 'a/usage', 'v1', makeImage(1));
    const res = await raw(berth.url, 'DELETE', '/berth/v1/repositories/a/usage');
    expect(res.status).toBe(202);
    const catalog = (await raw(berth.url, 'GET', '/v2/_catalog')).json() as { repositories: string[] };
    expect(catalog.repositories).not.toContain('a/usage');
  });

  it('refuses a bad repository name with NAME_INVALID', async () => {
    const res = await raw(berth.url, 'GET', '/berth/v1/repositories/Bad..Name/usage');
    expect({ status: res.status, code: errorCode(res) }).toEqual({ status: 400, code: 'NAME_INVALID' });
  });
});

describe('management API router, read-only', () => {
  let berth: TestBerth;
  beforeAll(async () => {
    berth = await startBerth({ readOnly: true });
  });
  afterAll(() => berth.close());

  it('refuses a repository delete with 405 UNSUPPORTED', async () => {
    const res = await raw(berth.url, 'DELETE', '/berth/v1/repositories/a');
    expect({ status: res.status, code: errorCode(res) }).toEqual({ status: 405, code: 'UNSUPPORTED' });
  });
});

describe('management API router, built-in issuer', () => {
  let berth: TestBerth;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mgmt-auth-'));
    const htpasswd = await writeHtpasswd(dir, { alice: 'pw-alice', bob: 'pw-bob' });
    berth = await startBerth({
      index: true,
      auth: builtinAuth({
        htpasswd,
        rules: [
          { repositories: ['team/**'], users: ['alice'], actions: ['pull', 'push', 'delete'] },
          { repositories: ['team/**'], users: ['bob'], actions: ['pull'] },
        ],
      }),
    });
  });
  afterAll(async () => {
    await berth.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with the scope each endpoint needs', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/berth/v1/repositories/team/a/usage', 'repository:team/a:pull'],
      ['DELETE', '/berth/v1/repositories/team/a', 'repository:team/a:delete'],
      ['GET', '/berth/v1/usage', 'registry:catalog:*'],
    ];
    for (const [method, path, scope] of cases) {
      const res = await raw(berth.url, method, path);
      expect({ path, status: res.status, code: errorCode(res) }).toEqual({ path, status: 401, code: 'UNAUTHORIZED' });
      expect(res.header('WWW-Authenticate')).toContain(`scope="${scope}"`);
    }
  });

  it('refuses a delete with a pull-only token and accepts it with delete', async () => {
    const scope = 'repository:team/a:delete';
    const bob = await getToken(berth.url, { user: 'bob', password: 'pw-bob', service: 'berth', scopes: [scope] });
    const refused = await raw(berth.url, 'DELETE', '/berth/v1/repositories/team/a', { headers: bearer(bob.token) });
    expect(refused.status).toBe(401);
    expect(refused.header('WWW-Authenticate')).toContain('error="insufficient_scope"');
    const alice = await getToken(berth.url, { user: 'alice', password: 'pw-alice', service: 'berth', scopes: [scope] });
    const passed = await raw(berth.url, 'DELETE', '/berth/v1/repositories/team/a', { headers: bearer(alice.token) });
    // Past auth: the repository does not exist.
    expect({ status: passed.status, code: errorCode(passed) }).toEqual({ status: 404, code: 'NAME_UNKNOWN' });
  });
});
