/**
 * The Kubernetes-style probes and the health gate, on the API listener (and, through `readinessOf`, on
 * the debug listener).
 */
import type Koa from 'koa';
import { RegistryError } from '../../errors.js';
import type { HealthState } from '../../health/health.js';
import type { RequestState } from '../context.js';

/** Paths of the Kubernetes-style probes, on the API listener and the debug listener. */
export const LIVENESS_PATH = '/healthz';
export const READINESS_PATH = '/readyz';

/**
 * `/healthz` (alive: 200 while the process answers), `/readyz` (200 once start-up is over, while every
 * check passes and no shutdown has begun, else 503 with the reasons), then the gate: while a check fails, every other request
 * gets 503 UNAVAILABLE naming the failing checks, as registry:2 does.
 */
export function probes(health: HealthState | undefined): Koa.Middleware<RequestState> {
  return async (ctx, next) => {
    if (ctx.path === LIVENESS_PATH || ctx.path === READINESS_PATH) {
      ctx.state.route = 'probe';
      ctx.set('Cache-Control', 'no-cache');
      const readiness = ctx.path === READINESS_PATH ? readinessOf(health) : { ready: true, body: { status: 'ok' } };
      ctx.status = readiness.ready ? 200 : 503;
      ctx.body = readiness.body;
      return;
    }
    const failures = health?.failures() ?? {};
    if (Object.keys(failures).length > 0) throw new RegistryError('UNAVAILABLE', 'service unavailable', failures);
    await next();
  };
}

/** Whether the server should get traffic, and the JSON body that says why. */
export function readinessOf(health: HealthState | undefined): { ready: boolean; body: object } {
  const failures = health?.failures() ?? {};
  const draining = health?.draining ?? false;
  const starting = health?.starting ?? false;
  const ready = !starting && !draining && Object.keys(failures).length === 0;
  return {
    ready,
    body: { status: ready ? 'ok' : 'unavailable', ...(starting && { starting }), ...(draining && { draining }), ...(!ready && { checks: failures }) },
  };
}
