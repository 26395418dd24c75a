/**
 * registry:2's access log: one line per request.
 */
import type { Logger } from '../../log.js';
import type { Ctx } from '../context.js';

/** Writes the access line of a request that got its answer. */
export function logAccess(log: Logger, ctx: Ctx): void {
  // Probes come every few seconds from a kubelet or a HEALTHCHECK: only at debug level.
  const level = ctx.state.route === 'probe' ? 'debug' : 'info';
  log[level]('request', {
    requestId: ctx.state.requestId,
    method: ctx.method,
    path: ctx.path,
    route: ctx.state.route,
    status: ctx.status,
    remote: ctx.ip,
    userAgent: ctx.get('User-Agent'),
    ...(ctx.state.grant?.subject !== undefined && { user: ctx.state.grant.subject }),
  });
}
