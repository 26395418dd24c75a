/**
 * Serving the web UI (src/http/ui/): `/ui/` on the API listener with the files the real build makes,
 * each with its type (mime-types), a strong ETag answered by 304, a year of immutable caching for the
 * hashed names and `no-cache` for index.html, gzip when asked, and the strict Content-Security-Policy
 * (no inline script anywhere in the page). Off (`ui.enabled: false`): no `/ui/` at all. Not built: 503
 * saying how to build it. Under `http.prefix`, at `<prefix>/ui/`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/parse.js';
import { UI_CONTENT_SECURITY_POLICY } from '../src/http/ui/serve-ui.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { errorCode, raw } from './helpers/oci.js';
import { type TestUi, buildTestUi } from './helpers/ui.js';

describe('web UI static files', () => {
  let ui: TestUi;
  let berth: TestBerth;
  let script = '';
  let style = '';

  beforeAll(async () => {
    ui = await buildTestUi();
    berth = await startBerth({ ui: { assets: ui.assets } });
    script = ui.files.find((f) => f.endsWith('.js')) ?? '';
    style = ui.files.find((f) => f.endsWith('.css')) ?? '';
  });
  afterAll(async () => {
    await berth.close();
    await ui.close();
  });

  it('redirects /ui to /ui/ and serves index.html there, revalidated every time', async () => {
    const bare = await raw(berth.url, 'GET', '/ui');
    expect(bare.status).toBe(301);
    expect(bare.header('Location')).toBe('/ui/');
    const res = await raw(berth.url, 'GET', '/ui/');
    expect(res.status).toBe(200);
    expect(res.header('Content-Type')).toBe('text/html; charset=utf-8');
    expect(res.header('Cache-Control')).toBe('no-cache');
    expect(res.header('ETag')).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    const html = res.body.toString();
    expect(html).toContain(`src="${script}"`);
    expect(html).toContain(`href="${style}"`);
  });

  it('sends a strict Content-Security-Policy, and the page has no inline script or style', async () => {
    const res = await raw(berth.url, 'GET', '/ui/');
    const csp = res.header('Content-Security-Policy') ?? '';
    expect(csp).toBe(UI_CONTENT_SECURITY_POLICY);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.header('X-Content-Type-Options')).toBe('nosniff');
    const html = res.body.toString();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBe(1);
    for (const s of scripts) {
      expect(s[1]).toMatch(/\bsrc="/);
      expect(s[2]?.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b|\sstyle="|\son[a-z]+="/i);
    // The bundle itself never evaluates strings.
    const js = (await raw(berth.url, 'GET', `/ui/${script}`)).body.toString();
    expect(js).not.toMatch(/\beval\(|new Function\(/);
  });

  it('serves hashed assets with their types, immutable for a year', async () => {
    for (const [file, type] of [[script, 'text/javascript; charset=utf-8'], [style, 'text/css; charset=utf-8']] as const) {
      expect(file).toMatch(/^assets\/[a-z]+-[A-Z0-9]{8}\.(js|css)$/);
      const res = await raw(berth.url, 'GET', `/ui/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.header('Content-Type')).toBe(type);
      expect(res.header('Cache-Control')).toBe('public, max-age=31536000, immutable');
      expect(res.header('Content-Security-Policy')).toBe(UI_CONTENT_SECURITY_POLICY);
      expect(Number(res.header('Content-Length'))).toBe(res.body.length);
    }
  });

  it('answers a matching If-None-Match with 304 and no body, and a stale one with the file', async () => {
    const first = await raw(berth.url, 'GET', `/ui/${script}`);
    const etag = first.header('ETag') ?? '';
    const again = await raw(berth.url, 'GET', `/ui/${script}`, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.header('ETag')).toBe(etag);
    const weak = await raw(berth.url, 'GET', `/ui/${script}`, { headers: { 'If-None-Match': `"other", W/${etag}` } });
    expect(weak.status).toBe(304);
    const stale = await raw(berth.url, 'GET', `/ui/${script}`, { headers: { 'If-None-Match': '"not-it"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(first.body)).toBe(true);
  });

  it('gzips for clients that take it, byte for byte the same file', async () => {
    const plain = await raw(berth.url, 'GET', `/ui/${script}`);
    const zipped = await raw(berth.url, 'GET', `/ui/${script}`, { headers: { 'Accept-Encoding': 'gzip, br' } });
    expect(zipped.header('Content-Encoding')).toBe('gzip');
    expect(zipped.header('Vary')).toBe('Accept-Encoding');
    expect(zipped.body.length).toBeLessThan(plain.body.length);
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    expect(plain.header('Content-Encoding')).toBeUndefined();
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
    for (const path of ['/ui/nope.js', '/ui/assets/', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/assets/../index.html']) {
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
