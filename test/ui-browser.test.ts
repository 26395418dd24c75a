/**
 * The web UI in a real browser: Debian's chromium, headless, driven by playwright-core, against a real
 * `berth serve` (the UI built into dist/ui/ first) with the built-in token issuer and images pushed by skopeo (test/helpers/ui-content.ts).
 * Anonymous visitors see what anonymous may pull (library/**) and are refused the rest; `admin` signs
 * in, searches, opens a repository, expands an index's platforms, sees a signature under its subject,
 * and deletes one tag while the other tag on that digest stays; `viewer` (pull only) sees no delete
 * button, and a delete forced from the page is refused by the server with nothing deleted. A
 * repository of 10,000 tags shows its first 20 by version from one request and pages both ways.
 *
 * Screenshots of each page go to docs/ui/ when BERTH_UI_SCREENSHOTS=1 (so a CI run leaves the tree
 * as it was): `BERTH_UI_SCREENSHOTS=1 npx vitest run test/ui-browser.test.ts`.
 */
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildUi } from '../scripts/build-ui.js';
import { type Serving, UI_ASSETS_DIR, serve } from '../src/cli/serve.js';
import { loadUiAssets } from '../src/http/ui/assets.js';
import { createTokenServer, htpasswdAuth, tokenAuth, writeHtpasswd } from './helpers/auth.js';
import { startBerth } from './helpers/berth.js';
import { MT, raw } from './helpers/oci.js';
import { describeWithTools } from './helpers/tools.js';
import { launchChromium } from './helpers/ui.js';
import { type PushedContent, SIGNATURE_TYPE, pushUiContent, writeManyTags } from './helpers/ui-content.js';

const SCREENSHOTS = process.env['BERTH_UI_SCREENSHOTS'] === '1' ? resolve('docs', 'ui') : undefined;

describeWithTools({ chromium: 'chromium', skopeo: 'skopeo' }, 'web UI in headless chromium', () => {
  let served: Serving;
  let url = '';
  let root = '';
  let content: PushedContent;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  /**
   * Checks what a screen reader and a keyboard need on the page as it is (every form control labelled,
   * every button and link named, one h1), then takes its screenshot when asked.
   */
  const shoot = async (name: string, p: Page = page): Promise<void> => {
    const problems = await p.evaluate(`(() => {
      const out = [];
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.getAttribute('aria-hidden') === 'true') continue;
        if (el.labels.length === 0 && !el.getAttribute('aria-label')) out.push('unlabelled ' + el.outerHTML.slice(0, 80));
      }
      for (const el of document.querySelectorAll('button, a[href]')) {
        if ((el.getAttribute('aria-label') || el.textContent || '').trim() === '') out.push('unnamed ' + el.outerHTML.slice(0, 80));
      }
      if (document.querySelectorAll('h1').length !== 1) out.push('h1 count ' + document.querySelectorAll('h1').length);
      return out;
    })()`);
    expect(problems, name).toEqual([]);
    if (SCREENSHOTS === undefined) return;
    await mkdir(SCREENSHOTS, { recursive: true });
    await p.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  };
  /** Goes to a view of the loaded page (an old-style hash link, taken to its path: no reload, so a sign-in stays). */
  const open = async (hash: string): Promise<void> => {
    if (!page.url().startsWith(`${url}/ui/`)) await page.goto(`${url}/ui/`);
    await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
  };
  const signIn = async (user: string, password: string): Promise<void> => {
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(`Signed in as ${user}`).waitFor();
  };

  beforeAll(async () => {
    // `berth serve` serves dist/ui/: build it from the source as it is now.
    await buildUi();
    root = await mkdtemp(join(tmpdir(), 'berth-ui-browser-'));
    // Content goes in through an open Berth; the one under test serves the same root with auth.
    const loader = await startBerth({ root });
    try {
      content = await pushUiContent(loader.url);
    } finally {
      await loader.close();
    }
    const htpasswd = await writeHtpasswd(root, { admin: 'admin-pw', viewer: 'viewer-pw' });
    const rules = [
      { repositories: ['**'], users: ['admin'], actions: ['*'], catalog: true },
      { repositories: ['**'], users: ['viewer'], actions: ['pull'], catalog: true },
      { repositories: ['library/**'], anonymous: true, actions: ['pull'] },
    ];
    const config = join(root, 'config.yml');
    await writeFile(config, [
      'version: 0.1', 'log:', '  level: error', 'http:', '  addr: 127.0.0.1:0',
      'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(root)}`, '  delete:', '    enabled: true',
      'auth:', '  builtin:', `    htpasswd: ${JSON.stringify(htpasswd)}`, `    rules: ${JSON.stringify(rules)}`, '',
    ].join('\n'));
    // The real composition root: index, usage, status and the collector as `berth serve` has them.
    served = await serve(config, {});
    url = served.running.url;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // A refused request (401, 403), an API this server lacks (404) or usage figures whose index is not
      // ready (503; the page falls back to the catalog) are logged by the browser as failed resources;
      // anything else is a bug.
      if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of (40[134]|503)/.test(msg.text())) pageErrors.push(msg.text());
    });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
    if (root !== '') await rm(root, { recursive: true, force: true });
    expect(pageErrors).toEqual([]);
  });

  it('anonymous: the page loads under its CSP with no error; library/** opens, other repositories are refused', async () => {
    await open('#/r/library/alpine');
    await page.getByRole('heading', { name: /library\/alpine/ }).waitFor();
    expect(page.url()).toBe(`${url}/ui/r/library/alpine`);
    await page.locator('li.tag[data-tag="1.0"] .facts').waitFor();
    expect(await page.getByRole('button', { name: /Delete/ }).count()).toBe(0);
    await open('#/r/apps/web');
    const refused = page.getByRole('alert');
    await refused.waitFor();
    expect(await refused.textContent()).toMatch(/Sign in as a user who may see it/);
    expect(await page.getByRole('link', { name: 'Sign in' }).isVisible()).toBe(true);
  });

  it('admin signs in (token in memory only) and searches as they type', async () => {
    await open('#/');
    await signIn('admin', 'admin-pw');
    const rows = page.locator('table.repos tbody tr');
    await rows.first().waitFor();
    expect(await rows.locator('th').allTextContents()).toEqual(content.repositories);
    await shoot('repositories');
    await page.getByLabel('Search repositories').fill('apps/');
    await rows.filter({ hasText: 'library/' }).first().waitFor({ state: 'detached' });
    expect(await rows.locator('th').allTextContents()).toEqual(['apps/multi', 'apps/web']);
    expect(page.url()).toBe(`${url}/ui/?q=apps%2F`);
    await page.getByLabel('Search repositories').fill('zzz');
    await page.getByText('No repository starts with “zzz”.').waitFor();
    // Nothing of the session is stored where another page or a reload could read it.
    expect(await page.evaluate('[localStorage.length, sessionStorage.length, document.cookie]')).toEqual([0, 0, '']);
  });

  it('opens a repository: tags by version, digests, sizes, created times, a pull command, and the signature under its subject', async () => {
    await page.getByLabel('Search repositories').fill('apps/w');
    await page.getByRole('link', { name: 'apps/web' }).click();
    await page.getByRole('heading', { name: /apps\/web/ }).first().waitFor();
    const tags = page.locator('li.tag');
    // The names, then each card of the page filled in (its push time from the management API).
    await page.locator('li.tag .facts').first().waitFor();
    expect(await tags.evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')))).toEqual(['1.10.0', '1.2.0', '1.0.0', 'latest']);
    const card = page.locator('li.tag[data-tag="1.2.0"]');
    await card.locator('.referrers').waitFor();
    const digest = content.digests.get('apps/web:1.2.0') ?? '';
    expect(await card.locator('code.digest').getAttribute('title')).toBe(digest);
    expect(await card.textContent()).toContain('2026-11-02 10:00 UTC'); // created, from the image config
    expect(await card.locator('.pull code').textContent()).toBe(`docker pull ${new URL(url).host}/apps/web:1.2.0`);
    const referrer = card.locator('.referrers li.referrer');
    expect(await referrer.count()).toBe(1);
    expect(await referrer.textContent()).toContain(SIGNATURE_TYPE);
    expect(await referrer.locator('.badge').textContent()).toBe('signature');
    expect(await card.getByRole('button', { name: /Delete tag/ }).count()).toBe(1);
    await page.locator('li.tag[data-tag="latest"] .referrers').waitFor();
    expect(await card.textContent()).toMatch(/Pushed\d{4}-\d\d-\d\d \d\d:\d\d UTC/); // from /berth/v1/repositories/<name>/tags
    await shoot('repository');
    // By push time (every tag's push time is read then): skopeo pushed 1.0.0 first and 1.10.0 last.
    await page.getByLabel('Sort tags by').selectOption('pushed');
    await page.locator('#tag-list[data-order="pushed"] li.tag').first().waitFor();
    const byPush = await tags.evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')));
    expect([byPush[0], byPush.at(-1)]).toEqual(['1.10.0', '1.0.0']);
  });

  it('expands an index: its platforms, each with its own digest and size', async () => {
    await open('#/r/apps/multi');
    const platforms = page.locator('li.tag[data-tag="v1"] details.platforms');
    await platforms.waitFor();
    expect(await platforms.locator('li.platform').first().isVisible()).toBe(false);
    await platforms.locator('summary').focus();
    await page.keyboard.press('Enter'); // keyboard, as a screen reader user would
    const items = platforms.locator('li.platform');
    await items.first().waitFor({ state: 'visible' });
    expect(await items.locator('.platform-name').allTextContents()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(await platforms.getAttribute('open')).toBe('');
    await shoot('repository-index');
  });

  it('shows a manifest: layers, history, labels, annotations and the raw JSON', async () => {
    await open('#/m/apps/web@1.10.0');
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    const layers = page.locator('table').filter({ has: page.locator('caption', { hasText: 'Layers' }) }).locator('tbody tr');
    expect(await layers.count()).toBe(2);
    expect(await page.getByText('COPY app/ /app/ # 1.10.0').count()).toBe(1);
    expect(await page.locator('dl.facts').filter({ hasText: 'org.opencontainers.image.version' }).textContent()).toContain('1.10.0');
    expect(await page.locator('dl.facts').getByText('https://example.invalid/berth-ui-test').count()).toBe(1);
    await page.getByText('Raw manifest').click();
    const rawText = await page.locator('details.raw pre').textContent();
    expect(JSON.parse(rawText ?? '{}')).toMatchObject({ mediaType: MT.ociManifest, schemaVersion: 2 });
    await shoot('manifest');
  });

  it('admin page: version, health, the collector with a dry run that lists itself among the last runs', async () => {
    await open('#/admin');
    await page.getByRole('heading', { name: 'Garbage collector' }).waitFor();
    const server = page.locator('dl.facts').first();
    expect(await server.textContent()).toContain('0.1.0');
    expect(await server.textContent()).toContain('healthy');
    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByText(/^Would free .* blobs swept/).waitFor();
    await open('#/');
    await open('#/admin');
    const runs = page.locator('table').filter({ has: page.locator('caption', { hasText: 'Last collections' }) }).locator('tbody tr');
    await runs.first().waitFor();
    expect(await runs.first().textContent()).toContain('dry run');
    await shoot('admin');
  });

  it('deletes one tag after a confirmation; the other tag on that digest stays', async () => {
    await open('#/r/apps/web');
    const card = page.locator('li.tag[data-tag="1.2.0"]');
    await card.locator('.facts').waitFor();
    let asked = '';
    page.once('dialog', (d) => {
      asked = d.message();
      void d.accept();
    });
    await card.getByRole('button', { name: /Delete tag/ }).click();
    await card.waitFor({ state: 'detached' });
    expect(asked).toContain('Only this tag goes');
    await open('#/');
    await open('#/r/apps/web');
    await page.locator('li.tag[data-tag="latest"] .facts').waitFor();
    expect(await page.locator('li.tag').evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')))).toEqual(['1.10.0', '1.0.0', 'latest']);
    // The server agrees: 1.2.0 is gone, latest still names the same manifest.
    const tags = await raw(url, 'GET', '/v2/apps/web/tags/list', { headers: await bearer('admin:admin-pw', 'repository:apps/web:pull') });
    expect((tags.json() as { tags: string[] }).tags).toEqual(['1.0.0', '1.10.0', 'latest']);
    const latest = await raw(url, 'HEAD', '/v2/apps/web/manifests/latest', { headers: { ...(await bearer('admin:admin-pw', 'repository:apps/web:pull')), Accept: MT.ociManifest } });
    expect(latest.header('Docker-Content-Digest')).toBe(content.digests.get('apps/web:1.2.0'));
  });

  it('viewer (pull only) sees no delete button, and a delete forced from the page is refused by the server', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn('viewer', 'viewer-pw');
    await open('#/r/apps/web');
    await page.locator('li.tag[data-tag="latest"] .facts').waitFor();
    expect(await page.getByRole('button', { name: /Delete/ }).count()).toBe(0);
    await open('#/m/apps/web@1.0.0');
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    expect(await page.getByRole('button', { name: /Delete/ }).count()).toBe(0);
    await shoot('manifest-viewer');
    await open('#/admin');
    await page.getByText('Running the collector needs delete on every repository.').waitFor();
    expect(await page.getByRole('button', { name: /Run now|Dry run/ }).count()).toBe(0);
    const forced = await page.evaluate(async (base) => {
      const form = new URLSearchParams({ grant_type: 'password', username: 'viewer', password: 'viewer-pw', service: 'berth', scope: 'repository:apps/web:delete' });
      const token = (await (await fetch(`${base}/auth/token`, { method: 'POST', body: form })).json()) as { token: string; scope: string };
      const res = await fetch(`${base}/v2/apps/web/manifests/1.0.0`, { method: 'DELETE', headers: { Authorization: `Bearer ${token.token}` }, credentials: 'omit' });
      return { status: res.status, granted: token.scope, challenge: res.headers.get('WWW-Authenticate') ?? '' };
    }, url);
    expect(forced.granted).toBe(''); // the issuer grants viewer no delete…
    expect(forced.status).toBe(401); // …and the registry refuses the token (the token spec's insufficient_scope)
    expect(forced.challenge).toContain('error="insufficient_scope"');
    // The token lived in the page's memory only: a reload signs out.
    await page.reload();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    const still = await raw(url, 'HEAD', '/v2/apps/web/manifests/1.0.0', { headers: { ...(await bearer('admin:admin-pw', 'repository:apps/web:pull')), Accept: MT.ociManifest } });
    expect(still.status).toBe(200);
  });

  it('htpasswd: the page asks for a sign-in first; a wrong password is an alert, the right one opens the repositories', async () => {
    const htpasswd = await writeHtpasswd(root, { basic: 'basic-pw' }, { file: 'htpasswd-basic' });
    const basic = await startBerth({ root, auth: htpasswdAuth(htpasswd), ui: { assets: await loadAssets() } });
    const p = await context.newPage();
    let nativeDialog = false;
    p.on('dialog', (d) => {
      nativeDialog = true;
      void d.dismiss();
    });
    try {
      await p.goto(`${basic.url}/ui/#/r/apps/web`);
      await p.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(await p.getByText('HTTP Basic accounts').count()).toBe(1);
      await shoot('login', p);
      await p.getByLabel('User name').fill('basic');
      await p.getByLabel('Password').fill('wrong');
      await p.getByRole('button', { name: 'Sign in' }).click();
      expect(await p.getByRole('alert').textContent()).toBe('Wrong user name or password.');
      await p.getByLabel('Password').fill('basic-pw');
      await p.getByRole('button', { name: 'Sign in' }).click();
      // Back where the visit started, with delete rights (htpasswd users may do everything).
      await p.locator('li.tag[data-tag="latest"] .facts').waitFor();
      expect(await p.getByRole('button', { name: 'Delete repository' }).count()).toBe(1);
      expect(nativeDialog).toBe(false);
    } finally {
      await p.close();
      await basic.close();
    }
  });

  it('external token server: the page says it cannot sign in there, and why', async () => {
    const server = await createTokenServer();
    const external = await startBerth({
      root,
      ui: { assets: await loadAssets() },
      auth: tokenAuth({ realm: 'https://auth.example.invalid/token', service: server.service, issuer: server.issuer, rootcertbundle: server.caBundlePath }),
    });
    const p = await context.newPage();
    try {
      await p.goto(`${external.url}/ui/#/login`);
      const note = p.getByRole('note');
      await note.waitFor();
      expect(await note.textContent()).toContain('external token server (https://auth.example.invalid/token)');
      expect(await p.locator('#account').textContent()).toBe('External token server');
      expect(await p.getByLabel('Password').count()).toBe(0);
    } finally {
      await p.close();
      await external.close();
      await server.close();
    }
  });

  it('the first view comes with the page (what anonymous may see): its rows show with no API request; links move without a reload', async () => {
    const p = await context.newPage();
    const asked: string[] = [];
    p.on('request', (r) => asked.push(new URL(r.url()).pathname));
    try {
      await p.goto(`${url}/ui/`);
      await p.locator('table.repos tbody tr td').first().waitFor();
      const library = content.repositories.filter((r) => r.startsWith('library/'));
      expect(library.length).toBeGreaterThan(0);
      expect(await p.locator('table.repos tbody th').allTextContents()).toEqual(library);
      // The page itself, and nothing else: not the auth check, not a token, not the catalog, not the usage figures.
      expect(asked).toEqual(['/ui/']);
      const first = library[0] ?? '';
      await p.getByRole('link', { name: first }).click();
      await p.locator('li.tag .facts').first().waitFor();
      expect(p.url()).toBe(`${url}/ui/r/${first}`);
      // A link is a move inside the page (its requests are the API's), not a new page.
      expect(asked.filter((a) => a.startsWith('/ui/'))).toEqual(['/ui/']);
      expect(asked).toContain(`/berth/v1/repositories/${first}/tags`);
      asked.length = 0;
      await p.reload();
      await p.locator('li.tag .facts').first().waitFor();
      expect(asked).not.toContain(`/berth/v1/repositories/${first}/tags`);
      expect(asked).not.toContain(`/berth/v1/repositories/${first}/usage`);
      expect(asked).not.toContain('/v2/');
      await p.goBack();
      await p.locator('table.repos tbody tr td').first().waitFor();
      expect(p.url()).toBe(`${url}/ui/`);
      // A manifest's page comes with its manifest: the page asks only for what is not embedded yet (its config blob, referrers).
      asked.length = 0;
      await p.goto(`${url}/ui/m/library/alpine@1.0`);
      await p.locator('code.digest').first().waitFor();
      expect(await p.locator('code.digest').first().textContent()).toBe(content.digests.get('library/alpine:1.0'));
      expect(asked).not.toContain('/v2/library/alpine/manifests/1.0');
      expect(asked).toContain('/ui/m/library/alpine@1.0');
    } finally {
      await p.close();
    }
  });

  it('no auth, an old hash link: the view opens at its path (the server saw only /ui/) and asks its first requests once', async () => {
    const open = await startBerth({ root, ui: { assets: await loadAssets() } });
    const p = await context.newPage();
    const asked: string[] = [];
    p.on('request', (r) => asked.push(new URL(r.url()).pathname));
    try {
      // The server sees /ui/ (the list's data), the page shows #/r/apps/web at /ui/r/apps/web.
      await p.goto(`${open.url}/ui/#/r/apps/web`);
      await p.locator('li.tag[data-tag="latest"] .facts').waitFor();
      expect(p.url()).toBe(`${open.url}/ui/r/apps/web`);
      expect(asked.filter((a) => a === '/berth/v1/repositories/apps/web/tags')).toHaveLength(1);
      expect(asked.filter((a) => a === '/berth/v1/repositories/apps/web/usage')).toHaveLength(1);
      expect(asked).not.toContain('/v2/_catalog');
    } finally {
      await p.close();
      await open.close();
    }
  });

  it('a repository of 10,000 tags: one request for the first page, sorted by version on the server; pages turn both ways; push-time order', async () => {
    const bigRoot = await mkdtemp(join(tmpdir(), 'berth-ui-10k-'));
    const version = (i: number): string => `${Math.floor(i / 100)}.${i % 100}.0`; // 0.0.0 … 99.99.0
    const loader = await startBerth({ root: bigRoot });
    try {
      await writeManyTags(loader.url, bigRoot, 'big/app', 10_000, version);
    } finally {
      await loader.close();
    }
    const big = await startBerth({ root: bigRoot, index: true, ui: { assets: await loadAssets() } });
    const p = await context.newPage();
    p.on('pageerror', (err) => pageErrors.push(err.message));
    const asked: string[] = [];
    p.on('request', (r) => {
      const u = new URL(r.url());
      asked.push(u.pathname + u.search);
    });
    const shown = (): Promise<(string | null)[]> => p.locator('li.tag').evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')));
    const page = async (n: number): Promise<void> => {
      await p.locator('#tag-list .pager').getByText(`Page ${n} of 500`).waitFor();
    };
    const newest = (from: number): string[] => Array.from({ length: 20 }, (_, i) => version(from - i));
    try {
      await p.goto(`${big.url}/ui/r/big/app`);
      await p.locator('li.tag .facts').first().waitFor();
      await page(1);
      expect(await shown()).toEqual(newest(9999)); // 99.99.0 … 99.80.0
      expect(await p.locator('.repo-figures dd').first().textContent()).toBe('10000'); // the tag count, from the same answer
      // The first screen's 20 tags came with the page: no tag list, no details of the other 9,980, no request.
      expect(asked.filter((a) => a.includes('/tags'))).toEqual([]);
      const boot = JSON.parse(await p.locator('#berth-boot').textContent() ?? '') as { answers: Record<string, { body: { tags: unknown[] } }> };
      expect(Object.keys(boot.answers).sort()).toEqual(['berth/v1/repositories/big/app/tags?sort=version&n=20', 'berth/v1/repositories/big/app/usage']);
      expect(boot.answers['berth/v1/repositories/big/app/tags?sort=version&n=20']?.body.tags).toHaveLength(20);
      const next = p.getByRole('button', { name: 'Next →' });
      for (let n = 2; n <= 5; n++) {
        await next.click();
        await page(n);
      }
      // Page 5 holds 99.19.0 … 99.0.0: 99.10.0 before 99.9.0 (version order, not code-unit order).
      expect(await shown()).toEqual(newest(9919));
      await next.click();
      await page(6);
      expect(await shown()).toEqual(newest(9899)); // 98.99.0 …
      await p.getByRole('button', { name: '← Previous' }).click();
      await page(5);
      expect(await shown()).toEqual(newest(9919));
      await p.locator('li.tag[data-tag="99.19.0"][data-filled]').waitFor();
      await shoot('repository-10k-tags', p);
      expect(await p.locator('li.tag[data-tag="99.19.0"] code.digest').getAttribute('title')).toMatch(/^sha256:/);
      // By push time: the tag pushed last (an hour from now, by its link's time) comes first.
      const later = Math.floor(Date.now() / 1000) + 3600;
      await utimes(join(bigRoot, 'docker/registry/v2/repositories/big/app/_manifests/tags/3.7.0/current/link'), later, later);
      await p.getByLabel('Sort tags by').selectOption('pushed');
      await p.locator('#tag-list[data-order="pushed"]').waitFor();
      await page(1);
      expect((await shown())[0]).toBe('3.7.0');
      expect(await shown()).toHaveLength(20);
      expect(asked.filter((a) => a.includes('/tags')).at(-1)).toBe('/berth/v1/repositories/big/app/tags?sort=pushed&n=20');
    } finally {
      await p.close();
      await big.close();
      await rm(bigRoot, { recursive: true, force: true });
    }
  }, 300_000);

  it('is readable on a phone: nothing wider than the screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    try {
      await p.goto(`${url}/ui/#/r/library/alpine`);
      await p.locator('li.tag[data-tag="1.0"] .facts').waitFor();
      const overflow = await p.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      expect(overflow).toBeLessThanOrEqual(0);
      await shoot('repository-phone', p);
    } finally {
      await phone.close();
    }
  });

  async function loadAssets(): Promise<NonNullable<Awaited<ReturnType<typeof loadUiAssets>>>> {
    const assets = await loadUiAssets(UI_ASSETS_DIR);
    if (assets === undefined) throw new Error(`no UI built in ${UI_ASSETS_DIR}`);
    return assets;
  }

  /** An Authorization header with a token of the built-in issuer for `scope`. */
  async function bearer(credentials: string, scope: string): Promise<Record<string, string>> {
    const res = await fetch(`${url}/auth/token?service=berth&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
    });
    const body = (await res.json()) as { token: string };
    return { Authorization: `Bearer ${body.token}` };
  }
});
