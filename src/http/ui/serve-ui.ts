/**
 * `/ui/` on the API listener (under `http.prefix` when one is set): the web UI's page at each of its
 * views' paths (`/ui/`, `/ui/r/<name>`, `/ui/m/<name>@<ref>`, `/ui/admin`, `/ui/login`; first-view.ts),
 * carrying the first view's data for this caller, and any other built file (assets.ts) by its name. It
 * sits before the health gate, so the page still loads, and says what is wrong, while storage fails.
 * The page differs per request and per caller: `Cache-Control: no-store` (no cache, shared or the
 * browser's, keeps one caller's page for another). Built files are the same for everyone. Every answer carries a strict Content-Security-Policy: requests only to this origin;
 * scripts and styles only from this origin or the page's own inline ones named by their SHA-256 (no
 * 'unsafe-inline', so an injected script or style runs nowhere); no eval, no framing. The page talks to
 * the same API as any client (/v2/, /berth/v1/, /auth/token) and holds no power of its own.
 */
import { gzipSync } from 'node:zlib';
import type Koa from 'koa';
import { NoRouteError, RegistryError, unsupported } from '../../errors.js';
import type { Ctx, RequestState } from '../context.js';
import { queryValue } from '../params.js';
import type { InlineHashes, UiAsset, UiAssets } from './assets.js';
import type { Boot } from './boot.js';
import { type FirstViewOptions, bootFor, routeOf } from './first-view.js';

/**
 * The policy of every `/ui/` answer, allowing the inline scripts and styles `inline` names by hash.
 * `data:` images: the empty favicon.
 */
export function uiContentSecurityPolicy(inline: InlineHashes = { scripts: [], styles: [] }): string {
  return [
    "default-src 'none'",
    ["script-src 'self'", ...inline.scripts].join(' '),
    ["style-src 'self'", ...inline.styles].join(' '),
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export interface UiOptions {
  /** The built files; undefined when the UI was not built (every page then says how to build it). */
  readonly assets: UiAssets | undefined;
  /** `http.prefix` ('' for the root). */
  readonly prefix: string;
  /** How the first view's data is computed (the API's deps and access); first-view.ts. */
  readonly firstView: FirstViewOptions;
}

/** The element of index.html the boot document goes in (web/index.html); empty as built. */
export const BOOT_ELEMENT = '<script type="application/json" id="berth-boot"></script>';

/**
 * How long the page waits for its first view's data: past this it goes without (the script asks the
 * API itself), so a slow or failing storage never holds the page back.
 */
const FIRST_VIEW_BUDGET_MS = 500;

/** Serves `<prefix>/ui/…`; any other path goes on to the next middleware. */
export function serveUi(opts: UiOptions): Koa.Middleware<RequestState> {
  const base = `${opts.prefix}/ui`;
  const policy = uiContentSecurityPolicy(opts.assets?.inline);
  const page = pageTemplate(opts.assets?.get('index.html'));
  return async (ctx, next) => {
    if (ctx.path !== base && !ctx.path.startsWith(`${base}/`)) return next();
    ctx.state.route = 'ui';
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      throw unsupported(`method ${ctx.method} not allowed on the web UI`);
    }
    setSecurityHeaders(ctx, policy);
    if (ctx.path === base) {
      ctx.status = 301;
      ctx.set('Location', `${base}/`);
      return;
    }
    if (opts.assets === undefined) {
      throw new RegistryError('UNAVAILABLE', 'the web UI is not built: run `npm run build:ui` (npm ci and npm run build do it)');
    }
    const file = ctx.path.slice(base.length + 1);
    const route = routeOf(file, queryValue(ctx, 'q'));
    if (route !== undefined && page !== undefined) {
      const boot = await withinBudget(bootFor(ctx, route, opts.firstView), FIRST_VIEW_BUDGET_MS);
      sendPage(ctx, page, boot ?? { base: `${base}/`, answers: {} });
      return;
    }
    const asset = opts.assets.get(route === undefined ? file : 'index.html');
    if (asset === undefined) throw new NoRouteError('UNSUPPORTED', 'page not found: no such file of the web UI', { path: ctx.path });
    send(ctx, asset);
  };
}

function setSecurityHeaders(ctx: Ctx, policy: string): void {
  ctx.set('Content-Security-Policy', policy);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
}

/** index.html cut where the boot document goes. */
interface PageTemplate {
  readonly head: string;
  readonly tail: string;
}

function pageTemplate(index: UiAsset | undefined): PageTemplate | undefined {
  const html = index?.body.toString('utf8');
  const at = html?.indexOf(BOOT_ELEMENT) ?? -1;
  if (html === undefined || at < 0) return undefined; // a build without the element: the page as built, no data
  const split = at + BOOT_ELEMENT.length - '</script>'.length;
  return { head: html.slice(0, split), tail: html.slice(split) };
}

/** `p`'s value, or undefined when it takes longer than `ms` (it goes on, unobserved). */
async function withinBudget<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The page with `boot` in it, never cached: it holds this caller's data. The JSON is made safe inside
 * `<script>`: `<`, `>` and `&` (and the two JavaScript line separators) are written as `\u` escapes,
 * so no registry content can close the element or open a comment.
 */
function sendPage(ctx: Ctx, page: PageTemplate, boot: Boot): void {
  const json = JSON.stringify(boot).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const body = Buffer.from(`${page.head}${json}${page.tail}`, 'utf8');
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Vary', 'Accept-Encoding, Authorization');
  ctx.status = 200;
  ctx.type = 'text/html; charset=utf-8';
  if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = gzipSync(body, { level: 6 });
  } else {
    ctx.body = body;
  }
}

/** 200 with the file (gzip when the client takes it), or 304 when the client's copy is current. */
function send(ctx: Ctx, asset: UiAsset): void {
  ctx.set('ETag', asset.etag);
  ctx.set('Cache-Control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  ctx.set('Vary', 'Accept-Encoding');
  if (matchesEtag(ctx.get('If-None-Match'), asset.etag)) {
    ctx.status = 304;
    return;
  }
  const gzip = asset.gzip !== undefined && ctx.acceptsEncodings('gzip', 'identity') === 'gzip' ? asset.gzip : undefined;
  if (gzip !== undefined) ctx.set('Content-Encoding', 'gzip');
  ctx.status = 200;
  ctx.type = asset.type;
  ctx.body = gzip ?? asset.body;
}

/** RFC 9110 If-None-Match: `*`, or a list of tags compared weakly. */
function matchesEtag(header: string, etag: string): boolean {
  if (header === '') return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}
