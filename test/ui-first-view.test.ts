/**
 * The web UI's page carries its first view's data (src/http/ui/first-view.ts), read here from the HTML
 * as a browser gets it, on real servers: with the built-in issuer, an anonymous visitor's page holds what
 * anonymous may pull (the list of library/**, the tags of library/alpine) and nothing of apps/web; a
 * user's token with the rights gets apps/web's tags, and a user without pull on apps/web gets none of
 * its data in the HTML, as the API would answer them; with htpasswd, only the right password gets
 * data. The page is never cached (`no-store`, `Vary: Authorization`) and its JSON cannot close its
 * element whatever a configured realm holds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, bearer, builtinAuth, getToken, htpasswdAuth, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { ACCEPT_ALL, makeImage, pushImage, raw } from './helpers/oci.js';
import { type TestUi, buildTestUi } from './helpers/ui.js';

interface Boot {
  base: string;
  auth?: { challenge: string | null; issuer: boolean };
  answers: Record<string, { status: number; link?: string; body: Record<string, unknown>; manifest?: { text: string; mediaType: string; digest: string } }>;
}

const alpine = makeImage(1);
const web = makeImage(2);

/** The page at `path` as the caller with `headers` gets it: its HTML, headers and boot document. */
async function page(url: string, path: string, headers: Record<string, string> = {}): Promise<{ html: string; boot: Boot; header: (n: string) => string | undefined }> {
  const res = await raw(url, 'GET', path, { headers });
  expect(res.status, path).toBe(200);
  const html = res.body.toString('utf8');
  const json = /<script type="application\/json" id="berth-boot">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (json === undefined) throw new Error(`no boot document in the page at ${path}`);
  return { html, boot: JSON.parse(json) as Boot, header: (n) => res.header(n) };
}

const names = (boot: Boot): string[] =>
  ((boot.answers['berth/v1/usage?n=50']?.body['repositories'] ?? []) as { name: string }[]).map((r) => r.name);

describe('the first view in the page, with the built-in issuer', () => {
  let ui: TestUi;
  let berth: TestBerth;
  let dir: string;

  beforeAll(async () => {
    ui = await buildTestUi();
    dir = await mkdtemp(join(tmpdir(), 'berth-ui-first-'));
    const loader = await startBerth({ root: join(dir, 'root') });
    try {
      await pushImage(loader.url, 'library/alpine', '1.0', alpine);
      await pushImage(loader.url, 'apps/web', 'secret-tag', web);
    } finally {
      await loader.close();
    }
    const htpasswd = await writeHtpasswd(dir, { admin: 'admin-pw', viewer: 'viewer-pw' });
    const rules = [
      { repositories: ['**'], users: ['admin'], actions: ['*'], catalog: true },
      { repositories: ['library/**'], users: ['viewer'], actions: ['pull'] },
      { repositories: ['library/**'], anonymous: true, actions: ['pull'] },
    ];
    berth = await startBerth({ root: join(dir, 'root'), index: true, auth: builtinAuth({ htpasswd, rules }), ui: { assets: ui.assets } });
  });
  afterAll(async () => {
    await berth?.close();
    await ui?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('anonymous: the list of what anonymous may pull, the auth challenge, never cached', async () => {
    const { boot, html, header } = await page(berth.url, '/ui/');
    expect(boot.base).toBe('/ui/');
    expect(boot.auth?.challenge).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="berth"$/);
    expect(boot.auth?.issuer).toBe(true);
    expect(names(boot)).toEqual(['library/alpine']);
    expect(html).not.toContain('apps/web');
    expect(header('Cache-Control')).toBe('no-store');
    expect(header('Vary')).toBe('Accept-Encoding, Authorization');
    expect(header('ETag')).toBeUndefined();
    // The same as the API answers the page's script (an anonymous token for the catalog scope).
    const token = await getToken(berth.url, { service: 'berth', scopes: ['registry:catalog:*'] });
    const api = await raw(berth.url, 'GET', '/berth/v1/usage?n=50', { headers: bearer(token.token) });
    expect(boot.answers['berth/v1/usage?n=50']?.body).toEqual(api.json());
  });

  it('anonymous: a repository anonymous may pull comes with its first tags and usage; another with nothing of it', async () => {
    const open = await page(berth.url, '/ui/r/library/alpine');
    const tags = open.boot.answers['berth/v1/repositories/library/alpine/tags?sort=version&n=20'];
    expect(tags?.status).toBe(200);
    expect(tags?.body).toMatchObject({ total: 1, tags: [{ tag: '1.0', digest: alpine.manifest.digest }] });
    expect(open.boot.answers['berth/v1/repositories/library/alpine/usage']?.body).toMatchObject({ name: 'library/alpine', tags: 1 });
    const closed = await page(berth.url, '/ui/r/apps/web');
    expect(closed.boot.answers).toEqual({});
    expect(closed.html).not.toContain(web.manifest.digest);
    expect(closed.html).not.toContain('secret-tag');
  });

  it('a user with rights (their token, as the API checks it) gets the repository; one without pull gets none of its data', async () => {
    const scope = 'repository:apps/web:pull';
    const admin = await getToken(berth.url, { user: 'admin', password: 'admin-pw', service: 'berth', scopes: [scope] });
    const withRights = await page(berth.url, '/ui/r/apps/web', bearer(admin.token));
    expect(withRights.boot.answers['berth/v1/repositories/apps/web/tags?sort=version&n=20']?.body).toMatchObject({
      total: 1, tags: [{ tag: 'secret-tag', digest: web.manifest.digest }],
    });
    expect(withRights.boot.answers['berth/v1/repositories/apps/web/usage']?.body).toMatchObject({ name: 'apps/web' });
    const viewer = await getToken(berth.url, { user: 'viewer', password: 'viewer-pw', service: 'berth', scopes: [scope] });
    expect(viewer.body.scope).toBe('');
    const without = await page(berth.url, '/ui/r/apps/web', bearer(viewer.token));
    expect(without.boot.answers).toEqual({});
    expect(without.html).not.toContain(web.manifest.digest);
    expect(without.html).not.toContain('secret-tag');
    // The list: everything with the catalog grant; for viewer, what the rules let them pull.
    const catalog = 'registry:catalog:*';
    const adminList = await page(berth.url, '/ui/', bearer((await getToken(berth.url, { user: 'admin', password: 'admin-pw', service: 'berth', scopes: [catalog] })).token));
    expect(names(adminList.boot)).toEqual(['apps/web', 'library/alpine']);
    const viewerList = await page(berth.url, '/ui/', bearer((await getToken(berth.url, { user: 'viewer', password: 'viewer-pw', service: 'berth', scopes: [catalog] })).token));
    expect(names(viewerList.boot)).toEqual(['library/alpine']);
    expect(viewerList.html).not.toContain('apps/web');
    // A token that does not verify is nobody: nothing, as the API answers 401.
    const forged = await page(berth.url, '/ui/r/library/alpine', bearer(`${admin.token.slice(0, -4)}AAAA`));
    expect(forged.boot.answers).toEqual({});
  });

  it('anonymous: a manifest anonymous may pull comes with the page, by tag or digest, as the API answers it; another\'s does not', async () => {
    const token = await getToken(berth.url, { service: 'berth', scopes: ['repository:library/alpine:pull'] });
    const api = await raw(berth.url, 'GET', '/v2/library/alpine/manifests/1.0', { headers: { ...bearer(token.token), Accept: ACCEPT_ALL } });
    for (const [path, key] of [
      ['/ui/m/library/alpine@1.0', 'v2/library/alpine/manifests/1.0'],
      ['/ui/m/library/alpine', 'v2/library/alpine/manifests/latest'],
      [`/ui/m/library/alpine@${encodeURIComponent(alpine.manifest.digest)}`, `v2/library/alpine/manifests/${encodeURIComponent(alpine.manifest.digest)}`],
    ] as const) {
      const { boot } = await page(berth.url, path);
      if (path === '/ui/m/library/alpine') {
        expect(boot.answers, path).toEqual({}); // no tag latest: the page asks, and shows the API's 404
        continue;
      }
      expect(Object.keys(boot.answers), path).toEqual([key]);
      expect(boot.answers[key]?.manifest, path).toEqual({ text: alpine.manifest.bytes.toString('utf8'), mediaType: alpine.mediaType, digest: alpine.manifest.digest });
      expect(boot.answers[key]?.manifest?.text).toBe(api.body.toString('utf8'));
      expect(boot.answers[key]?.manifest?.digest).toBe(api.header('Docker-Content-Digest'));
    }
    const closed = await page(berth.url, '/ui/m/apps/web@secret-tag');
    expect(closed.boot.answers).toEqual({});
    expect(closed.html).not.toContain(web.manifest.digest);
    const admin = await getToken(berth.url, { user: 'admin', password: 'admin-pw', service: 'berth', scopes: ['repository:apps/web:pull'] });
    const withRights = await page(berth.url, '/ui/m/apps/web@secret-tag', bearer(admin.token));
    expect(withRights.boot.answers['v2/apps/web/manifests/secret-tag']?.manifest?.digest).toBe(web.manifest.digest);
  });

  it('a search and a view without data: the prefix is the list\'s; a name that is no repository, a bad reference and the admin view carry none', async () => {
    const searched = await page(berth.url, '/ui/?q=libr');
    expect(((searched.boot.answers['berth/v1/usage?n=50&prefix=libr']?.body['repositories'] ?? []) as { name: string }[]).map((r) => r.name)).toEqual(['library/alpine']);
    for (const path of ['/ui/r/library/nope', '/ui/r/Bad..Name', '/ui/r/%zz', '/ui/m/library/nope@1.0', '/ui/m/library/alpine@bad:digest', '/ui/m/%zz', '/ui/admin', '/ui/login']) {
      expect((await page(berth.url, path)).boot.answers, path).toEqual({});
    }
  });
});

describe('the first view in the page, with htpasswd', () => {
  let ui: TestUi;
  let berth: TestBerth;
  let dir: string;
  const realm = '</script><script>alert(1)</script><!-- & \u2028';

  beforeAll(async () => {
    ui = await buildTestUi();
    dir = await mkdtemp(join(tmpdir(), 'berth-ui-first-basic-'));
    const loader = await startBerth({ root: join(dir, 'root') });
    try {
      await pushImage(loader.url, 'team/app', 'v1', alpine);
    } finally {
      await loader.close();
    }
    const htpasswd = await writeHtpasswd(dir, { basic: 'basic-pw' });
    berth = await startBerth({ root: join(dir, 'root'), index: true, auth: htpasswdAuth(htpasswd, realm), ui: { assets: ui.assets } });
  });
  afterAll(async () => {
    await berth?.close();
    await ui?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('only the right password gets data; the realm in the challenge cannot close the element', async () => {
    const anonymous = await page(berth.url, '/ui/');
    expect(anonymous.boot.answers).toEqual({});
    expect(anonymous.html).not.toContain('team/app');
    expect(anonymous.boot.auth?.challenge).toBe(`Basic realm="${realm}"`);
    // The JSON holds no `<`, `>` or `&` as such: the one `</script>` in the page's head closes the boot document.
    const json = /<script type="application\/json" id="berth-boot">([\s\S]*?)<\/script>/.exec(anonymous.html)?.[1] ?? '';
    expect(json).not.toMatch(/[<>&\u2028]/);
    expect(anonymous.html.match(/<script\b/g)).toHaveLength(2);
    const wrong = await page(berth.url, '/ui/r/team/app', { Authorization: basic('basic', 'wrong') });
    expect(wrong.boot.answers).toEqual({});
    expect(wrong.html).not.toContain(alpine.manifest.digest);
    const right = await page(berth.url, '/ui/', { Authorization: basic('basic', 'basic-pw') });
    expect(names(right.boot)).toEqual(['team/app']);
    const repo = await page(berth.url, '/ui/r/team/app', { Authorization: basic('basic', 'basic-pw') });
    expect(repo.boot.answers['berth/v1/repositories/team/app/tags?sort=version&n=20']?.body).toMatchObject({ tags: [{ tag: 'v1', digest: alpine.manifest.digest }] });
  });
});
