/**
 * The externally visible base URL of a request (`https://registry.example.com`), for Location headers
 * and the auth realm when `http.host` is unset: the first proxy's `Forwarded` header (RFC 7239) if it
 * names a proto or host, else `X-Forwarded-Proto` / `X-Forwarded-Host`, else the connection itself.
 * Like registry:2, these headers are trusted as sent (put Berth behind the proxy that sets them); values
 * that are not a plain scheme or host[:port] are ignored, so they can never inject text into a URL.
 */
import type { Ctx } from './context.js';

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;
const PROTO = /^https?$/i;

export function requestBaseUrl(ctx: Ctx): string {
  const forwarded = firstForwarded(ctx.get('Forwarded'));
  const proto = pick(forwarded.proto, PROTO) ?? pick(firstValue(ctx.get('X-Forwarded-Proto')), PROTO) ?? ctx.protocol;
  const host = pick(forwarded.host, HOST) ?? pick(firstValue(ctx.get('X-Forwarded-Host')), HOST) ?? ctx.host;
  return `${proto.toLowerCase()}://${host}`;
}

function pick(value: string | undefined, valid: RegExp): string | undefined {
  return value !== undefined && valid.test(value) ? value : undefined;
}

function firstValue(header: string): string | undefined {
  const first = header.split(',')[0]?.trim();
  return first === '' ? undefined : first;
}

/** The parameters of the first element of a `Forwarded` header: `for=1.2.3.4;proto=https;host=x`. */
function firstForwarded(header: string): { proto?: string; host?: string } {
  const element = header.split(',')[0] ?? '';
  const out: { proto?: string; host?: string } = {};
  for (const pair of element.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim().toLowerCase();
    const value = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    if (name === 'proto') out.proto = value;
    else if (name === 'host') out.host = value;
  }
  return out;
}
