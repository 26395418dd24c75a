/**
 * One garbage collection run: retention and the mirror's eviction (when configured), then mark
 * (mark.ts), remove untagged manifests and sweep blobs (sweep.ts),
 * purge stale uploads when asked, then tell the log and the metrics seam. One run at a time per process:
 * a second call while one is going rejects with GcBusyError.
 *
 * The protocol that lets this run while the registry serves (link-gate.ts, sweep.ts): every blob
 * deletion happens inside `linkGate.sweep(digest)`, and is skipped when the gate has seen the digest
 * linked since `runStart`; every operation that links a blob into a repository runs inside
 * `linkGate.link`. A grace period (`graceMs`) additionally spares blobs and revisions written or linked
 * recently; offline runs use 0, as registry:2 does. At the end the gate forgets link times older than
 * `runStart - graceMs`, which no later run can need.
 */
import type { Inventory } from '../storage/maintenance/inventory.js';
import type { Maintenance } from '../storage/registry.js';
import { markAll } from './mark.js';
import { leftoversLookedFor, removeLeftovers } from './leftovers.js';
import { type EmitEvent, type GcEvent, type GcReport, type Warnings, createWarnings, describeReport } from './report.js';
import { removeLayerLinks, removeUntagged, sweepBlobs } from './sweep.js';
import { type RetentionOptions, type RetentionReport, applyRetention } from './retention/retention.js';

/** The logger a run writes to (Berth's Logger fits). */
export interface GcLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface GcRunOptions {
  /** Blobs and revisions written or linked more recently than this are kept. 0: no age check. */
  readonly graceMs: number;
  /** Keep only manifests reachable from tags (and their children and referrers). */
  readonly deleteUntagged: boolean;
  /** Report what would be removed; remove nothing. */
  readonly dryRun: boolean;
  /**
   * Crash leftovers (temporary files, unfinished tags: leftovers.ts) younger than this are kept whatever
   * the grace period, as they may be writes in progress: a temporary file lives while a link or small
   * file is written, an unfinished tag between a tag's two link writes. Default 60 s. Only a run that
   * knows no server is writing (the offline command holding the root) passes 0.
   */
  readonly leftoverMinAgeMs?: number;
  /** Also remove upload sessions started longer ago than this (online runs); undefined: leave uploads. */
  readonly purgeUploadsOlderThanMs?: number;
  /** Retention policies to apply before the mark (retention/retention.ts); undefined: none. */
  readonly retention?: RetentionOptions | undefined;
  /**
   * Eviction of the pull-through cache (cli/mirror.ts), run before the mark after retention: it removes
   * the manifests of cached images past their ttl or over the budget, so that this run's mark finds
   * what only they named unreachable and its sweep frees it. Answers how many images it removed (in a
   * dry run: would remove, removing nothing). Undefined: no mirror.
   */
  readonly evict?: ((o: { readonly dryRun: boolean }) => Promise<number>) | undefined;
  /**
   * Reads what the mark and the sweep need ahead of them (the offline command on a filesystem root
   * reads the tree with worker threads: storage/maintenance/survey.ts) and answers an inventory that
   * serves those reads; the run reads through it. Undefined: they are read as the run goes.
   */
  readonly readAhead?: ((inv: Inventory, o: ReadAheadOptions) => Promise<Inventory>) | undefined;
  /** The clock, in ms since the epoch; must agree with the link gate's clock. Default Date.now. */
  readonly now?: () => number;
  /**
   * Reads the run's start time from the link gate's own clock, before the mark begins (a gate shared
   * by replicas keeps its clock in Redis). Default: `now()`.
   */
  readonly startedAt?: () => Promise<number>;
  readonly log?: GcLog;
  /** Told each event as it happens (the offline command prints them). */
  readonly onEvent?: EmitEvent;
  /** Told every finished run's report, and the error of a failed one (`serve` records it in the gc metrics). */
  readonly report?: (report: GcReport, error?: unknown) => void;
  readonly signal?: AbortSignal;
}

/** What a read ahead is to read besides the mark's and the sweep's reads. */
export interface ReadAheadOptions {
  /** Each repository's tags (the mark reads them). */
  readonly deleteUntagged: boolean;
  /** The whole tree for crash leftovers (the run will look through it: leftovers.ts). */
  readonly leftovers: boolean;
  readonly signal?: AbortSignal;
}

/** How old a crash leftover must be before a run that may race writes removes it (GcRunOptions.leftoverMinAgeMs). */
export const LEFTOVER_MIN_AGE_MS = 60_000;

/** A run was asked for while another one was going. */
export class GcBusyError extends Error {
  readonly code = 'GC_BUSY';
  constructor() {
    super('a garbage collection is already running');
    this.name = 'GcBusyError';
  }
}

let running = false;

/** True while a run is going in this process. */
export function isCollecting(): boolean {
  return running;
}

/**
 * Runs one collection over `registry`. @throws GcBusyError when a run is already going; storage
 * failures (after which nothing more is deleted; what was deleted was unreachable)
 */
export async function collectGarbage(registry: Maintenance, opts: GcRunOptions): Promise<GcReport> {
  if (running) throw new GcBusyError();
  running = true;
  const now = opts.now ?? Date.now;
  const began = now();
  let runStart = began;
  try {
    if (opts.startedAt) runStart = await opts.startedAt();
  } catch (err) {
    running = false;
    throw err;
  }
  const progress: Progress = {
    marked: 0, swept: 0, bytesFreed: 0, keptYoung: 0, layerLinksRemoved: 0, leftoversRemoved: 0, untaggedRemoved: 0, uploadsPurged: 0,
  };
  const emit: EmitEvent = (e: GcEvent) => opts.onEvent?.(e);
  const warnings = createWarnings((e) => {
    emit(e);
    if (e.type === 'warning') opts.log?.warn(`garbage collection: ${e.message}`);
  });
  let retention: RetentionReport | undefined;
  let evicted: number | undefined;
  const finish = (): GcReport => ({
    ...progress, durationMs: now() - began, dryRun: opts.dryRun, warnings: warnings.list(), ...(retention && { retention }),
    ...(evicted !== undefined && { evicted }),
  });
  try {
    if (opts.retention) retention = await retain(registry, opts, opts.retention, warnings);
    if (opts.evict) evicted = await opts.evict({ dryRun: opts.dryRun });
    await collect(registry, opts, { runStart, progress, emit, warnings });
    const report = finish();
    const { retention: retained, ...counts } = report;
    // Each retention decision was logged as it happened: the summary carries only its counts.
    const retentionCounts = retained && { tagsDeleted: retained.tagsDeleted, manifestsDeleted: retained.manifestsDeleted, skipped: retained.skipped };
    opts.log?.info(`garbage collection done: ${describeReport(report, opts.graceMs)}`, {
      ...counts, warnings: report.warnings.length, ...(retentionCounts && { retention: retentionCounts }),
    });
    opts.report?.(report);
    return report;
  } catch (err) {
    opts.report?.(finish(), err);
    throw err;
  } finally {
    registry.linkGate.forgetBefore(runStart - opts.graceMs);
    running = false;
  }
}

type Progress = { -readonly [K in 'marked' | 'swept' | 'bytesFreed' | 'keptYoung' | 'layerLinksRemoved' | 'leftoversRemoved' | 'untaggedRemoved' | 'uploadsPurged']: number };

interface RunContext {
  readonly runStart: number;
  readonly progress: Progress;
  readonly emit: EmitEvent;
  readonly warnings: Warnings;
}

/** Applies retention before the mark: what it removes is unreachable for the mark that follows. */
async function retain(registry: Maintenance, opts: GcRunOptions, retention: RetentionOptions, warnings: Warnings): Promise<RetentionReport> {
  return applyRetention(registry, retention, {
    now: (opts.now ?? Date.now)(),
    signal: opts.signal,
    warn: (m) => warnings.add(m),
    log: (d, dry) => opts.log?.info(`retention: ${dry ? 'would delete' : 'deleted'} ${d.kind}`, { ...d }),
  });
}

async function collect(registry: Maintenance, opts: GcRunOptions, run: RunContext): Promise<void> {
  let inv = registry.inventory;
  if (opts.readAhead) {
    const signal = opts.signal ? { signal: opts.signal } : {};
    inv = await opts.readAhead(inv, { deleteUntagged: opts.deleteUntagged, leftovers: await leftoversLookedFor(inv, signal), ...signal });
  }
  const sweepOptions = {
    deleteUntagged: opts.deleteUntagged,
    youngAfter: opts.graceMs > 0 ? run.runStart - opts.graceMs : undefined,
    emit: run.emit,
    warnings: run.warnings,
    gate: registry.linkGate,
    runStart: run.runStart,
    dryRun: opts.dryRun,
    ...(opts.signal && { signal: opts.signal }),
  };
  const state = await markAll(inv, sweepOptions);
  run.progress.untaggedRemoved = await removeUntagged(inv, state.untagged, state, sweepOptions);
  run.progress.marked = state.marked.size;
  const swept = await sweepBlobs(inv, state, sweepOptions, state.untagged.length);
  run.progress.swept = swept.swept;
  run.progress.bytesFreed = swept.bytesFreed;
  run.progress.keptYoung = swept.keptYoung;
  run.progress.layerLinksRemoved = await removeLayerLinks(inv, state.looseLayers, swept.deleted, sweepOptions);
  const leftoverAge = Math.max(opts.graceMs, opts.leftoverMinAgeMs ?? LEFTOVER_MIN_AGE_MS);
  const leftovers = await removeLeftovers(inv, state.repositories, {
    ...sweepOptions,
    youngAfter: leftoverAge > 0 ? run.runStart - leftoverAge : undefined,
  });
  run.progress.leftoversRemoved = leftovers.files + leftovers.tags;
  if (opts.purgeUploadsOlderThanMs !== undefined) {
    const olderThan = new Date((opts.now ?? Date.now)() - opts.purgeUploadsOlderThanMs);
    const purged = await registry.purgeUploads({ olderThan, dryRun: opts.dryRun }, opts.signal ? { signal: opts.signal } : {});
    run.progress.uploadsPurged = purged.purged.length;
  }
}
