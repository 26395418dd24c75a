/**
 * How handlers report a registry event (`notifications`): `await notify(ctx, deps, subject)` after
 * the storage call succeeded. Nothing happens when no endpoint is configured. It never throws, never
 * waits for an endpoint, and for pushes, mounts and deletes waits only until the event is on disk
 * (see notifications/notifier.ts).
 *
 * Which handler reports what follows registry:2 (notifications/listener.go and the handlers that use
 * it): manifest GET and HEAD → pull (with the tag when fetched by tag; a 304 is not a pull); manifest
 * PUT → push (with the tag when pushed by tag); blob GET and HEAD → pull; upload commit (PUT, or
 * Berth's monolithic POST) → push; mount → mount (with `fromRepository`); manifest DELETE → delete of
 * the digest (after one per tag it still had, as registry:2), or of the tag when deleted by tag (registry:2
 * v3); blob DELETE → delete.
 */
import { isIP } from 'node:net';
import type { EventSubject, RequestRecord } from '../notifications/event.js';
import type { Reference } from '../storage/reference.js';
import type { Ctx, HandlerDeps } from './context.js';

/** Reports `subject`, done by this request. */
export async function notify(ctx: Ctx, deps: HandlerDeps, subject: EventSubject): Promise<void> {
  const sink = deps.events;
  if (sink === undefined) return;
  await sink.write(subject, {
    request: requestRecord(ctx),
    actor: ctx.state.grant?.subject,
    url: (path) => deps.urlFor(ctx, path),
  });
}

/**
 * Reports the pull of `manifest` from `repository`, asked for by `ref` (with the tag when by tag): what a
 * manifest GET reports, and the web UI when it carries a manifest in its page (ui/first-view.ts).
 */
export function notifyManifestPull(
  ctx: Ctx,
  deps: HandlerDeps,
  repository: string,
  ref: Reference,
  manifest: { readonly digest: string; readonly content: Buffer; readonly mediaType: string },
): Promise<void> {
  return notify(ctx, deps, {
    kind: 'manifest', action: 'pull', repository, digest: manifest.digest, content: manifest.content,
    mediaType: manifest.mediaType, ...('tag' in ref && { tag: ref.tag }),
  });
}

/** registry:2's RequestRecord of this request. */
function requestRecord(ctx: Ctx): RequestRecord {
  return {
    id: ctx.state.requestId,
    addr: remoteAddr(ctx),
    host: ctx.get('Host'),
    method: ctx.method,
    useragent: ctx.get('User-Agent'),
  };
}

/**
 * registry:2's RemoteAddr: the first X-Forwarded-For address, else X-Real-Ip, when it is an IP
 * address; else the connection's `ip:port` (`[v6]:port`).
 */
function remoteAddr(ctx: Ctx): string {
  const forwarded = ctx.get('X-Forwarded-For').split(',')[0]?.trim() ?? '';
  if (isIP(forwarded) !== 0) return forwarded;
  const real = ctx.get('X-Real-Ip').trim();
  if (isIP(real) !== 0) return real;
  const socket = ctx.req.socket;
  const ip = (socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (ip === '') return '';
  return isIP(ip) === 6 ? `[${ip}]:${socket.remotePort ?? 0}` : `${ip}:${socket.remotePort ?? 0}`;
}
