/**
 * Mixed mode with authenticated upstreams: one Berth holding local repositories beside two mirrored
 * upstreams, docker-registry 2.8 (plain, the default) and a Berth with the built-in token issuer (the
 * Bearer flow Docker Hub and ghcr.io use), reached with credentials under one prefix and anonymously
 * under another. The mirror's own users need pull on the mirrored (prefixed) name.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { bearer, builtinAuth, getToken, pushImageWith, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { pushImageToRegistry2, serveMirror } from './helpers/mirror.js';
import { ACCEPT_ALL, errorCode, makeImage, pushImage, raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool, sleep } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';

const USERS = { owner: 'owner-pw', mirror: 'mirror-pw', reader: 'reader-pw' };

describeWithTool('docker-registry', registry2Available(), 'a mirror of a plain and a Bearer upstream beside local repositories', () => {
  let dir: string;
  let plain: Registry2;
  let secured: TestBerth;
  let securedProxy: UpstreamProxy;
  let berth: Serving;
  let url: string;
  let credentials: string;
  const hubImage = makeImage(301, { docker: true });
  const privateImage = makeImage(302);
  const publicImage = makeImage(303);
  const localImage = makeImage(304);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-auth-'));
    const htpasswd = await writeHtpasswd(dir, USERS);
    plain = await startRegistry2({ root: join(dir, 'plain') });
    await pushImageToRegistry2(plain.url, 'library/busybox', '1', hubImage);
    secured = await startBerth({
      auth: builtinAuth({
        htpasswd,
        rules: [
          { users: ['owner'], repositories: ['**'], actions: ['pull', 'push'] },
          { users: ['mirror'], repositories: ['org/**'], actions: ['pull'] },
          { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
        ],
      }),
    });
    // The token realm is taken from the request's Host, so token requests go through the proxy too.
    securedProxy = await startUpstreamProxy(secured.url);
    const ownerToken = async (repo: string): Promise<Record<string, string>> =>
      bearer((await getToken(secured.url, { user: 'owner', password: USERS.owner, scopes: [`repository:${repo}:pull,push`] })).token);
    await pushImageWith(secured.url, 'org/private', 'v1', privateImage, await ownerToken('org/private'));
    await pushImageWith(secured.url, 'public/tool', 'v1', publicImage, await ownerToken('public/tool'));
    const upstream = JSON.stringify(securedProxy.url);
    // A docker config.json naming the upstream's host, as credentialsfile takes it.
    credentials = join(dir, 'docker-config.json');
    const auth = Buffer.from(`mirror:${USERS.mirror}`).toString('base64');
    await writeFile(credentials, JSON.stringify({ auths: { [new URL(securedProxy.url).host]: { auth } } }));
    berth = await serveMirror(join(dir, 'mirror'), [
      'upstreams:',
      `  - {prefix: docker.io, remoteurl: ${JSON.stringify(plain.url)}, default: true}`,
      `  - {prefix: ghcr.io, remoteurl: ${upstream}, username: mirror, password: ${JSON.stringify(USERS.mirror)}}`,
      `  - {prefix: quay.io, remoteurl: ${upstream}}`,
      `  - {prefix: cred.io, remoteurl: ${upstream}, credentialsfile: ${JSON.stringify(credentials)}}`,
    ]);
    url = berth.running.url;
  });
  afterAll(async () => {
    await berth?.stop();
    await securedProxy?.close();
    await secured?.close();
    await plain?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const pull = async (name: string, ref: string, blobs: readonly { digest: string; bytes: Buffer }[]): Promise<void> => {
    const m = await raw(url, 'GET', `/v2/${name}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL } });
    expect(m.status, m.body.toString()).toBe(200);
    for (const b of blobs) {
      const got = await raw(url, 'GET', `/v2/${name}/blobs/${b.digest}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(b.bytes)).toBe(true);
    }
  };

  it('pulls from each upstream and pushes and pulls local repositories in one Berth', async () => {
    await pull('docker.io/library/busybox', '1', [hubImage.config, ...hubImage.layers]);
    await pull('ghcr.io/org/private', 'v1', [privateImage.config, ...privateImage.layers]);
    await pull('quay.io/public/tool', 'v1', [publicImage.config, ...publicImage.layers]);
    await pushImage(url, 'team/local', 'v1', localImage);
    await pull('team/local', 'v1', [localImage.config, ...localImage.layers]);
    const catalog = (await raw(url, 'GET', '/v2/_catalog')).json();
    expect(catalog).toEqual({ repositories: ['docker.io/library/busybox', 'ghcr.io/org/private', 'quay.io/public/tool', 'team/local'] });
  });

  it('gets a Bearer token per scope and reuses it for later pulls', async () => {
    const tokens = securedProxy.count('GET', '/auth/token');
    expect(tokens).toBeGreaterThan(0);
    const again = makeImage(305);
    await pushImageWith(secured.url, 'org/private', 'v2', again, bearer((await getToken(secured.url, { user: 'owner', password: USERS.owner, scopes: ['repository:org/private:pull,push'] })).token));
    await pull('ghcr.io/org/private', 'v2', [again.config, ...again.layers]);
    expect(securedProxy.count('GET', '/auth/token')).toBe(tokens);
    expect(securedProxy.requests.filter((r) => r.includes('/auth/token')).every((r) => r.includes('scope=repository%3A'))).toBe(true);
  });

  it('reads credentials from a docker config.json (credentialsfile)', async () => {
    await pull('cred.io/org/private', 'v1', [privateImage.config, ...privateImage.layers]);
  });

  it('watches the credentialsfile: a change, in place or by a rename, is used at once, even where a token is cached', async () => {
    const tags = async (): Promise<number> => (await raw(url, 'GET', '/v2/cred.io/org/private/tags/list')).status;
    expect(await tags()).toBe(200);
    const tokens = securedProxy.count('GET', '/auth/token');
    expect(await tags()).toBe(200); // the scope's token is cached
    expect(securedProxy.count('GET', '/auth/token')).toBe(tokens);
    const config = (password: string): string =>
      JSON.stringify({ auths: { [new URL(securedProxy.url).host]: { auth: Buffer.from(`mirror:${password}`).toString('base64') } } });
    /** Polls until the tag list answers `status` (the file watch tells Berth of a change asynchronously). */
    const until = async (status: number): Promise<void> => {
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(50)) if ((await tags()) === status) return;
      throw new Error(`the tag list never answered ${status}`);
    };
    await writeFile(credentials, config('wrong-password')); // in place
    await until(403);
    expect(securedProxy.count('GET', '/auth/token')).toBeGreaterThan(tokens);
    await writeFile(`${credentials}.new`, config(USERS.mirror));
    await rename(`${credentials}.new`, credentials); // replaced, as secret managers do
    await until(200);
  });

  it('sends no credentials where none are configured: anonymous pulls of a private name are denied', async () => {
    const res = await raw(url, 'GET', '/v2/quay.io/org/private/manifests/v1', { headers: { Accept: ACCEPT_ALL } });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('DENIED');
  });

  it('lists tags from the upstream, and from the cache once it is down', async () => {
    const up = await raw(url, 'GET', '/v2/ghcr.io/org/private/tags/list');
    expect(up.json()).toEqual({ name: 'ghcr.io/org/private', tags: ['v1', 'v2'] });
    securedProxy.down = true;
    try {
      const cached = await raw(url, 'GET', '/v2/ghcr.io/org/private/tags/list');
      expect(cached.status).toBe(200);
      expect(cached.json()).toEqual({ name: 'ghcr.io/org/private', tags: ['v1', 'v2'] });
    } finally {
      securedProxy.down = false;
    }
  });
});

describeWithTool('docker-registry', registry2Available(), 'a mirror with auth of its own', () => {
  let dir: string;
  let plain: Registry2;
  let berth: Serving;
  const image = makeImage(306, { docker: true });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-ownauth-'));
    const htpasswd = await writeHtpasswd(dir, USERS);
    plain = await startRegistry2({ root: join(dir, 'plain') });
    await pushImageToRegistry2(plain.url, 'library/busybox', '1', image);
    berth = await serveMirror(join(dir, 'mirror'), [
      'upstreams:',
      `  - {prefix: docker.io, remoteurl: ${JSON.stringify(plain.url)}, default: true, hosts: [docker.io]}`,
    ], [
      'auth:',
      '  builtin:',
      `    htpasswd: ${JSON.stringify(htpasswd)}`,
      '    rules:',
      "      - {users: [reader], repositories: ['docker.io/library/**'], actions: [pull]}",
    ]);
  });
  afterAll(async () => {
    await berth?.stop();
    await plain?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('needs pull on the mirrored name, whichever way the name was routed', async () => {
    const base = berth.running.url;
    const token = async (user: keyof typeof USERS, scope: string): Promise<Record<string, string>> =>
      bearer((await getToken(base, { user, password: USERS[user], scopes: [scope] })).token);
    const reader = await token('reader', 'repository:docker.io/library/busybox:pull');
    const ok = await raw(base, 'GET', '/v2/library/busybox/manifests/1?ns=docker.io', { headers: { ...reader, Accept: ACCEPT_ALL } });
    expect(ok.status, ok.body.toString()).toBe(200);
    // A token for the un-prefixed name grants nothing on the mirror.
    const unprefixed = await token('owner', 'repository:library/busybox:pull');
    const refused = await raw(base, 'GET', '/v2/library/busybox/manifests/1?ns=docker.io', { headers: { ...unprefixed, Accept: ACCEPT_ALL } });
    expect(refused.status).toBe(401);
    const challenge = refused.header('WWW-Authenticate') ?? '';
    expect(challenge).toContain('scope="repository:docker.io/library/busybox:pull"');
  });
});
