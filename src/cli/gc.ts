/**
 * `berth garbage-collect [--dry-run] [--delete-untagged] [config.yml]`: registry:2's offline collector,
 * with its flags (`-d`/`--dry-run`, `-m`/`--delete-untagged`) and its output. On stdout, as registry:2
 * prints it:
 *
 *   <repo>
 *   <repo>: marking manifest <digest>          (registry:2 ends this line with a space; so does Berth)
 *   <repo>: marking blob <digest>
 *   manifest eligible for deletion: <digest>   (--delete-untagged)
 *
 *   <n> blobs marked, <m> blobs and <k> manifests eligible for deletion
 *   blob eligible for deletion: <digest>
 *
 * and in the log (stderr) `Deleting blob: <path>` for each blob removed. A progress line is kept on
 * stderr when it is a terminal. The grace period is 0, as in registry:2: run it on a stopped registry,
 * or use the online collector (`storage.maintenance.gc`), which needs no stop. While a server holds the
 * root it refuses (exit 1) unless `--force` (offline.ts); `--dry-run` deletes nothing and always runs.
 * Unlike registry:2, a manifest that cannot be read is skipped with a warning (its repository's blobs
 * are all kept) instead of stopping the run.
 *
 * With a `proxy` section, the pull-through cache's eviction (expired and over-budget cached images,
 * by the pull times in the index) runs first, as in the online collector, so one run evicts and frees.
 *
 * `--retention` (Berth's) first applies `storage.maintenance.retention` as the online collector does,
 * with the times the index database holds, and prints the table of what it deleted (or, with
 * `--dry-run` or `retention.dryrun`, would delete) and why.
 */
import type { GcEvent } from '../gc/report.js';
import { type GcRunOptions, collectGarbage } from '../gc/run.js';
import type { Config } from '../config/schema.js';
import { defaultSurveyThreads, readAhead } from '../storage/maintenance/survey.js';
import { type CommandIo, type Progress, createProgress, openOffline, processIo } from './offline.js';
import { retentionTable } from '../gc/retention/retention.js';
import { CommandError } from './command-error.js';
import { retentionFor } from './retention.js';

export interface GcCommand {
  readonly dryRun: boolean;
  readonly deleteUntagged: boolean;
  /** Apply the retention policies first. */
  readonly retention: boolean;
  /** Run even while a server holds the root (registry:2's data-loss trap; see root-holder.ts). */
  readonly force: boolean;
  readonly file: string | undefined;
}

/** Parses the arguments after `garbage-collect`; answers an error message for a bad command line. */
export function parseGcArgs(args: readonly string[]): GcCommand | string {
  let dryRun = false;
  let deleteUntagged = false;
  let force = false;
  let retention = false;
  const files: string[] = [];
  for (const arg of args) {
    const long = /^--(dry-run|delete-untagged)(?:=(true|false))?$/.exec(arg);
    if (long) {
      const value = long[2] !== 'false';
      if (long[1] === 'dry-run') dryRun = value;
      else deleteUntagged = value;
    } else if (arg === '--force') {
      force = true;
    } else if (arg === '--retention') {
      retention = true;
    } else if (/^-[dm]+$/.test(arg)) {
      dryRun ||= arg.includes('d');
      deleteUntagged ||= arg.includes('m');
    } else if (arg.startsWith('-')) {
      return `unknown flag ${arg}`;
    } else {
      files.push(arg);
    }
  }
  if (files.length > 1) return 'at most one configuration file';
  return { dryRun, deleteUntagged, retention, force, file: files[0] };
}

/** Runs the collection; answers the exit code. @throws ConfigError and storage failures, for main to print */
export async function garbageCollect(
  cmd: GcCommand,
  env: Record<string, string | undefined>,
  io: CommandIo = processIo(),
): Promise<number> {
  const progress = createProgress(io);
  const writes = cmd.dryRun ? undefined : { command: 'garbage-collect', force: cmd.force };
  const { config, log, registry, timesKnown, close } = await openOffline(cmd.file, env, (line) => progress.err(line), writes, {
    deletes: true,
    times: (config) => cmd.retention || config.proxy !== undefined,
  });
  // The mirror's eviction (`proxy`) runs before the mark, as in the online collector. The mirror's
  // modules (and prom-client with them) are loaded only for a config that has one: a run without
  // starts sooner (issue #19: the offline dry run's start-up is part of what it is measured on).
  const evict = config.proxy === undefined ? undefined : (await import('./mirror.js')).offlineEviction(config, registry, timesKnown, log);
  try {
    const retention = cmd.retention ? retentionFor(config, registry) : undefined;
    if (cmd.retention && !retention) throw new CommandError('--retention: no policies in storage.maintenance.retention.policies');
    const report = await collectGarbage(registry, {
      ...(evict && { evict }),
      ...(retention && { retention: { ...retention, dryRun: retention.dryRun || cmd.dryRun } }),
      graceMs: 0,
      // Holding the root, no server writes beside this run: every leftover is a crash's. With --force
      // one may be, so the collector's floor for writes in progress stays.
      ...(!cmd.force && { leftoverMinAgeMs: 0 }),
      deleteUntagged: cmd.deleteUntagged,
      dryRun: cmd.dryRun,
      readAhead: readAheadFor(config, cmd),
      log,
      onEvent: (e) => printEvent(e, progress, log),
    });
    if (report.retention) progress.out(`\n${retentionTable(report.retention.deletions, report.dryRun || (retention?.dryRun ?? false))}\n`);
  } finally {
    progress.done();
    await close();
  }
  return 0;
}

/**
 * On a filesystem root, the tree is read by worker threads before the mark (survey.ts), unless one
 * core is all there is, or `--force` lets a server write beside the run: a survey is a picture taken
 * before the mark begins, and the mark should read each repository as late as it can then.
 */
function readAheadFor(config: Config, cmd: GcCommand): GcRunOptions['readAhead'] {
  const storage = config.storage;
  if (storage.driver !== 'filesystem' || cmd.force || defaultSurveyThreads() < 2) return undefined;
  return (inv, o) => readAhead(inv, { root: storage.rootdirectory, tags: o.deleteUntagged, leftovers: o.leftovers, ...(o.signal && { signal: o.signal }) });
}

function printEvent(e: GcEvent, progress: Progress, log: { info(m: string): void; warn(m: string): void }): void {
  switch (e.type) {
    case 'repository':
      return progress.out(`${e.repo}\n`);
    case 'marking-manifest':
      return progress.out(`${e.repo}: marking manifest ${e.digest} \n`);
    case 'marking-blob':
      return progress.out(`${e.repo}: marking blob ${e.digest}\n`);
    case 'manifest-eligible':
      return progress.out(`manifest eligible for deletion: ${e.digest}\n`);
    case 'manifest-removed':
      return log.info(`deleting manifest: ${e.repo}@${e.digest}`);
    case 'summary':
      return progress.out(`\n${e.marked} blobs marked, ${e.blobs} blobs and ${e.manifests} manifests eligible for deletion\n`);
    case 'blob-eligible':
      return progress.out(`blob eligible for deletion: ${e.digest}\n`);
    case 'blob-deleted':
      return log.info(`Deleting blob: ${e.path}`);
    case 'leftover-removed':
      return log.info(`removing ${e.what}: ${e.path}`);
    case 'leftover-scan':
      return log.info(`crash leftovers: ${e.whole ? 'looking through the whole tree' : 'not looking'}: ${e.why}`);
    case 'blob-kept':
      return log.info(`keeping blob ${e.digest}: ${e.reason}`);
    case 'warning':
      return; // the run logs each warning itself
    case 'progress':
      return progress.show(e.phase === 'mark' ? `marking: ${e.done}/${e.total} repositories` : `sweeping: ${e.done}/${e.total} blobs`);
  }
}
