/**
 * `/ui/` on the API listener (under `http.prefix` when one is set): the web UI's static files
 * (assets.ts). It sits before the health gate, so the page still loads, and says what is wrong, while
 * storage fails. Every answer carries a strict Content-Security-Policy: requests only to this origin;
 * scripts and styles only from this origin or the page's own inline ones named by their SHA-256 (no
 * 'unsafe-inline', so an injected script or style runs nowhere); no eval, no framing. The page talks to
 * the same API as any client (/v2/, /berth/v1/, /auth/token) and holds no power of its own.
 */
import type Koa from 'koa';
import { NoRouteError, RegistryError, unsupported } from '../../errors.js';
import type { Ctx, RequestState } from '../context.js';
import type { InlineHashes, UiAsset, UiAssets } from './assets.js';

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
}

/** Serves `<prefix>/ui/…`; any other path goes on to the next middleware. */
export function serveUi(opts: UiOptions): Koa.Middleware<RequestState> {
  const base = `${opts.prefix}/ui`;
  const policy = uiContentSecurityPolicy(opts.assets?.inline);
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
    const asset = opts.assets.get(file === '' ? 'index.html' : file);
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
