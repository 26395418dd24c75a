/**
 * The debug listener (registry:2's `http.debug.addr`): a second, small server for operators, apart from
 * the public port. Berth serves one endpoint there:
 *
 *   POST /debug/gc   runs one garbage collection now and answers its report as JSON
 *                    (`{marked, swept, bytesFreed, untaggedRemoved, uploadsPurged, durationMs, dryRun,
 *                    warnings}`); 409 while a collection is already running; 500 when it fails.
 *
 * The collection itself is injected (cli/ wires it to gc/), so this module knows nothing of storage.
 */
import Koa from 'koa';
import type { Logger } from '../log.js';

/** Runs one collection: its report, or `busy` when one is already going. */
export type GcTrigger = () => Promise<{ readonly status: 'done'; readonly report: object } | { readonly status: 'busy' }>;

export interface DebugAppOptions {
  readonly runGc: GcTrigger;
  readonly log: Logger;
}

export const DEBUG_GC_PATH = '/debug/gc';

export function createDebugApp(opts: DebugAppOptions): Koa {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx) => {
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
