/**
 * Serving the web UI (src/http/ui/): `/ui/` on the API listener with the page the real build makes (its
 * script and stylesheet inline) at each view's path, never cached (`no-store`: it carries its caller's
 * first view, test/ui-first-view.test.ts); other files with their type (mime-types), a strong ETag
 * answered by 304 and a year of immutable caching for hashed names; gzip when asked; the strict
 * Content-Security-Policy (the page's inline script and stylesheet allowed by their SHA-256 only; its
 * JSON boot document is a data block no policy needs to allow). Off (`ui.enabled: false`): no `/ui/` at
 * all. Not built: 503 saying how to build it. Under `http.prefix`, at `<prefix>/ui/`.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/parse.js';
import { loadUiAssets } from '../src/http/ui/assets.js';
import { uiContentSecurityPolicy } from '../src/http/ui/serve-ui.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { errorCode, raw } from './helpers/oci.js';
import { type TestUi, buildTestUi } from './helpers/ui.js';

describe('web UI static files', () => {
  let ui: TestUi;
  let berth: TestBerth;
  /** The built page plus one hashed asset (today's build inlines everything; the server serves any such file). */
  let withAsset: { dir: string; berth: TestBerth; file: string; body: string };

  beforeAll(async () => {
    ui = await buildTestUi();
    berth = await startBerth({ ui: { assets: ui.assets } });
    const dir = await mkdtemp(join(tmpdir(), 'berth-ui-asset-'));
    const file = 'assets/extra-2KQJ5XUE.js';
    const body = `export const words = ${JSON.stringify('the same line again '.repeat(200))};\n`;
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), ui.assets.get('index.html')?.body ?? '');
    await writeFile(join(dir, file), body);
    const assets = await loadUiAssets(dir);
    withAsset = { dir, berth: await startBerth({ ui: { assets } }), file, body };
  });
  afterAll(async () => {
    await withAsset?.berth.close();
    if (withAsset !== undefined) await rm(withAsset.dir, { recursive: true, force: true });
    await berth.close();
    await ui.close();
  });

  it('redirects /ui to /ui/ and serves the page there and at every view\'s path, never cached, with its script and stylesheet inline', async () => {
    expect(ui.files).toEqual(['index.html']);
    const bare = await raw(berth.url, 'GET', '/ui');
    expect(bare.status).toBe(301);
    expect(bare.header('Location')).toBe('/ui/');
    const res = await raw(berth.url, 'GET', '/ui/');
    expect(res.status).toBe(200);
    expect(res.header('Content-Type')).toBe('text/html; charset=utf-8');
    expect(res.header('Cache-Control')).toBe('no-store');
    expect(res.header('Vary')).toBe('Accept-Encoding, Authorization');
    expect(res.header('ETag')).toBeUndefined();
    for (const view of ['/ui/index.html', '/ui/?q=lib', '/ui/r/library/alpine', '/ui/m/library/alpine@sha256%3Aab', '/ui/admin', '/ui/login?next=admin']) {
      const other = await raw(berth.url, 'GET', view);
      expect(other.status, view).toBe(200);
      expect(other.header('Content-Type'), view).toBe('text/html; charset=utf-8');
      expect(other.header('Cache-Control'), view).toBe('no-store');
    }
    // One request loads the page: nothing it needs before its first rows is a file of its own.
    const html = res.body.toString();
    expect(html).not.toMatch(/\ssrc=|<link\b[^>]*rel="(stylesheet|modulepreload|preload)"/);
    expect(/<script type="module">([\s\S]*?)<\/script>/.exec(html)?.[1]?.length).toBeGreaterThan(10_000);
    expect(JSON.parse(/<script type="application\/json" id="berth-boot">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '')).toMatchObject({ base: '/ui/', auth: { challenge: null } });
    expect(/<style>([\s\S]*?)<\/style>/.exec(html)?.[1]?.length).toBeGreaterThan(1000);
  });

  it('sends a strict Content-Security-Policy allowing exactly the page\'s own inline script and stylesheet, by hash', async () => {
    const res = await raw(berth.url, 'GET', '/ui/');
    const csp = res.header('Content-Security-Policy') ?? '';
    expect(csp).toBe(uiContentSecurityPolicy(ui.assets.inline));
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|unsafe-hashes|nonce-/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(res.header('X-Content-Type-Options')).toBe('nosniff');
    const html = res.body.toString();
    const hashOf = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const directive = (name: string): string[] => (csp.split('; ').find((d) => d.startsWith(`${name} `)) ?? '').split(' ').slice(1);
    // The boot document is a data block (type application/json): never run, so no hash allows it.
    const all = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(all.map((m) => m[1])).toEqual([' type="application/json" id="berth-boot"', ' type="module"']);
    const scripts = all.filter((m) => m[1] === ' type="module"');
    const styles = [...html.matchAll(/<style\b([^>]*)>([\s\S]*?)<\/style>/g)];
    expect(scripts.length).toBe(1);
    expect(styles.length).toBe(1);
    expect(directive('script-src')).toEqual(["'self'", hashOf(scripts[0]?.[2] ?? '')]);
    expect(directive('style-src')).toEqual(["'self'", hashOf(styles[0]?.[2] ?? '')]);
    // Nothing else inline: no handler or style attributes, which no hash allows.
    expect(html).not.toMatch(/\sstyle="|\son[a-z]+="/i);
    // The script itself never evaluates strings.
    expect(scripts[0]?.[2]).not.toMatch(/\beval\(|new Function\(/);
    // Every answer under /ui/ carries the same policy, an error too.
    expect((await raw(berth.url, 'GET', '/ui/nope.js')).header('Content-Security-Policy')).toBe(csp);
  });

  it('serves hashed files with their types, immutable for a year', async () => {
    const res = await raw(withAsset.berth.url, 'GET', `/ui/${withAsset.file}`);
    expect(res.status).toBe(200);
    expect(res.header('Content-Type')).toBe('text/javascript; charset=utf-8');
    expect(res.header('Cache-Control')).toBe('public, max-age=31536000, immutable');
    expect(res.header('Content-Security-Policy')).toBe(uiContentSecurityPolicy(ui.assets.inline));
    expect(Number(res.header('Content-Length'))).toBe(res.body.length);
    expect(res.body.toString()).toBe(withAsset.body);
  });

  it('answers a file\'s matching If-None-Match with 304 and no body, and a stale one with the file; the page is always sent', async () => {
    const path = `/ui/${withAsset.file}`;
    const first = await raw(withAsset.berth.url, 'GET', path);
    const etag = first.header('ETag') ?? '';
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    const again = await raw(withAsset.berth.url, 'GET', path, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.header('ETag')).toBe(etag);
    const weak = await raw(withAsset.berth.url, 'GET', path, { headers: { 'If-None-Match': `"other", W/${etag}` } });
    expect(weak.status).toBe(304);
    const stale = await raw(withAsset.berth.url, 'GET', path, { headers: { 'If-None-Match': '"not-it"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(first.body)).toBe(true);
    // The page has no validator to match: `*` still gets it whole.
    expect((await raw(berth.url, 'GET', '/ui/', { headers: { 'If-None-Match': '*' } })).status).toBe(200);
  });

  it('gzips for clients that take it, byte for byte the same file', async () => {
    for (const [url, path] of [[berth.url, '/ui/'], [withAsset.berth.url, `/ui/${withAsset.file}`]] as const) {
      const plain = await raw(url, 'GET', path);
      const zipped = await raw(url, 'GET', path, { headers: { 'Accept-Encoding': 'gzip, br' } });
      expect(zipped.header('Content-Encoding'), path).toBe('gzip');
      expect(zipped.header('Vary')).toMatch(/^Accept-Encoding\b/);
      expect(zipped.body.length).toBeLessThan(plain.body.length);
      expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
      expect(plain.header('Content-Encoding')).toBeUndefined();
    }
  });

  it('answers HEAD like GET without a body; other methods 405; unknown files 404, as OCI JSON', async () => {
    const head = await raw(berth.url, 'HEAD', '/ui/');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    const post = await raw(berth.url, 'POST', '/ui/');
    expect(post.status).toBe(405);
    expect(errorCode(post)).toBe('UNSUPPORTED');
    expect(post.header('Allow')).toBe('GET, HEAD');
    // Files are looked up by name among those built, never on disk: no path reaches outside them.
    for (const path of ['/ui/nope.js', '/ui/assets/', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/assets/../index.html', '/ui/r/', '/ui/admin/x', '/ui/repositories']) {
      const res = await raw(berth.url, 'GET', path);
      expect(res.status, path).toBe(404);
      expect(errorCode(res), path).toBe('UNSUPPORTED');
    }
  });
});

describe('web UI switched off, not built, or under a prefix', () => {
  let ui: TestUi;
  const servers: TestBerth[] = [];
  beforeAll(async () => {
    ui = await buildTestUi();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await ui.close();
  });
  const start = async (o: Parameters<typeof startBerth>[0]): Promise<TestBerth> => {
    const b = await startBerth(o);
    servers.push(b);
    return b;
  };

  it('has no /ui/ when disabled (ui.enabled: false, or REGISTRY_UI_ENABLED=false)', async () => {
    const off = await start({});
    const res = await raw(off.url, 'GET', '/ui/');
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('UNSUPPORTED');
    expect(res.header('Content-Security-Policy')).toBeUndefined();
    const dir = await mkdtemp(join(tmpdir(), 'berth-ui-config-'));
    const file = async (text: string): Promise<string> => {
      const path = join(dir, `config-${text.length}.yml`);
      await writeFile(path, `version: 0.1\nstorage:\n  inmemory: {}\n${text}`);
      return path;
    };
    const quiet = { warn: (): void => undefined };
    try {
      expect((await loadConfig({ env: {}, ...quiet })).ui.enabled).toBe(true);
      expect((await loadConfig({ file: await file('ui:\n  enabled: false\n'), env: {}, ...quiet })).ui.enabled).toBe(false);
      expect((await loadConfig({ env: { REGISTRY_UI_ENABLED: 'false' }, ...quiet })).ui.enabled).toBe(false);
      await expect(loadConfig({ file: await file('ui:\n  enable: false\n'), env: {}, ...quiet })).rejects.toThrow(/ui\.enable\b.*unknown key/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says how to build it when the files are missing (503)', async () => {
    const unbuilt = await start({ ui: { assets: undefined } });
    const res = await raw(unbuilt.url, 'GET', '/ui/');
    expect(res.status).toBe(503);
    expect(errorCode(res)).toBe('UNAVAILABLE');
    expect(res.body.toString()).toContain('npm run build:ui');
  });

  it('lives under http.prefix', async () => {
    const prefixed = await start({ prefix: '/registry', ui: { assets: ui.assets } });
    const res = await raw(prefixed.url, 'GET', '/registry/ui/');
    expect(res.status).toBe(200);
    expect(res.header('Content-Type')).toBe('text/html; charset=utf-8');
    expect((await raw(prefixed.url, 'GET', '/registry/ui')).header('Location')).toBe('/registry/ui/');
    expect((await raw(prefixed.url, 'GET', '/ui/')).status).toBe(404);
  });
});
