/**
 * The debug listener (registry:2's `http.debug.addr`): a second, small server for operators, apart from
 * the public port. Berth serves one endpoint there:
 *
 *   POST /debug/gc   runs one garbage collection now and answers its report as JSON
 *                    (`{marked, swept, bytesFreed, untaggedRemoved, uploadsPurged, durationMs, dryRun,
 *                    warnings}`); 409 while a collection is already running; 500 when it fails.
 *   GET /metrics     the Prometheus metrics (text format, the registry's content type), when given
 *
 * The collection and the metrics are injected (cli/ wires them to gc/ and metrics/), so this module
 * knows nothing of storage.
 */
import Koa from 'koa';
import type { Logger } from '../log.js';

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
  /** Served at `GET /metrics`; without it that path is 404. */
  readonly metrics?: MetricsSource;
}

export const DEBUG_GC_PATH = '/debug/gc';
export const METRICS_PATH = '/metrics';

export function createDebugApp(opts: DebugAppOptions): Koa {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx) => {
    if (ctx.path === METRICS_PATH && opts.metrics) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.status = 405;
        ctx.set('Allow', 'GET, HEAD');
        ctx.body = { error: `use GET ${METRICS_PATH}` };
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
