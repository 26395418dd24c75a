/**
 * The debug listener (registry:2's `http.debug.addr`): a second, small server for operators, apart from
 * the public port. Berth serves there:
 *
 *   POST /debug/gc     runs one garbage collection now and answers its report as JSON
 *                      (`{marked, swept, bytesFreed, untaggedRemoved, uploadsPurged, durationMs, dryRun,
 *                      warnings}`); `?dryrun=true` (or `?dryrun`) deletes nothing; any other parameter or
 *                      value is 400; 409 while a collection is already running; 500 when it fails.
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
import type { Context } from 'koa';
import type { HealthState } from '../health/health.js';
import type { Logger } from '../log.js';
import { LIVENESS_PATH, READINESS_PATH, readinessOf } from './middleware/probes.js';

/**
 * Runs one collection: its report, or `busy` when one is already going. `dryRun: true` only reports what
 * it would delete (a configured dry run stays dry whatever is asked).
 */
export type GcTrigger = (o?: { readonly dryRun?: boolean }) => Promise<{ readonly status: 'done'; readonly report: object } | { readonly status: 'busy' }>;

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

type DebugHandler = (ctx: Context) => Promise<void> | void;
/** One endpoint of the debug listener: its handlers by method; `*` takes any method. */
type DebugRoute = Readonly<Record<string, DebugHandler>>;

/** The debug listener's app: a table of path → method → handler; other paths 404, other methods 405. */
export function createDebugApp(opts: DebugAppOptions): Koa {
  const app = new Koa();
  app.silent = true;
  const table = debugRoutes(opts);
  app.use(async (ctx) => {
    const route = table.get(ctx.path);
    if (route === undefined) {
      ctx.status = 404;
      ctx.body = { error: 'not found' };
      return;
    }
    const handler = route[ctx.method] ?? route['*'];
    if (handler === undefined) {
      const allowed = Object.keys(route);
      ctx.status = 405;
      ctx.set('Allow', allowed.join(', '));
      ctx.body = { error: `use ${allowed[0] ?? 'GET'} ${ctx.path}` };
      return;
    }
    await handler(ctx);
  });
  return app;
}

function debugRoutes(opts: DebugAppOptions): ReadonlyMap<string, DebugRoute> {
  const probe = (answer: () => { status: number; body: object }) => (ctx: Context): void => {
    ctx.set('Cache-Control', 'no-cache');
    const { status, body } = answer();
    ctx.status = status;
    ctx.body = body;
  };
  const liveness = probe(() => ({ status: 200, body: { status: 'ok' } }));
  const readiness = probe(() => {
    const r = readinessOf(opts.health);
    return { status: r.ready ? 200 : 503, body: r.body };
  });
  const health = probe(() => {
    const failures = opts.health?.failures() ?? {};
    return { status: Object.keys(failures).length === 0 ? 200 : 503, body: failures };
  });
  // The probes answer any method, as they always have.
  const anyMethod = (h: DebugHandler): DebugRoute => ({ '*': h });
  const table = new Map<string, DebugRoute>([
    [LIVENESS_PATH, anyMethod(liveness)],
    [READINESS_PATH, anyMethod(readiness)],
    [DEBUG_HEALTH_PATH, anyMethod(health)],
    [DEBUG_GC_PATH, { POST: (ctx) => runGc(ctx, opts) }],
  ]);
  const metrics = opts.metrics;
  if (metrics) {
    const serveMetrics = async (ctx: Context): Promise<void> => {
      ctx.type = metrics.contentType;
      ctx.body = await metrics.metrics();
    };
    table.set(opts.metricsPath ?? METRICS_PATH, { GET: serveMetrics, HEAD: serveMetrics });
  }
  return table;
}

/** `dryrun` of `POST /debug/gc`: true for `dryrun`, `dryrun=true` or `=1`, false for `false` or `0`. */
const DRYRUN_VALUES: ReadonlyMap<string, boolean> = new Map([['', true], ['true', true], ['1', true], ['false', false], ['0', false]]);

/** The options of `POST /debug/gc` from its query, or the reason it is refused. */
function gcOptions(query: Context['query']): { dryRun: boolean } | { error: string } {
  const unknown = Object.keys(query).filter((k) => k !== 'dryrun');
  if (unknown.length > 0) return { error: `unknown parameter ${unknown.map((k) => JSON.stringify(k)).join(', ')}; ${DEBUG_GC_PATH} takes only dryrun` };
  const raw = query['dryrun'];
  if (raw === undefined) return { dryRun: false };
  const dryRun = typeof raw === 'string' ? DRYRUN_VALUES.get(raw.toLowerCase()) : undefined;
  return dryRun === undefined ? { error: 'dryrun must be given once, as true or false' } : { dryRun };
}

/** `POST /debug/gc[?dryrun=true]`: one collection now; its report, 400 for a bad query, 409 while one runs, 500 when it fails. */
async function runGc(ctx: Context, opts: DebugAppOptions): Promise<void> {
  const options = gcOptions(ctx.query);
  if ('error' in options) {
    ctx.status = 400;
    ctx.body = { error: options.error };
    return;
  }
  try {
    const outcome = await opts.runGc(options);
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
}
