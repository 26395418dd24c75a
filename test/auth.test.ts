/**
 * Auth end to end (issue #4), against real Berths over HTTP with every key made here:
 *
 * - `auth.token` with an external registry:2-style token server (test/helpers/auth.ts): the challenges,
 *   byte for byte as registry:2 sends them; the access each route needs; every forged or misused token of
 *   the issue's "Bad input and attacks" list refused with 401, nothing changed in the storage tree and
 *   nothing of the token or the keys in the answer; and tokens shaped like those of registry:2 v2.8-era
 *   (x5c chain + libtrust kid) and v3 (jwks + thumbprint kid) token servers accepted.
 * - `auth.builtin`: /auth/token (GET with Basic, POST OAuth2 form, refresh tokens) checked with jose
 *   against /auth/jwks; the access rules (users, groups, anonymous, globs, catalog); scopes with odd
 *   separators or names; wrong passwords (the same answer and, within a generous ratio, the same time
 *   for an unknown user); the signing key kept across two Berths; mounts that must not reveal a blob.
 * - `auth.htpasswd`: Basic, its challenge, a bad file refused at start.
 * - Config: a realm that is not a URL.
 * - The conformance suite with credentials: Basic (htpasswd) and Bearer (built-in issuer).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChallenges } from '../conformance/client.js';
import { DEFAULT_SETTINGS, type RunSummary, formatResult, runConformance } from '../conformance/run.js';
import { createAuth } from '../src/cli/auth.js';
import { loadConfig } from '../src/config/parse.js';
import { ConfigError } from '../src/config/raw.js';
import {
  type AccessClaim, type ExternalTokenServer, basic, bearer, builtinAuth, createTokenServer, getToken, headerShape, htpasswdAuth,
  leaked, postToken, pushImageWith, repoAccess, snapshotTree, tokenAuth, treeDiff, writeHtpasswd,
} from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { layerLink, v2 } from './helpers/layout.js';
import { type RawResponse, blob, errorCode, makeImage, raw, sha256 } from './helpers/oci.js';

const REALM = 'https://auth.example.test/token';
const SERVICE = 'berth-test-registry';
const ISSUER = 'berth-test-token-server';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

/** `Bearer realm="…",service="…"[,scope="…"][,error="…"]`, registry:2's exact format. */
function challenge(realm: string, service: string, scope?: string, error?: string): string {
  const parts = [`realm="${realm}"`, `service="${service}"`];
  if (scope !== undefined) parts.push(`scope="${scope}"`);
  if (error !== undefined) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(',')}`;
}

/** A 401 with `wwwAuthenticate`, and (for methods with a body) an UNAUTHORIZED error body. */
function expect401(res: RawResponse, wwwAuthenticate: string, what: string): void {
  expect({ what, status: res.status, challenge: res.header('WWW-Authenticate') }).toEqual({ what, status: 401, challenge: wwwAuthenticate });
  if (res.body.length > 0) expect(errorCode(res), what).toBe('UNAUTHORIZED');
}

/** Runs `act` and answers what it changed under the Berth's storage root. */
async function changes(berth: TestBerth, act: () => Promise<void>): Promise<string[]> {
  const before = await snapshotTree(berth.root);
  await act();
  return treeDiff(before, await snapshotTree(berth.root));
}

// =====================================================================================================
// auth.token with an external token server
// =====================================================================================================

describe('auth.token: an external registry:2-style token server in front of Berth', () => {
  let ts: ExternalTokenServer;
  let berth: TestBerth;
  /** A token for everything on team/a, team/b and the catalog. */
  let admin: string;
  const imageA = makeImage(401);
  const imageB = makeImage(402);
  /** Upload session of team/a, started with a push token, for the PATCH-with-a-pull-token case. */
  let sessionPath = '';

  beforeAll(async () => {
    ts = await createTokenServer({ issuer: ISSUER, service: SERVICE });
    berth = await startBerth({
      auth: tokenAuth({ realm: REALM, service: SERVICE, issuer: ISSUER, rootcertbundle: ts.fullBundlePath, jwks: ts.jwksPath }),
    });
    admin = await ts.token([
      repoAccess('team/a', '*'), repoAccess('team/b', '*'), repoAccess('secret/x', '*'), { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    await pushImageWith(berth.url, 'team/a', 'v1', imageA, bearer(admin));
    await pushImageWith(berth.url, 'team/b', 'v1', imageB, bearer(admin));
    const post = await raw(berth.url, 'POST', '/v2/team/a/blobs/uploads/', { headers: bearer(admin) });
    expect(post.status).toBe(202);
    const loc = new URL(post.header('Location') ?? '', berth.url);
    sessionPath = `${loc.pathname}${loc.search}`;
  }, 120_000);

  afterAll(async () => {
    await berth?.close();
    await ts?.close();
  });

  const noLeak = (res: RawResponse, token: string, what: string): void => {
    expect(leaked(res, [token, ...ts.keyMaterial]), `${what}: the answer repeats part of the token or a key`).toEqual([]);
  };

  describe('challenges exactly as registry:2 sends them', () => {
    it('GET /v2/ without credentials: 401 Bearer realm and service, no scope', async () => {
      const res = await raw(berth.url, 'GET', '/v2/');
      expect401(res, challenge(REALM, SERVICE), 'GET /v2/');
      expect(res.header('Docker-Distribution-API-Version')).toBe('registry/2.0');
    });

    it('each route names the scope it needs: GET/HEAD pull, POST/PUT/PATCH pull,push, DELETE delete, the catalog registry:catalog:*', async () => {
      const d = imageA.layers[0]?.digest ?? '';
      const cases: [string, string, string][] = [
        ['GET', '/v2/team/a/manifests/v1', 'repository:team/a:pull'],
        ['HEAD', '/v2/team/a/manifests/v1', 'repository:team/a:pull'],
        ['GET', `/v2/team/a/blobs/${d}`, 'repository:team/a:pull'],
        ['HEAD', `/v2/team/a/blobs/${d}`, 'repository:team/a:pull'],
        ['GET', '/v2/team/a/tags/list', 'repository:team/a:pull'],
        ['GET', `/v2/team/a/referrers/${imageA.manifest.digest}`, 'repository:team/a:pull'],
        ['POST', '/v2/team/a/blobs/uploads/', 'repository:team/a:pull,push'],
        ['PUT', '/v2/team/a/manifests/v2', 'repository:team/a:pull,push'],
        ['PATCH', sessionPath, 'repository:team/a:pull,push'],
        ['PUT', `${sessionPath}&digest=${d}`, 'repository:team/a:pull,push'],
        ['GET', sessionPath, 'repository:team/a:pull'],
        ['DELETE', '/v2/team/a/manifests/v1', 'repository:team/a:delete'],
        ['DELETE', `/v2/team/a/blobs/${d}`, 'repository:team/a:delete'],
        ['GET', '/v2/_catalog', 'registry:catalog:*'],
      ];
      const diff = await changes(berth, async () => {
        for (const [method, path, scope] of cases) {
          const res = await raw(berth.url, method, path, method === 'PUT' || method === 'PATCH' ? { body: 'x' } : {});
          expect401(res, challenge(REALM, SERVICE, scope), `${method} ${path}`);
        }
      });
      expect(diff).toEqual([]);
    });

    it('a token that does not verify: error="invalid_token"; a valid one without the access: error="insufficient_scope"', async () => {
      const bad = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers: bearer('e30.e30.e30') });
      expect401(bad, challenge(REALM, SERVICE, 'repository:team/a:pull', 'invalid_token'), 'bad token');
      const badRoot = await raw(berth.url, 'GET', '/v2/', { headers: bearer('e30.e30.e30') });
      expect401(badRoot, challenge(REALM, SERVICE, undefined, 'invalid_token'), 'bad token on /v2/');
      const pullB = await ts.token([repoAccess('team/b', 'pull')]);
      const short = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers: bearer(pullB) });
      expect401(short, challenge(REALM, SERVICE, 'repository:team/a:pull', 'insufficient_scope'), 'token for team/b on team/a');
      expect((await raw(berth.url, 'GET', '/v2/', { headers: bearer(pullB) })).status).toBe(200);
    });

    it('the answer does not depend on whether the repository exists', async () => {
      const pullB = await ts.token([repoAccess('team/b', 'pull')]);
      for (const headers of [{}, bearer(pullB), bearer('e30.e30.e30')]) {
        const existing = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers });
        const missing = await raw(berth.url, 'GET', '/v2/team/zz/manifests/v1', { headers });
        expect(missing.status).toBe(existing.status);
        expect(missing.header('WWW-Authenticate')).toBe(existing.header('WWW-Authenticate')?.replace('team/a', 'team/zz'));
        expect(missing.body.toString()).toBe(existing.body.toString().replaceAll('team/a', 'team/zz'));
        expect(headerShape(missing)).toEqual(headerShape(existing));
      }
    });
  });

  describe('access: what a token grants and nothing more', () => {
    it('a good token reads; a token with * deletes; registry:catalog:* lists', async () => {
      const pull = await ts.token([repoAccess('team/a', 'pull')]);
      const res = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers: { ...bearer(pull), Accept: imageA.mediaType } });
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(imageA.manifest.digest);
      const cat = await raw(berth.url, 'GET', '/v2/_catalog', { headers: bearer(admin) });
      expect(cat.status).toBe(200);
      expect((cat.json() as { repositories: string[] }).repositories).toEqual(['team/a', 'team/b']);
      const onlyRepos = await ts.token([repoAccess('team/a', '*'), repoAccess('team/b', '*')]);
      const noCat = await raw(berth.url, 'GET', '/v2/_catalog', { headers: bearer(onlyRepos) });
      expect401(noCat, challenge(REALM, SERVICE, 'registry:catalog:*', 'insufficient_scope'), 'catalog without registry:catalog:*');
      noLeak(noCat, onlyRepos, 'catalog');
    });

    it('a valid token for repository a used on repository b: 401 insufficient_scope, for reads and writes, nothing changed', async () => {
      const tokenA = await ts.token([repoAccess('team/a', 'pull', 'push', 'delete')]);
      const diff = await changes(berth, async () => {
        const get = await raw(berth.url, 'GET', '/v2/team/b/manifests/v1', { headers: bearer(tokenA) });
        expect401(get, challenge(REALM, SERVICE, 'repository:team/b:pull', 'insufficient_scope'), 'GET b');
        noLeak(get, tokenA, 'GET b');
        const put = await raw(berth.url, 'PUT', '/v2/team/b/manifests/v2', {
          headers: { ...bearer(tokenA), 'Content-Type': imageA.mediaType }, body: imageA.manifest.bytes,
        });
        expect401(put, challenge(REALM, SERVICE, 'repository:team/b:pull,push', 'insufficient_scope'), 'PUT b');
        const post = await raw(berth.url, 'POST', '/v2/team/b/blobs/uploads/', { headers: bearer(tokenA) });
        expect401(post, challenge(REALM, SERVICE, 'repository:team/b:pull,push', 'insufficient_scope'), 'POST b');
        const del = await raw(berth.url, 'DELETE', `/v2/team/b/manifests/${imageB.manifest.digest}`, { headers: bearer(tokenA) });
        expect401(del, challenge(REALM, SERVICE, 'repository:team/b:delete', 'insufficient_scope'), 'DELETE b');
        // A name that merely starts with the granted one is another repository.
        const prefix = await raw(berth.url, 'GET', '/v2/team/a/sub/manifests/v1', { headers: bearer(tokenA) });
        expect401(prefix, challenge(REALM, SERVICE, 'repository:team/a/sub:pull', 'insufficient_scope'), 'GET team/a/sub');
      });
      expect(diff).toEqual([]);
    });

    it('a pull token used for push: every write is 401 insufficient_scope and changes nothing', async () => {
      const pull = await ts.token([repoAccess('team/a', 'pull')]);
      const fresh = blob('never stored by a pull token');
      const diff = await changes(berth, async () => {
        const writes: [string, string, string | Buffer | undefined, string][] = [
          ['POST', '/v2/team/a/blobs/uploads/', undefined, 'pull,push'],
          ['POST', `/v2/team/a/blobs/uploads/?digest=${fresh.digest}`, fresh.bytes, 'pull,push'],
          ['POST', `/v2/team/a/blobs/uploads/?mount=${imageB.config.digest}&from=team/b`, undefined, 'pull,push'],
          ['PATCH', sessionPath, fresh.bytes, 'pull,push'],
          ['PUT', `${sessionPath}&digest=${fresh.digest}`, fresh.bytes, 'pull,push'],
          ['PUT', '/v2/team/a/manifests/v2', imageA.manifest.bytes, 'pull,push'],
          ['DELETE', '/v2/team/a/manifests/v1', undefined, 'delete'],
          ['DELETE', `/v2/team/a/blobs/${imageA.config.digest}`, undefined, 'delete'],
          ['DELETE', sessionPath, undefined, 'delete'],
        ];
        for (const [method, path, body, actions] of writes) {
          const res = await raw(berth.url, method, path, {
            headers: { ...bearer(pull), 'Content-Type': method === 'PUT' && path.includes('manifests') ? imageA.mediaType : 'application/octet-stream' },
            ...(body !== undefined && { body }),
          });
          expect401(res, challenge(REALM, SERVICE, `repository:team/a:${actions}`, 'insufficient_scope'), `${method} ${path}`);
          noLeak(res, pull, `${method} ${path}`);
        }
      });
      expect(diff).toEqual([]);
    });

    it('a push token without delete cannot delete; with pull,push it can push', async () => {
      const push = await ts.token([repoAccess('team/a', 'pull', 'push')]);
      const del = await raw(berth.url, 'DELETE', '/v2/team/a/manifests/v1', { headers: bearer(push) });
      expect401(del, challenge(REALM, SERVICE, 'repository:team/a:delete', 'insufficient_scope'), 'DELETE with pull,push');
      await pushImageWith(berth.url, 'team/a', 'pushed', makeImage(403), bearer(push));
    });
  });

  describe('bad input and attacks: refused with 401 invalid_token, nothing changed, nothing leaked', () => {
    const full = (): AccessClaim[] => [repoAccess('team/a', '*'), repoAccess('team/b', '*')];

    /** Tries the token on a read, a blob upload, a manifest PUT and a DELETE; every one must be refused with invalid_token. */
    async function expectRefused(token: string, what: string): Promise<void> {
      const fresh = blob(`attack ${what}`);
      const diff = await changes(berth, async () => {
        const requests: [string, string, Buffer | undefined, string | undefined][] = [
          ['GET', '/v2/', undefined, undefined],
          ['GET', '/v2/team/a/manifests/v1', undefined, 'repository:team/a:pull'],
          ['POST', `/v2/team/a/blobs/uploads/?digest=${fresh.digest}`, fresh.bytes, 'repository:team/a:pull,push'],
          ['PUT', '/v2/team/a/manifests/forged', imageB.manifest.bytes, 'repository:team/a:pull,push'],
          ['DELETE', `/v2/team/b/manifests/${imageB.manifest.digest}`, undefined, 'repository:team/b:delete'],
          ['GET', '/v2/_catalog', undefined, 'registry:catalog:*'],
        ];
        for (const [method, path, body, scope] of requests) {
          const res = await raw(berth.url, method, path, {
            headers: { ...bearer(token), 'Content-Type': imageB.mediaType },
            ...(body !== undefined && { body }),
          });
          expect401(res, challenge(REALM, SERVICE, scope, 'invalid_token'), `${what}: ${method} ${path}`);
          noLeak(res, token, `${what}: ${method} ${path}`);
        }
      });
      expect(diff, what).toEqual([]);
    }

    it('the forging works: the same claims properly signed are accepted (x5c chain, libtrust kid, thumbprint kid)', async () => {
      for (const naming of [{ by: 'x5c' }, { by: 'libtrust' }, { by: 'thumbprint' }, { by: 'x5c+libtrust' }] as const) {
        const token = await ts.token(full(), { naming });
        const res = await raw(berth.url, 'GET', '/v2/team/a/tags/list', { headers: bearer(token) });
        expect({ naming: naming.by, status: res.status }).toEqual({ naming: naming.by, status: 200 });
      }
    });

    it('alg none (empty signature, a copied signature, odd capitalisation)', async () => {
      const claims = ts.claims(full());
      const good = await ts.token(full());
      const signature = good.split('.')[2] ?? '';
      await expectRefused(ts.unsigned(claims), 'alg none, no signature');
      await expectRefused(ts.unsigned(claims, { typ: 'JWT', kid: ts.libtrustKid }, signature), 'alg none with a signature');
      await expectRefused(ts.unsigned(claims, { typ: 'JWT', x5c: [ts.leaf.x5c, ts.ca.x5c] }, signature), 'alg none with x5c');
      const odd = `${Buffer.from(JSON.stringify({ alg: 'None', kid: ts.libtrustKid })).toString('base64url')}.${good.split('.')[1] ?? ''}.${signature}`;
      await expectRefused(odd, 'alg None');
    });

    it('HS256 signed with the RSA public key (PEM, DER, certificate) as the HMAC secret', async () => {
      const claims = ts.claims(full());
      const spkiPem = ts.leaf.cert.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const spkiDer = ts.leaf.cert.publicKey.export({ type: 'spki', format: 'der' });
      await expectRefused(ts.hmac(claims, spkiPem), 'HS256 with the public key PEM, libtrust kid');
      await expectRefused(ts.hmac(claims, spkiDer, { typ: 'JWT', kid: ts.thumbprintKid }), 'HS256 with the public key DER, thumbprint kid');
      await expectRefused(ts.hmac(claims, ts.leaf.pem, { typ: 'JWT', x5c: [ts.leaf.x5c, ts.ca.x5c] }), 'HS256 with the certificate PEM, x5c');
      await expectRefused(ts.hmac(claims, spkiPem, { typ: 'JWT' }), 'HS256 with no key named');
    });

    it('another issuer, another audience, a tampered payload, a malformed access claim', async () => {
      await expectRefused(await ts.sign(ts.claims(full(), { iss: 'evil-token-server' })), 'another issuer');
      await expectRefused(await ts.sign(ts.claims(full(), { iss: undefined })), 'no issuer');
      await expectRefused(await ts.sign(ts.claims(full(), { aud: 'another-registry' })), 'another audience');
      await expectRefused(await ts.sign(ts.claims(full(), { aud: ['another-registry', 'a-third'] })), 'an audience list without this service');
      await expectRefused(await ts.sign(ts.claims(full(), { aud: undefined })), 'no audience');
      const weak = await ts.token([repoAccess('team/a', 'pull')]);
      const [h, , s] = weak.split('.');
      const richer = Buffer.from(JSON.stringify(ts.claims(full()))).toString('base64url');
      await expectRefused(`${h ?? ''}.${richer}.${s ?? ''}`, 'a payload changed after signing');
      await expectRefused(await ts.sign(ts.claims([], { access: [{ type: 'repository', name: 'team/a', actions: 'pull' }] })), 'actions not a list');
      // An audience list that holds this service is fine.
      const listed = await ts.sign(ts.claims(full(), { aud: ['another-registry', SERVICE] }));
      expect((await raw(berth.url, 'GET', '/v2/team/a/tags/list', { headers: bearer(listed) })).status).toBe(200);
    });

    it('expired and not yet valid beyond the 60 s leeway are refused; within it they are accepted; no exp is expired', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectRefused(await ts.sign(ts.claims(full(), { exp: now - 120, nbf: now - 600, iat: now - 600 })), 'expired 120 s ago');
      await expectRefused(await ts.sign(ts.claims(full(), { nbf: now + 120, iat: now + 120 })), 'valid from 120 s on');
      await expectRefused(await ts.sign(ts.claims(full(), { exp: undefined })), 'no exp');
      await expectRefused(await ts.sign(ts.claims(full(), { exp: String(now + 300) })), 'exp a string');
      const late = await ts.sign(ts.claims(full(), { exp: now - 30, nbf: now - 600, iat: now - 600 }));
      const early = await ts.sign(ts.claims(full(), { nbf: now + 30, iat: now + 30 }));
      for (const [what, token] of [['expired 30 s ago', late], ['valid from 30 s on', early]] as const) {
        const res = await raw(berth.url, 'GET', '/v2/team/a/tags/list', { headers: bearer(token) });
        expect({ what, status: res.status }).toEqual({ what, status: 200 });
      }
    });

    it('a kid that matches nothing', async () => {
      const other = await ts.makeCert('stranger', { ca: false });
      const { libtrustKeyId } = await import('../src/auth/libtrust.js');
      await expectRefused(await ts.token(full(), { naming: { by: 'kid', kid: 'AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL' } }), 'made-up libtrust kid');
      await expectRefused(await ts.token(full(), { naming: { by: 'kid', kid: 'x'.repeat(43) } }), 'made-up thumbprint kid');
      await expectRefused(await ts.token(full(), { naming: { by: 'kid', kid: libtrustKeyId(other.key) }, key: other.key }), 'the kid of a key nobody trusts, signed by it');
      await expectRefused(await ts.token(full(), { naming: { by: 'kid', kid: ts.libtrustKid }, key: other.key }), 'the trusted kid, signed by another key');
      await expectRefused(await ts.token(full(), { naming: { by: 'nothing' } }), 'no key named at all');
    });

    it('a forged x5c chain: self-signed, from a look-alike CA, with the real CA appended, the real chain with another key, an embedded jwk', async () => {
      const selfSigned = await ts.makeCert('self', { ca: false, subject: '/CN=berth-test-token-signer' });
      const fakeCa = await ts.makeCert('fake-ca', { ca: true, subject: '/CN=Berth Test Token CA' });
      const fakeLeaf = await ts.makeCert('fake-leaf', { ca: false, issuer: fakeCa, subject: '/CN=berth-test-token-signer' });
      const sign = (key: typeof selfSigned.key, chain: string[]): Promise<string> => ts.token(full(), { key, naming: { by: 'x5c', chain } });
      await expectRefused(await sign(selfSigned.key, [selfSigned.x5c]), 'a self-signed leaf');
      await expectRefused(await sign(fakeLeaf.key, [fakeLeaf.x5c, fakeCa.x5c]), 'a look-alike CA chain');
      await expectRefused(await sign(fakeLeaf.key, [fakeLeaf.x5c, ts.ca.x5c]), 'a look-alike leaf with the real CA appended');
      await expectRefused(await sign(fakeLeaf.key, [fakeLeaf.x5c, fakeCa.x5c, ts.ca.x5c]), 'a look-alike chain ending in the real CA');
      await expectRefused(await sign(fakeLeaf.key, [ts.leaf.x5c, ts.ca.x5c]), 'the real chain, signed by another key');
      await expectRefused(await sign(fakeCa.key, [ts.ca.x5c]), 'the real CA certificate, signed by another key');
      await expectRefused(await sign(fakeLeaf.key, ['!!not base64!!']), 'an x5c entry that is not base64');
      const jwk = fakeLeaf.cert.publicKey.export({ format: 'jwk' });
      await expectRefused(await ts.token(full(), { key: fakeLeaf.key, naming: { by: 'jwk', jwk } }), 'an embedded jwk of an untrusted key');
    });

    it('malformed tokens and Authorization headers: Bearer, Bearer a b, Basic !!!, Digest x, two dots, a very long header', async () => {
      const good = await ts.token(full());
      const headers = [
        'Bearer', 'Bearer ', 'Bearer a b', `Bearer ${good} ${good}`, 'Basic !!!', `Basic ${Buffer.from('a:b').toString('base64')}`,
        'Digest x', 'Digest username="a", realm="b"', 'bearer.e30.e30', 'Bearer ..', 'Bearer e30..', `Bearer ${good.split('.').slice(0, 2).join('.')}`,
        `Bearer ${'A'.repeat(12_000)}.${'B'.repeat(100)}.${'C'.repeat(100)}`, `Bearer ${'x'.repeat(14_000)}`,
      ];
      const diff = await changes(berth, async () => {
        for (const authorization of headers) {
          for (const [method, path] of [['GET', '/v2/team/a/manifests/v1'], ['POST', '/v2/team/a/blobs/uploads/']] as const) {
            const res = await raw(berth.url, method, path, { headers: { Authorization: authorization } });
            const what = `${method} with Authorization: ${authorization.slice(0, 30)}`;
            expect(res.status, what).toBe(401);
            expect(res.header('WWW-Authenticate'), what).toMatch(
              new RegExp(`^Bearer realm="${REALM}",service="${SERVICE}",scope="repository:team/a:pull(,push)?"(,error="invalid_token")?$`),
            );
            noLeak(res, authorization.replace(/^\S+\s*/, ''), what);
          }
        }
        // Past Node's header limit: refused by the HTTP layer before Berth sees it.
        const huge = await raw(berth.url, 'POST', '/v2/team/a/blobs/uploads/', { headers: { Authorization: `Bearer ${'y'.repeat(70_000)}` } });
        expect([400, 401, 431]).toContain(huge.status);
      });
      expect(diff).toEqual([]);
    });

    it('as registry:2 and RFC 6750 §3.1: a header of another scheme, or Bearer with no credential, gets the challenge without error=', async () => {
      // registry:2 (registry/auth/token/accesscontroller.go, 2.8 and 3.x alike) answers ErrTokenRequired, whose
      // challenge has no error parameter, when the header is not `Bearer <credential>`; RFC 6750 §3.1: a request
      // with an unsupported authentication method SHOULD NOT get an error code. A credential that is not a
      // valid token is invalid_token. (`Bearer a b` is left out: 2.8 answers it without error=, 3.x with.)
      for (const authorization of ['Bearer', 'Basic !!!', 'Digest x', `Basic ${Buffer.from('a:b').toString('base64')}`]) {
        const res = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers: { Authorization: authorization } });
        expect401(res, challenge(REALM, SERVICE, 'repository:team/a:pull'), `Authorization: ${authorization}`);
      }
      const malformed = await raw(berth.url, 'GET', '/v2/team/a/manifests/v1', { headers: bearer('not-a-jwt') });
      expect401(malformed, challenge(REALM, SERVICE, 'repository:team/a:pull', 'invalid_token'), 'Bearer not-a-jwt');
    });

    it('a mount from a repository the token cannot read answers 202 exactly like a mount of a blob that exists nowhere', async () => {
      const token = await ts.token([repoAccess('team/a', 'pull', 'push')]);
      const nowhere = sha256('a blob nobody ever pushed');
      const hidden = imageB.config.digest; // exists, in team/b, which this token cannot read
      const mount = (digest: string, from?: string): Promise<RawResponse> =>
        raw(berth.url, 'POST', `/v2/team/a/blobs/uploads/?mount=${digest}${from === undefined ? '' : `&from=${from}`}`, { headers: bearer(token) });
      const diff = await changes(berth, async () => {
        const answers = [await mount(hidden, 'team/b'), await mount(nowhere, 'team/b'), await mount(hidden), await mount(nowhere)];
        for (const res of answers) {
          expect(res.status).toBe(202);
          expect(headerShape(res)).toEqual(headerShape(answers[1] as RawResponse));
          expect(res.header('Range')).toBe('0-0');
          expect(res.header('Location')).toMatch(/\/v2\/team\/a\/blobs\/uploads\/[0-9a-f-]+\?_state=/);
          expect(res.body.length).toBe(0);
        }
      });
      expect(diff.filter((d) => !d.startsWith('+docker/registry/v2/repositories/team/a/_uploads/')), 'only upload sessions were created').toEqual([]);
      expect(diff.some((d) => d.includes('_layers'))).toBe(false);
      const get = await raw(berth.url, 'HEAD', `/v2/team/a/blobs/${hidden}`, { headers: bearer(token) });
      expect(get.status).toBe(404);
    });
  });

  describe('tokens shaped like those of real registry:2 token servers', () => {
    const image = makeImage(404);

    it('v2.8 era (docker_auth, GitLab, Harbor): RS256, x5c chain to the CA in rootcertbundle plus a libtrust kid; and a libtrust kid alone against the signing certificate', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'berth-auth-v28-'));
      const leafOnly = join(dir, 'leaf.pem');
      await writeFile(leafOnly, ts.leaf.pem);
      const caOnly = await startBerth({ auth: tokenAuth({ realm: REALM, service: SERVICE, issuer: ISSUER, rootcertbundle: ts.caBundlePath }) });
      const leafBundle = await startBerth({ auth: tokenAuth({ realm: REALM, service: SERVICE, issuer: ISSUER, rootcertbundle: leafOnly }) });
      try {
        const v28 = await ts.token([repoAccess('ext/app', 'pull', 'push')], { naming: { by: 'x5c+libtrust' } });
        const header = decodeProtectedHeader(v28);
        expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT', kid: ts.libtrustKid });
        expect(header.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
        expect(header.x5c).toHaveLength(2);
        await pushImageWith(caOnly.url, 'ext/app', 'v1', image, bearer(v28));
        const kidOnly = await ts.token([repoAccess('ext/app', 'pull', 'push')], { naming: { by: 'libtrust' } });
        await pushImageWith(leafBundle.url, 'ext/app', 'v1', image, bearer(kidOnly));
        // A kid alone cannot reach a leaf that only a chain would vouch for.
        const res = await raw(caOnly.url, 'GET', '/v2/ext/app/manifests/v1', { headers: bearer(kidOnly) });
        expect401(res, challenge(REALM, SERVICE, 'repository:ext/app:pull', 'invalid_token'), 'kid only, CA-only bundle');
      } finally {
        await caOnly.close();
        await leafBundle.close();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('v3 (distribution 3.x): a jwks file and a kid that is the RFC 7638 thumbprint', async () => {
      const jwksBerth = await startBerth({ auth: tokenAuth({ realm: REALM, service: SERVICE, issuer: ISSUER, jwks: ts.jwksPath }) });
      try {
        const jwks = JSON.parse(await readFile(ts.jwksPath, 'utf8')) as { keys: { kid: string; kty: string }[] };
        expect(jwks.keys[0]).toMatchObject({ kid: ts.thumbprintKid, kty: 'RSA' });
        const v3 = await ts.token([repoAccess('ext/app', 'pull', 'push')], { naming: { by: 'thumbprint' } });
        expect(decodeProtectedHeader(v3)).toMatchObject({ alg: 'RS256', kid: ts.thumbprintKid });
        await pushImageWith(jwksBerth.url, 'ext/app', 'v1', image, bearer(v3));
        const res = await raw(jwksBerth.url, 'GET', '/v2/ext/app/manifests/v1', { headers: { ...bearer(v3), Accept: image.mediaType } });
        expect(res.status).toBe(200);
        // A chain to a CA nobody configured here is not trusted by this Berth.
        const chained = await ts.token([repoAccess('ext/app', 'pull')], { naming: { by: 'x5c' } });
        expect((await raw(jwksBerth.url, 'GET', '/v2/ext/app/manifests/v1', { headers: bearer(chained) })).status).toBe(401);
      } finally {
        await jwksBerth.close();
      }
    });
  });
});

// =====================================================================================================
// auth.builtin: Berth's own issuer
// =====================================================================================================

const PASSWORDS = { alice: 'alice-secret-pw', bob: 'bob-secret-pw', carol: 'carol-secret-pw', admin: 'admin-secret-pw' } as const;

const RULES = [
  { users: ['alice'], repositories: ['alice/**'], actions: ['*'] },
  { users: ['alice'], repositories: ['shared/**', 'public/**'], actions: ['pull', 'push'] },
  { groups: ['devs'], repositories: ['team/*'], actions: ['pull', 'push'] },
  { users: ['bob'], repositories: ['shared/**'], actions: ['pull'] },
  { users: ['*'], repositories: ['everyone/*'], actions: ['pull'] },
  { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
  { users: ['admin'], repositories: ['**'], actions: ['*'], catalog: true },
];
const GROUPS = { devs: ['carol'] };

describe('auth.builtin: the built-in token issuer', () => {
  let dir: string;
  let htpasswd: string;
  let berth: TestBerth;
  let jwks: ReturnType<typeof createLocalJWKSet>;
  let realm: string;
  const secrets = (): string[] => [...Object.values(PASSWORDS)];

  const tokenFor = async (user: keyof typeof PASSWORDS | undefined, ...scopes: string[]): Promise<string> => {
    const answer = await getToken(berth.url, user === undefined ? { scopes, service: 'berth' } : { user, password: PASSWORDS[user], scopes, service: 'berth' });
    expect(answer.status, answer.res.body.toString()).toBe(200);
    return answer.token;
  };

  const verify = async (token: string): Promise<Record<string, unknown>> =>
    (await jwtVerify(token, jwks, { issuer: 'berth', audience: 'berth', algorithms: ['ES256'] })).payload as Record<string, unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-builtin-'));
    htpasswd = await writeHtpasswd(dir, PASSWORDS);
    berth = await startBerth({ auth: builtinAuth({ htpasswd, rules: RULES, groups: GROUPS }) });
    realm = `${berth.url}/auth/token`;
    const res = await raw(berth.url, 'GET', '/auth/jwks');
    expect(res.status).toBe(200);
    jwks = createLocalJWKSet(res.json() as JSONWebKeySet);
  });

  afterAll(async () => {
    await berth?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges name the realm on the host asked and the service; /v2/ without scope', async () => {
    expect401(await raw(berth.url, 'GET', '/v2/'), challenge(realm, 'berth'), 'GET /v2/');
    expect401(await raw(berth.url, 'GET', '/v2/alice/app/tags/list'), challenge(realm, 'berth', 'repository:alice/app:pull'), 'tags');
    expect401(await raw(berth.url, 'GET', '/v2/_catalog'), challenge(realm, 'berth', 'registry:catalog:*'), 'catalog');
    const jwksRes = await raw(berth.url, 'GET', '/auth/jwks');
    const keys = (jwksRes.json() as { keys: Record<string, unknown>[] }).keys;
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(keys[0]).not.toHaveProperty('d');
  });

  it('GET /auth/token with Basic: iss, aud, exp, sub, and access = what was asked ∩ what the rules give', async () => {
    const answer = await getToken(berth.url, {
      user: 'alice', password: PASSWORDS.alice, service: 'berth',
      scopes: ['repository:alice/app:pull,push,delete', 'repository:bob/app:pull', 'repository:shared/x:pull,push,delete', 'registry:catalog:*', 'repository:team/t:pull'],
    });
    expect(answer.status).toBe(200);
    expect(answer.res.header('Cache-Control')).toBe('no-store');
    expect(answer.body.access_token).toBe(answer.token);
    expect(answer.body.expires_in).toBe(300);
    expect(answer.body.issued_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(answer.body.refresh_token).toBeUndefined();
    const claims = await verify(answer.token);
    expect(claims).toMatchObject({ iss: 'berth', sub: 'alice' });
    expect([claims['aud']].flat()).toContain('berth');
    expect(Number(claims['exp']) - Number(claims['iat'])).toBe(300);
    expect(Math.abs(Number(claims['iat']) - Date.now() / 1000)).toBeLessThan(60);
    expect(claims['access']).toEqual([
      { type: 'repository', name: 'alice/app', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'shared/x', actions: ['pull', 'push'] },
    ]);
    expect(answer.body.scope).toBe('repository:alice/app:pull,push,delete repository:shared/x:pull,push');
    expect(decodeProtectedHeader(answer.token)).toMatchObject({ alg: 'ES256' });
  });

  it('rules: groups, globs (* within a segment, ** across), every signed-in user, anonymous, catalog', async () => {
    const access = async (user: keyof typeof PASSWORDS | undefined, ...scopes: string[]): Promise<unknown> =>
      (await verify(await tokenFor(user, ...scopes)))['access'];
    expect(await access('carol', 'repository:team/t:pull,push,delete', 'repository:team/t/deep:pull', 'repository:alice/app:pull')).toEqual([
      { type: 'repository', name: 'team/t', actions: ['pull', 'push'] },
    ]);
    expect(await access('alice', 'repository:alice/a/b/c:*', 'repository:alice:pull')).toEqual([
      { type: 'repository', name: 'alice/a/b/c', actions: ['pull', 'push', 'delete', '*'] },
    ]);
    expect(await access('bob', 'repository:everyone/x:pull,push', 'repository:shared/x/y:pull,push')).toEqual([
      { type: 'repository', name: 'everyone/x', actions: ['pull'] },
      { type: 'repository', name: 'shared/x/y', actions: ['pull'] },
    ]);
    expect(await access('bob', 'registry:catalog:*')).toEqual([]);
    expect(await access('admin', 'registry:catalog:*', 'repository:anything/at/all:delete')).toEqual([
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'anything/at/all', actions: ['delete'] },
    ]);
    // A signed-in user keeps what anonymous callers get.
    expect(await access('bob', 'repository:public/app:pull')).toEqual([{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
  });

  it('an anonymous request gets only the anonymous grants, and no refresh token', async () => {
    const answer = await getToken(berth.url, {
      scopes: ['repository:public/app:pull,push', 'repository:alice/app:pull', 'repository:everyone/x:pull', 'registry:catalog:*'],
      extra: { offline_token: 'true' },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.refresh_token).toBeUndefined();
    const claims = await verify(answer.token);
    expect(claims['sub'] ?? '').toBe('');
    expect(claims['access']).toEqual([{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
  });

  it('tokens work on /v2/: alice pushes, bob pulls shared/ but cannot push, anonymous pulls public/ only, the catalog needs admin', async () => {
    const image = makeImage(410);
    await pushImageWith(berth.url, 'shared/app', 'v1', image, bearer(await tokenFor('alice', 'repository:shared/app:pull,push')));
    await pushImageWith(berth.url, 'public/app', 'v1', image, bearer(await tokenFor('alice', 'repository:public/app:pull,push')));
    const bob = await tokenFor('bob', 'repository:shared/app:pull,push');
    const get = await raw(berth.url, 'GET', '/v2/shared/app/manifests/v1', { headers: { ...bearer(bob), Accept: image.mediaType } });
    expect(get.status).toBe(200);
    const diff = await changes(berth, async () => {
      const put = await raw(berth.url, 'PUT', '/v2/shared/app/manifests/v2', { headers: { ...bearer(bob), 'Content-Type': image.mediaType }, body: image.manifest.bytes });
      expect401(put, challenge(realm, 'berth', 'repository:shared/app:pull,push', 'insufficient_scope'), 'bob PUT');
      expect(leaked(put, [bob, ...secrets()])).toEqual([]);
    });
    expect(diff).toEqual([]);
    const anon = await tokenFor(undefined, 'repository:public/app:pull', 'repository:shared/app:pull');
    expect((await raw(berth.url, 'GET', '/v2/public/app/manifests/v1', { headers: { ...bearer(anon), Accept: image.mediaType } })).status).toBe(200);
    expect401(
      await raw(berth.url, 'GET', '/v2/shared/app/manifests/v1', { headers: bearer(anon) }),
      challenge(realm, 'berth', 'repository:shared/app:pull', 'insufficient_scope'),
      'anonymous on shared/',
    );
    const cat = await raw(berth.url, 'GET', '/v2/_catalog', { headers: bearer(await tokenFor('admin', 'registry:catalog:*')) });
    expect(cat.status).toBe(200);
    expect((cat.json() as { repositories: string[] }).repositories).toEqual(['public/app', 'shared/app']);
    expect401(
      await raw(berth.url, 'GET', '/v2/_catalog', { headers: bearer(await tokenFor('alice', 'registry:catalog:*')) }),
      challenge(realm, 'berth', 'registry:catalog:*', 'insufficient_scope'),
      'alice on the catalog',
    );
  });

  it('offline_token=true gives a refresh token; POST grant_type=refresh_token and grant_type=password give access tokens', async () => {
    const login = await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, service: 'berth', extra: { offline_token: 'true', client_id: 'docker', account: 'alice' } });
    expect(login.status).toBe(200);
    const refresh = login.body.refresh_token ?? '';
    expect(refresh).not.toBe('');
    const refreshed = await postToken(berth.url, { grant_type: 'refresh_token', refresh_token: refresh, service: 'berth', scope: 'repository:alice/app:pull repository:bob/app:pull', client_id: 'containerd' });
    expect(refreshed.status, refreshed.res.body.toString()).toBe(200);
    expect(await verify(refreshed.body.access_token ?? '')).toMatchObject({ sub: 'alice', access: [{ type: 'repository', name: 'alice/app', actions: ['pull'] }] });
    const password = await postToken(berth.url, { grant_type: 'password', username: 'carol', password: PASSWORDS.carol, service: 'berth', scope: ['repository:team/t:pull', 'repository:team/u:push'], client_id: 'podman', access_type: 'offline' });
    expect(password.status, password.res.body.toString()).toBe(200);
    expect(password.body.refresh_token).toBeDefined();
    expect((await verify(password.body.access_token ?? ''))['access']).toEqual([
      { type: 'repository', name: 'team/t', actions: ['pull'] },
      { type: 'repository', name: 'team/u', actions: ['push'] },
    ]);
    for (const form of [
      { grant_type: 'password', username: 'carol', password: 'wrong', service: 'berth' },
      { grant_type: 'password', username: 'nobody', password: 'wrong', service: 'berth' },
      { grant_type: 'refresh_token', refresh_token: refreshed.body.access_token ?? '', service: 'berth' },
      { grant_type: 'refresh_token', refresh_token: `${refresh.slice(0, -4)}AAAA`, service: 'berth' },
    ]) {
      const res = await postToken(berth.url, form);
      expect(res.status, JSON.stringify(form)).toBe(401);
      expect(res.body.token).toBeUndefined();
      expect(leaked(res.res, [refresh, ...secrets()])).toEqual([]);
    }
  });

  it('the refresh token is not accepted as an access token on /v2/', async () => {
    const login = await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, service: 'berth', scopes: ['repository:alice/app:pull'], extra: { offline_token: 'true' } });
    const refresh = login.body.refresh_token ?? '';
    expect(refresh).not.toBe('');
    for (const path of ['/v2/', '/v2/alice/app/tags/list']) {
      const res = await raw(berth.url, 'GET', path, { headers: bearer(refresh) });
      expect(res.status, path).toBe(401);
      expect(res.header('WWW-Authenticate'), path).toContain('error="invalid_token"');
      expect(leaked(res, [refresh])).toEqual([]);
    }
    expect((await raw(berth.url, 'GET', '/v2/alice/app/tags/list', { headers: bearer(login.token) })).status).toBe(404);
  });

  it('scope strings with odd separators or names: 400 and no token', async () => {
    const odd = [
      'repository:alice/app:pull;push', 'repository:alice/app', 'repository:Alice/app:pull', 'repository:alice/../x:pull',
      'repository::pull', 'repository:alice/app:', 'repository:alice/app:pull,,push', ':alice/app:pull', 'repository:alice/app:pull\tpush',
      'repository:alice/app:PULL', 'repository:alice%2Fapp:pull', `repository:${'a'.repeat(300)}:pull`, 'repository:alice/app:pull\n',
      'repository:alice//app:pull', 'repository:/alice/app:pull', 'repository:alice/app/:pull', 'registry:catalog/x:*', 'repo sitory:x:pull',
      'repository:127.0.0.1:5000/alice/app:pull', 'repository:alice/app:pull\u0000', 'repository:alice/app:pull, push', 'repository:alice/app:pü11',
      'repository:alice\\app:pull', 'repository:alice/app:pull+push',
    ];
    for (const scope of odd) {
      const answer = await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, service: 'berth', scopes: [scope] });
      expect({ scope, status: answer.status }).toEqual({ scope, status: 400 });
      const text = answer.res.body.toString();
      expect(text).not.toMatch(/"(access_)?token"/);
      expect(leaked(answer.res, secrets())).toEqual([]);
      const form = await postToken(berth.url, { grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'berth', scope });
      expect({ scope, status: form.status }).toEqual({ scope, status: 400 });
    }
    // Another service, or an account other than the credentials' user, is refused too.
    expect((await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, service: 'other', scopes: ['repository:alice/app:pull'] })).status).toBe(400);
    expect((await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, extra: { account: 'bob' } })).status).toBe(400);
  });

  it('wrong passwords: 401 with the same answer for an unknown user and a wrong password, nothing leaked', async () => {
    const answers = await Promise.all([
      getToken(berth.url, { user: 'alice', password: 'wrong-password', service: 'berth', scopes: ['repository:alice/app:pull'] }),
      getToken(berth.url, { user: 'mallory', password: 'wrong-password', service: 'berth', scopes: ['repository:alice/app:pull'] }),
      getToken(berth.url, { user: 'alice', password: '', service: 'berth' }),
      getToken(berth.url, { user: 'alice', password: PASSWORDS.bob, service: 'berth' }),
    ]);
    const [first] = answers;
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.res.header('WWW-Authenticate')).toBe('Basic realm="berth"');
      expect(a.res.body.toString()).toBe(first?.res.body.toString());
      expect(headerShape(a.res)).toEqual(headerShape(first?.res as RawResponse));
      expect(leaked(a.res, secrets())).toEqual([]);
      expect(a.res.body.toString()).not.toMatch(/alice|mallory|wrong-password/);
    }
    // A malformed Basic header at the token endpoint.
    for (const authorization of ['Basic !!!', 'Basic', `Basic ${Buffer.from('no-colon').toString('base64')}`, 'Bearer x.y.z', 'Digest x']) {
      const a = await getToken(berth.url, { authorization, service: 'berth', scopes: ['repository:public/app:pull'] });
      expect({ authorization, status: a.status }).toEqual({ authorization, status: 401 });
      expect(a.token).toBe('');
    }
  });

  it('malformed Authorization headers on /v2/: 401 with the Bearer challenge, nothing changed', async () => {
    const diff = await changes(berth, async () => {
      for (const authorization of ['Bearer', 'Bearer a b', 'Basic !!!', 'Digest x', basic('alice', PASSWORDS.alice), `Bearer ${'z'.repeat(12_000)}`]) {
        const res = await raw(berth.url, 'POST', '/v2/alice/app/blobs/uploads/', { headers: { Authorization: authorization } });
        expect(res.status, authorization.slice(0, 20)).toBe(401);
        expect(res.header('WWW-Authenticate')).toMatch(new RegExp(`^Bearer realm="${realm}",service="berth",scope="repository:alice/app:pull,push"`));
        expect(leaked(res, [authorization.replace(/^\S+\s*/, ''), ...secrets()])).toEqual([]);
      }
    });
    expect(diff).toEqual([]);
  });

  it('a mount from a repository the caller cannot read answers 202 exactly like a blob that exists nowhere; a mount without from too, unless a repository the caller may pull links the blob', async () => {
    const hidden = blob('a layer only admin can read');
    const readable = blob('a layer alice can read');
    const pushBlob = async (repo: string, b: typeof hidden, token: string): Promise<void> => {
      const res = await raw(berth.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { headers: bearer(token), body: b.bytes });
      expect(res.status, res.body.toString()).toBe(201);
    };
    await pushBlob('secret/vault', hidden, await tokenFor('admin', 'repository:secret/vault:pull,push'));
    await pushBlob('alice/src', readable, await tokenFor('alice', 'repository:alice/src:pull,push'));
    // What docker asks for a cross-repository mount: push on the target, pull on the source.
    const token = await tokenFor('alice', 'repository:alice/app:pull,push', 'repository:secret/vault:pull', 'repository:alice/src:pull');
    expect((await verify(token))['access']).toEqual([
      { type: 'repository', name: 'alice/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'alice/src', actions: ['pull'] },
    ]);
    const nowhere = sha256('a layer nobody ever pushed');
    const mount = (digest: string, from?: string): Promise<RawResponse> =>
      raw(berth.url, 'POST', `/v2/alice/app/blobs/uploads/?mount=${digest}${from === undefined ? '' : `&from=${from}`}`, { headers: bearer(token) });
    const answers: RawResponse[] = [];
    const diff = await changes(berth, async () => {
      answers.push(await mount(hidden.digest, 'secret/vault'), await mount(nowhere, 'secret/vault'), await mount(nowhere, 'alice/src'));
      answers.push(await mount(hidden.digest), await mount(nowhere));
    });
    for (const res of answers) {
      expect(res.status).toBe(202);
      expect(headerShape(res)).toEqual(headerShape(answers[1] as RawResponse));
      expect(res.header('Range')).toBe('0-0');
      expect(res.header('Content-Length')).toBe('0');
      expect(res.header('Location')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v2\/alice\/app\/blobs\/uploads\/[0-9a-f-]+\?_state=[^&]+$/);
      expect(res.header('Docker-Upload-UUID')).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(diff.filter((d) => d !== '+docker/registry/v2/repositories/alice/app' && !d.startsWith('+docker/registry/v2/repositories/alice/app/_uploads')), 'only upload sessions were created').toEqual([]);
    await expect(stat(join(v2(berth.root), layerLink('alice/app', hidden.digest)))).rejects.toThrow();
    const head = await raw(berth.url, 'HEAD', `/v2/alice/app/blobs/${hidden.digest}`, { headers: bearer(token) });
    expect(head.status).toBe(404);
    // Without from, the blob a repository alice's token lets her pull links (alice/src) is mounted
    // (automatic cross-mount, storage.automaticcrossmount's default).
    const automatic = await mount(readable.digest);
    expect(automatic.status).toBe(201);
    expect(automatic.header('Docker-Content-Digest')).toBe(readable.digest);
    // The control: from a repository alice can read, the mount happens.
    const ok = await mount(readable.digest, 'alice/src');
    expect(ok.status).toBe(201);
    expect(ok.header('Docker-Content-Digest')).toBe(readable.digest);
  });

  it('wrong passwords take as long for an unknown user as for a known one (medians over 15 tries, interleaved)', async () => {
    const slowDir = await mkdtemp(join(tmpdir(), 'berth-auth-timing-'));
    const cost = 8;
    const file = await writeHtpasswd(slowDir, { alice: 'a', bob: 'b', carol: 'c' }, { cost });
    const hashed = bcrypt.hashSync('x', cost);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await bcrypt.compare('y', hashed);
    const bcryptMs = (performance.now() - t0) / 5;
    const issuerBerth = await startBerth({ auth: builtinAuth({ htpasswd: file, rules: RULES }) });
    const basicBerth = await startBerth({ auth: htpasswdAuth(file) });
    try {
      const probes: [string, (user: string) => Promise<number>][] = [
        ['GET /auth/token', (user) => getToken(issuerBerth.url, { user, password: 'wrong' }).then((a) => a.status)],
        ['POST /auth/token', (user) => postToken(issuerBerth.url, { grant_type: 'password', username: user, password: 'wrong' }).then((a) => a.status)],
        ['htpasswd GET /v2/', (user) => raw(basicBerth.url, 'GET', '/v2/', { headers: { Authorization: basic(user, 'wrong') } }).then((r) => r.status)],
      ];
      for (const [what, probe] of probes) {
        const known: number[] = [];
        const unknown: number[] = [];
        await probe('alice');
        await probe('nobody');
        for (let i = 0; i < 15; i++) {
          for (const [user, into] of (i % 2 === 0 ? [['alice', known], ['nobody', unknown]] : [['nobody', unknown], ['alice', known]]) as [string, number[]][]) {
            const start = performance.now();
            expect(await probe(user)).toBe(401);
            into.push(performance.now() - start);
          }
        }
        const [k, u] = [median(known), median(unknown)];
        const summary = `${what}: known ${k.toFixed(1)} ms, unknown ${u.toFixed(1)} ms, one bcrypt compare ${bcryptMs.toFixed(1)} ms`;
        console.log(`timing: ${summary}`);
        expect(u / k, summary).toBeGreaterThan(0.5);
        expect(u / k, summary).toBeLessThan(2);
        // Both paths run a bcrypt compare of the file's cost: neither answers in a fraction of one.
        expect(Math.min(k, u), summary).toBeGreaterThan(bcryptMs * 0.5);
      }
    } finally {
      await issuerBerth.close();
      await basicBerth.close();
      await rm(slowDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('auth.builtin with storage.maintenance.readonly.enabled', () => {
  it('still issues tokens by POST (docker with a stored identity token, containerd): getting a token writes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-readonly-'));
    const htpasswd = await writeHtpasswd(dir, { alice: PASSWORDS.alice });
    const berth = await startBerth({ readOnly: true, auth: builtinAuth({ htpasswd, rules: RULES }) });
    try {
      const login = await getToken(berth.url, { user: 'alice', password: PASSWORDS.alice, extra: { offline_token: 'true' } });
      expect(login.status).toBe(200);
      const refreshed = await postToken(berth.url, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token ?? '', service: 'berth', scope: 'repository:alice/app:pull', client_id: 'docker' });
      expect({ status: refreshed.status, body: refreshed.res.body.toString().slice(0, 200) }).toMatchObject({ status: 200 });
      const password = await postToken(berth.url, { grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'berth', scope: 'repository:alice/app:pull' });
      expect({ status: password.status, body: password.res.body.toString().slice(0, 200) }).toMatchObject({ status: 200 });
      // Writes to the registry are still refused.
      const post = await raw(berth.url, 'POST', '/v2/alice/app/blobs/uploads/', { headers: bearer(login.token) });
      expect(post.status).not.toBe(202);
    } finally {
      await berth.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('auth.builtin: the signing key is kept', () => {
  it('two Berths over the same key file issue tokens each accepts from the other; createAuth with the default key path reads the same key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-key-'));
    const htpasswd = await writeHtpasswd(dir, { alice: PASSWORDS.alice });
    const keyPath = join(dir, 'keys', 'signing-key.pem');
    const auth = builtinAuth({ htpasswd, rules: RULES, signingkey: keyPath });
    const one = await startBerth({ auth });
    const two = await startBerth({ auth });
    try {
      const mode = (await stat(keyPath)).mode & 0o777;
      expect(mode.toString(8)).toBe('600');
      const pem = await readFile(keyPath, 'utf8');
      expect(pem).toMatch(/^-----BEGIN (EC )?PRIVATE KEY-----/);
      const j1 = (await raw(one.url, 'GET', '/auth/jwks')).json();
      const j2 = (await raw(two.url, 'GET', '/auth/jwks')).json();
      expect(j2).toEqual(j1);
      expect(JSON.stringify(j1)).not.toContain(pem.split('\n')[1] ?? 'x');
      const image = makeImage(420);
      const t1 = (await getToken(one.url, { user: 'alice', password: PASSWORDS.alice, scopes: ['repository:alice/app:pull,push'] })).token;
      await pushImageWith(one.url, 'alice/app', 'v1', image, bearer(t1));
      const t2 = (await getToken(two.url, { user: 'alice', password: PASSWORDS.alice, scopes: ['repository:alice/app:pull,push'] })).token;
      // Each Berth has its own storage: one holds alice/app, two does not (404 once authorized).
      expect((await raw(one.url, 'GET', '/v2/alice/app/tags/list', { headers: bearer(t2) })).status).toBe(200);
      expect((await raw(two.url, 'GET', '/v2/alice/app/tags/list', { headers: bearer(t1) })).status).toBe(404);
      await pushImageWith(two.url, 'alice/app', 'v1', image, bearer(t1));
      expect((await raw(two.url, 'GET', '/v2/alice/app/tags/list', { headers: bearer(t2) })).status).toBe(200);
      // What `serve` does: no signingkey configured, the key kept at a path it chooses.
      const setup = await createAuth(builtinAuth({ htpasswd, rules: RULES }), keyPath);
      const grant = await setup.access?.authorize({ authorization: `Bearer ${t1}`, baseUrl: 'http://127.0.0.1' }, [
        { type: 'repository', name: 'alice/app', actions: ['pull', 'push'] },
      ]);
      expect(grant?.subject).toBe('alice');
      expect(await readFile(keyPath, 'utf8')).toBe(pem);
      // A fresh path is a fresh key: the old tokens do not verify there.
      const other = await createAuth(builtinAuth({ htpasswd, rules: RULES }), join(dir, 'other-key.pem'));
      await expect(other.access?.authorize({ authorization: `Bearer ${t1}`, baseUrl: 'http://127.0.0.1' }, [])).rejects.toThrow();
    } finally {
      await one.close();
      await two.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// =====================================================================================================
// auth.htpasswd
// =====================================================================================================

describe('auth.htpasswd: HTTP Basic as registry:2', () => {
  let dir: string;
  let berth: TestBerth;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-htpasswd-'));
    const path = await writeHtpasswd(dir, { alice: PASSWORDS.alice, bob: PASSWORDS.bob });
    berth = await startBerth({ auth: htpasswdAuth(path, 'Berth Registry') });
  });

  afterAll(async () => {
    await berth?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('no credentials, a wrong password, an unknown user, a malformed header: 401 Basic realm="…", all alike', async () => {
    const attempts = [undefined, basic('alice', 'wrong'), basic('mallory', 'wrong'), basic('alice', ''), 'Basic !!!', 'Bearer x.y.z', 'Digest x', `Basic ${'Q'.repeat(12_000)}`];
    const diff = await changes(berth, async () => {
      for (const authorization of attempts) {
        for (const [method, path] of [['GET', '/v2/'], ['GET', '/v2/alice/app/manifests/v1'], ['POST', '/v2/alice/app/blobs/uploads/']] as const) {
          const res = await raw(berth.url, method, path, authorization === undefined ? {} : { headers: { Authorization: authorization } });
          const what = `${method} ${path} ${authorization?.slice(0, 20) ?? '(none)'}`;
          expect(res.status, what).toBe(401);
          expect(res.header('WWW-Authenticate'), what).toBe('Basic realm="Berth Registry"');
          expect(errorCode(res), what).toBe('UNAUTHORIZED');
          expect(leaked(res, [PASSWORDS.alice, 'mallory', 'wrong']), what).toEqual([]);
        }
      }
    });
    expect(diff).toEqual([]);
    const known = await raw(berth.url, 'GET', '/v2/', { headers: { Authorization: basic('alice', 'wrong') } });
    const unknown = await raw(berth.url, 'GET', '/v2/', { headers: { Authorization: basic('mallory', 'wrong') } });
    expect(unknown.body.toString()).toBe(known.body.toString());
    expect(headerShape(unknown)).toEqual(headerShape(known));
  });

  it('the right password: push, pull, catalog, delete', async () => {
    const image = makeImage(430);
    const alice = { Authorization: basic('alice', PASSWORDS.alice) };
    expect((await raw(berth.url, 'GET', '/v2/', { headers: alice })).status).toBe(200);
    await pushImageWith(berth.url, 'alice/app', 'v1', image, alice);
    const get = await raw(berth.url, 'GET', '/v2/alice/app/manifests/v1', { headers: { ...alice, Accept: image.mediaType } });
    expect(get.status).toBe(200);
    expect(sha256(get.body)).toBe(image.manifest.digest);
    const cat = await raw(berth.url, 'GET', '/v2/_catalog', { headers: { Authorization: basic('bob', PASSWORDS.bob) } });
    expect(cat.json()).toEqual({ repositories: ['alice/app'] });
  });

  it('a cross-repository mount works for a signed-in user, as in registry:2 (htpasswd users may do everything)', async () => {
    const image = makeImage(431);
    const alice = { Authorization: basic('alice', PASSWORDS.alice) };
    await pushImageWith(berth.url, 'alice/src', 'v1', image, alice);
    const digest = image.layers[0]?.digest ?? '';
    const res = await raw(berth.url, 'POST', `/v2/alice/dst/blobs/uploads/?mount=${digest}&from=alice/src`, { headers: alice });
    expect({ status: res.status, location: res.header('Location')?.replace(/^https?:\/\/[^/]+/, '') }).toEqual({
      status: 201, location: `/v2/alice/dst/blobs/${digest}`,
    });
  });

  it('an htpasswd file with an MD5 (or other non-bcrypt) entry is a ConfigError at start, naming the file and line, not the hash', async () => {
    const cases: [string, RegExp][] = [
      [`alice:${bcrypt.hashSync('x', 5)}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n`, /:2: .*MD5/],
      ['alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n', /:1: .*SHA-1/],
      ['alice:plaintext-password\n', /:1: .*not a bcrypt hash/],
    ];
    for (const [text, message] of cases) {
      const path = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
      await writeFile(path, text);
      const err = await startBerth({ auth: htpasswdAuth(path) }).then(
        async (b) => {
          await b.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe('auth.htpasswd.path');
      expect((err as ConfigError).message).toMatch(message);
      expect((err as ConfigError).message).toContain(path);
      expect((err as ConfigError).message).not.toMatch(/apr1\$abcdefgh|W6ph5Mm5|plaintext-password/);
    }
    const missing = await createAuth(htpasswdAuth(join(dir, 'no-such-file')), undefined).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).key).toBe('auth.htpasswd.path');
  });
});

// =====================================================================================================
// configuration
// =====================================================================================================

describe('auth config: a realm that is not a URL', () => {
  it('is a ConfigError naming auth.token.realm (and auth.builtin.realm)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-auth-realm-'));
    try {
      const load = async (auth: string): Promise<unknown> => {
        const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yml`);
        await writeFile(file, `version: 0.1\nstorage:\n  inmemory: {}\nauth:\n${auth}`);
        return loadConfig({ file, env: {}, warn: () => undefined }).then(() => undefined, (e: unknown) => e);
      };
      for (const realm of ['not a url', '/auth/token', 'auth.example.com/token', 'ftp://auth.example.com/token', 'javascript:alert(1)', '""']) {
        const err = await load(`  token:\n    realm: ${realm}\n    service: s\n    issuer: i\n    rootcertbundle: /x.pem\n`);
        expect(err, realm).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).key, realm).toBe('auth.token.realm');
      }
      const builtin = await load('  builtin:\n    realm: not-a-url\n    htpasswd: /x\n');
      expect(builtin).toBeInstanceOf(ConfigError);
      expect((builtin as ConfigError).key).toBe('auth.builtin.realm');
      expect(await load(`  token:\n    realm: https://auth.example.com/token\n    service: s\n    issuer: i\n    rootcertbundle: /x.pem\n`)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// =====================================================================================================
// the conformance suite with auth on
// =====================================================================================================

const failures = (s: RunSummary): string[] => s.results.filter((r) => r.outcome === 'fail').map(formatResult);

describe('the conformance suite with auth on', () => {
  it('its client reads WWW-Authenticate challenges as registry:2 writes them (quoted commas and escapes too)', () => {
    expect(parseChallenges('Bearer realm="https://a.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://a.example/token', service: 'reg', scope: 'repository:a/b:pull,push', error: 'insufficient_scope' } },
    ]);
    expect(parseChallenges('Basic realm="Berth \\"x\\", y", Bearer realm=http://t,service=s')).toEqual([
      { scheme: 'basic', params: { realm: 'Berth "x", y' } },
      { scheme: 'bearer', params: { realm: 'http://t', service: 's' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-conformance-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('htpasswd (Basic): every check passes, the 401 check included', async () => {
    const path = await writeHtpasswd(dir, { conformer: 'conformance-pw' }, { file: 'basic-htpasswd' });
    const berth = await startBerth({ auth: htpasswdAuth(path) });
    try {
      const summary = await runConformance({ ...DEFAULT_SETTINGS, url: berth.url, credentials: { username: 'conformer', password: 'conformance-pw' } });
      expect(failures(summary)).toEqual([]);
      expect(summary.results.find((r) => r.name.startsWith('GET /v2/ without credentials answers 401'))?.outcome).toBe('pass');
      expect(summary.passed).toBeGreaterThanOrEqual(95);
      console.log(`conformance, htpasswd: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
      expect(berth.errors).toEqual([]);
    } finally {
      await berth.close();
    }
  }, 120_000);

  it('the built-in issuer (Bearer tokens fetched from the realm the challenges name): every check passes', async () => {
    const path = await writeHtpasswd(dir, { conformer: 'conformance-pw', outsider: 'outsider-pw' }, { file: 'token-htpasswd' });
    const berth = await startBerth({
      auth: builtinAuth({ htpasswd: path, rules: [{ users: ['conformer'], repositories: ['conformance/**'], actions: ['*'] }] }),
    });
    try {
      const summary = await runConformance({ ...DEFAULT_SETTINGS, url: berth.url, credentials: { username: 'conformer', password: 'conformance-pw' } });
      expect(failures(summary)).toEqual([]);
      expect(summary.results.find((r) => r.name.startsWith('GET /v2/ without credentials answers 401'))?.outcome).toBe('pass');
      expect(summary.passed).toBeGreaterThanOrEqual(95);
      const line = `${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`;
      console.log(`conformance, built-in issuer: ${line}`);
      const readme = await readFile(new URL('../conformance/README.md', import.meta.url), 'utf8');
      expect(line).toBe(/^- Berth with the built-in token issuer \(Bearer\), `--user`: `([^`]+)`/m.exec(readme)?.[1]);
      expect(berth.errors).toEqual([]);
      // And it can fail: a user the rules give nothing fails the pushes.
      const outsider = await runConformance({
        ...DEFAULT_SETTINGS, url: berth.url, credentials: { username: 'outsider', password: 'outsider-pw' }, only: ['pull'], deleteEnabled: false,
      });
      expect(outsider.failed).toBeGreaterThan(0);
      expect(outsider.results.find((r) => r.name === 'GET /v2/ answers 200')?.outcome).toBe('pass');
    } finally {
      await berth.close();
    }
  }, 120_000);
});
