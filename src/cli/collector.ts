/**
 * The online collector: garbage collection inside the running server, from `storage.maintenance.gc`.
 * Scheduled runs every `interval` when enabled; on demand through `runNow` (`POST /debug/gc`) either
 * way. Every run uses the configured grace period, deleteuntagged and dryrun, and also purges upload
 * sessions older than `uploadpurging.age` when upload purging is enabled.
 */
import type { Config } from '../config/schema.js';
import { GcBusyError, type GcRunOptions, collectGarbage } from '../gc/run.js';
import type { GcReport } from '../gc/report.js';
import type { RetentionOptions } from '../gc/retention/retention.js';
import type { GcTrigger } from '../http/debug.js';
import type { Logger } from '../log.js';
import type { Maintenance } from '../storage/registry.js';
import type { ClusterLock } from '../coordination/cluster-lock.js';

export interface Collector {
  /** Runs one collection now: its report, or `busy` when one is already going. */
  readonly runNow: GcTrigger;
  /** Stops the schedule and any run in progress, resolving once that run has let go of storage (what it deleted stays deleted). */
  stop(): Promise<void>;
}

export interface CollectorOptions {
  readonly registry: Maintenance;
  readonly config: Config;
  readonly log: Logger;
  /** Told each run's report (and a failed run's error): `serve` records it in the gc metrics. */
  readonly report?: (report: GcReport, error?: unknown) => void;
  /**
   * Replicas (`redis` configured): a run first takes this cluster-wide lock (busy when another replica
   * collects; the run stops if the lock is lost), and reads its start time from the shared link gate's
   * clock, the clock its link times are recorded with.
   */
  readonly cluster?: { readonly lock: ClusterLock; readonly now: () => Promise<number> };
  /** Retention policies, applied before each run's mark (cli/retention.ts); a dry run applies them dry. */
  readonly retention?: RetentionOptions | undefined;
  /** The mirror's eviction, run before each run's mark after retention (cli/mirror.ts); a dry run evicts nothing. */
  readonly evict?: GcRunOptions['evict'];
  /**
   * False: no scheduled runs here even when `gc.enabled` (`http.workers`: only the leader worker keeps
   * the schedule; every worker still runs one on demand). Default true.
   */
  readonly scheduled?: boolean;
}

export function startCollector(opts: CollectorOptions): Collector {
  const gc = opts.config.storage.maintenance.gc;
  const purging = opts.config.storage.maintenance.uploadpurging;
  const log = opts.log.child({ component: 'gc' });
  const stopping = new AbortController();
  let current: Promise<GcReport> | undefined;
  const collect = (signal: AbortSignal, dryRun: boolean): Promise<GcReport> =>
    collectGarbage(opts.registry, {
      graceMs: gc.graceperiodMs,
      deleteUntagged: gc.deleteuntagged,
      dryRun,
      ...(purging.enabled && { purgeUploadsOlderThanMs: purging.ageMs }),
      log,
      signal,
      ...(opts.report && { report: opts.report }),
      ...(opts.cluster && { startedAt: opts.cluster.now }),
      ...(opts.retention && { retention: { ...opts.retention, dryRun: opts.retention.dryRun || dryRun } }),
      ...(opts.evict && { evict: opts.evict }),
    });
  const clustered = async (cluster: NonNullable<CollectorOptions['cluster']>, dryRun: boolean): Promise<GcReport> => {
    const lease = await cluster.lock.tryAcquire();
    if (!lease) throw new GcBusyError(); // another replica is collecting
    try {
      return await collect(AbortSignal.any([stopping.signal, lease.signal]), dryRun);
    } finally {
      await lease.release();
    }
  };
  // `current` is the run in progress, if any. A request while one runs is answered busy and never
  // becomes `current`: stop() must wait for the run that holds storage, not for the refusal.
  const run = (dryRun: boolean): Promise<GcReport> => {
    if (current) return Promise.reject(new GcBusyError());
    const started = opts.cluster ? clustered(opts.cluster, dryRun) : collect(stopping.signal, dryRun);
    current = started;
    const settled = (): void => {
      if (current === started) current = undefined;
    };
    started.then(settled, settled);
    return started;
  };
  // A dry run asked for (`POST /debug/gc?dryrun=true`) or configured is dry; nothing asks for a real one.
  const runNow: GcTrigger = async (o = {}) => {
    try {
      return { status: 'done', report: await run(o.dryRun === true || gc.dryrun) };
    } catch (err) {
      if (err instanceof GcBusyError) return { status: 'busy' };
      throw err;
    }
  };
  const scheduled = (): void => {
    runNow()
      .then((outcome) => {
        if (outcome.status === 'busy') log.info(`scheduled garbage collection skipped: one is already running${opts.cluster ? ' (here or on another replica)' : ''}`);
      })
      .catch((err: unknown) => {
        if (!stopping.signal.aborted) log.error('garbage collection failed', { err });
      });
  };
  const unschedule = gc.enabled && opts.scheduled !== false ? every(gc.intervalMs, scheduled) : () => undefined;
  return {
    runNow,
    async stop() {
      unschedule();
      stopping.abort(new Error('the server is stopping'));
      await current?.catch(() => undefined); // a run in progress stops at its next check; wait for it
    },
  };
}

/** Node's timers hold at most 2^31-1 ms (about 24.8 days); longer intervals are waited out in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fn` every `ms` (first after `ms`), without keeping the process alive; answers a stop function. */
function every(ms: number, fn: () => void): () => void {
  let due = Date.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(tick, Math.min(MAX_TIMER_MS, Math.max(0, due - Date.now())));
    timer.unref();
  };
  const tick = (): void => {
    if (Date.now() >= due) {
      due = Date.now() + ms;
      fn();
    }
    arm();
  };
  arm();
  return () => clearTimeout(timer);
}
