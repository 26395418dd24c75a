/**
 * The debug listener (registry:2's `http.debug.addr`): a second, small server for operators, apart from
 * the public port. Berth serves there:
 *
 *   POST /debug/gc     runs one garbage collection now and answers its report as JSON
 *                      (`{marked, swept, bytesFreed, untaggedRemoved, uploadsPurged, durationMs, dryRun,
 *                      warnings}`); 409 while a collection is already running; 500 when it fails.
 *   GET /metrics       the Prometheus metrics (text format, the registry's content type), when given
 *                      (the path is `http.debug.prometheus.path`)
 *   GET /debug/health  registry:2's health report: `{}` and 200, or each failing check with its error
 *                      and 503
 *   GET /healthz, GET /readyz   the same probes as the API listener
 *
 * The collection, the metrics and the health are injected (cli/ wires them to gc/, metrics/ and
 * health/), so this module knows nothing of storage.
 */
import Koa from 'koa';
import type { HealthState } from '../health/health.js';
import type { Logger } from '../log.js';
import { LIVENESS_PATH, READINESS_PATH, readinessOf } from './server.js';

/** Runs one collection: its report, or `busy` when one is already going. */
export type GcTrigger = () => Promise<{ readonly status: 'done'; readonly report: object } | { readonly status: 'busy' }>;

/** What `GET /metrics` serves (a prom-client Registry fits). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface DebugAppOptions {
  readonly runGc: GcTrigger;
  readonly log: Logger;
  /** Served at `GET <metricsPath>`; without it that path is 404. */
  readonly metrics?: MetricsSource;
  /** Default `/metrics`. */
  readonly metricsPath?: string;
  readonly health?: HealthState;
}

export const DEBUG_GC_PATH = '/debug/gc';
export const METRICS_PATH = '/metrics';
export const DEBUG_HEALTH_PATH = '/debug/health';

export function createDebugApp(opts: DebugAppOptions): Koa {
  const app = new Koa();
  app.silent = true;
  const metricsPath = opts.metricsPath ?? METRICS_PATH;
  app.use(async (ctx, next) => {
    if (ctx.path === LIVENESS_PATH || ctx.path === READINESS_PATH || ctx.path === DEBUG_HEALTH_PATH) {
      ctx.set('Cache-Control', 'no-cache');
      if (ctx.path === LIVENESS_PATH) {
        ctx.body = { status: 'ok' };
      } else if (ctx.path === READINESS_PATH) {
        const readiness = readinessOf(opts.health);
        ctx.status = readiness.ready ? 200 : 503;
        ctx.body = readiness.body;
      } else {
        const failures = opts.health?.failures() ?? {};
        ctx.status = Object.keys(failures).length === 0 ? 200 : 503;
        ctx.body = failures;
      }
      return;
    }
    await next();
  });
  app.use(async (ctx) => {
    if (ctx.path === metricsPath && opts.metrics) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.status = 405;
        ctx.set('Allow', 'GET, HEAD');
        ctx.body = { error: `use GET ${metricsPath}` };
        return;
      }
      ctx.type = opts.metrics.contentType;
      ctx.body = await opts.metrics.metrics();
      return;
    }
    if (ctx.path !== DEBUG_GC_PATH) {
      ctx.status = 404;
      ctx.body = { error: 'not found' };
      return;
    }
    if (ctx.method !== 'POST') {
      ctx.status = 405;
      ctx.set('Allow', 'POST');
      ctx.body = { error: `use POST ${DEBUG_GC_PATH}` };
      return;
    }
    try {
      const outcome = await opts.runGc();
      if (outcome.status === 'busy') {
        ctx.status = 409;
        ctx.body = { error: 'a garbage collection is already running' };
        return;
      }
      ctx.body = outcome.report;
    } catch (err) {
      opts.log.error('garbage collection failed', { err });
      ctx.status = 500;
      ctx.body = { error: `garbage collection failed: ${err instanceof Error ? err.message : String(err)}` };
    }
  });
  return app;
}
