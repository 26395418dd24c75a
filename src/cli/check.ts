/**
 * `berth check [--repair] [--force] [config.yml]`: the integrity check of check/check.ts over the configured storage.
 * One line per problem on stdout (`<kind>: <what>`, with `; repaired: <how>` when --repair fixed it),
 * one line per orphaned blob, then a summary. Exit 0 when no problem remains, 1 when some do (orphaned
 * blobs are not problems: garbage-collect removes them). The check alone only reads, so it may run beside a
 * server; `--repair` refuses while a server holds the root, unless `--force`.
 */
import { checkStorage } from '../check/check.js';
import type { Config } from '../config/schema.js';
import { type CommandIo, createProgress, openOffline, processIo } from './offline.js';

export interface CheckCommand {
  readonly repair: boolean;
  /** Repair even while a server holds the root. */
  readonly force: boolean;
  readonly file: string | undefined;
}

/** Parses the arguments after `check`; answers an error message for a bad command line. */
export function parseCheckArgs(args: readonly string[]): CheckCommand | string {
  let repair = false;
  let force = false;
  const files: string[] = [];
  for (const arg of args) {
    if (arg === '--repair') repair = true;
    else if (arg === '--force') force = true;
    else if (arg.startsWith('-')) return `unknown flag ${arg}`;
    else files.push(arg);
  }
  if (files.length > 1) return 'at most one configuration file';
  return { repair, force, file: files[0] };
}

/** Runs the check; answers the exit code. @throws ConfigError and storage failures, for main to print */
export async function check(cmd: CheckCommand, env: Record<string, string | undefined>, io: CommandIo = processIo()): Promise<number> {
  const progress = createProgress(io);
  const writes = cmd.repair ? { command: 'check --repair', force: cmd.force } : undefined;
  const { config, registry, close } = await openOffline(cmd.file, env, (line) => progress.err(line), writes);
  let report;
  try {
    report = await checkStorage(registry.inventory, {
      repair: cmd.repair,
      onProblem: (p) => progress.out(`${p.kind}: ${p.message}${p.repaired === undefined ? '' : `; repaired: ${p.repaired}`}\n`),
      onDemand: mirrored(config),
      onInfo: (m) => progress.out(`info: ${m}\n`),
      onOrphan: (d, size) => progress.out(`orphaned blob: ${d} (${size} bytes): no repository links it; garbage-collect removes it\n`),
      onProgress: (phase, done, total) =>
        progress.show(phase === 'blobs' ? `verifying blobs: ${done}` : `checking repositories: ${done}/${total ?? '?'}`),
    });
  } finally {
    progress.done();
    await close();
  }
  const remaining = report.problems - report.repaired;
  progress.out(
    `checked ${report.blobs} blobs and ${report.repositories} repositories: ${report.problems} problems` +
      (cmd.repair ? ` (${report.repaired} repaired, ${remaining} remain)` : '') +
      `, ${report.orphans} orphaned blobs\n`,
  );
  return remaining === 0 ? 0 : 1;
}

/** Is a repository a mirror's (its layers and child manifests fetched on demand)? Every one in registry:2's `remoteurl` form. */
function mirrored(config: Config): (repo: string) => boolean {
  const proxy = config.proxy;
  if (proxy === undefined) return () => false;
  if (proxy.form === 'remoteurl') return () => true;
  const prefixes = proxy.upstreams.flatMap((u) => (u.prefix === undefined ? [] : [`${u.prefix}/`]));
  return (repo) => prefixes.some((p) => repo.startsWith(p));
}
