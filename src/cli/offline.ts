/**
 * What the offline commands (`garbage-collect`, `check`) share: the configuration (file, else
 * REGISTRY_CONFIGURATION_PATH, else the development config, with REGISTRY_* overrides, as `serve`),
 * a logger, the registry over the configured storage, and a progress line on a terminal.
 *
 * Like registry:2's garbage-collect, these commands are meant for a stopped registry: they order their
 * deletions only against this process, not against a server. A command that writes (garbage-collect
 * without --dry-run, check --repair) therefore refuses, unless `--force`, when a server holds the root
 * (root-holder.ts), and holds the root itself while it runs so no server starts meanwhile.
 *
 * With `redis` (replicas), a command that writes reports each of its writes to the replicas' index in
 * Redis, as a serving replica does (redis-index.ts: the item is re-read from storage), so the catalog,
 * tags, referrers and usage the replicas answer stay right after an offline collection or repair. The
 * index only hears of the writes; the command reads storage itself. Redis unreachable: the command
 * runs (it never needed Redis), and says that `berth index rebuild` must follow.
 */
import { loadConfig } from '../config/parse.js';
import { holdRootForWriting, indexLocation, otherHolder } from './root-holder.js';
import type { IndexLevel } from '../indexdb/entries.js';
import { openLevel } from '../indexdb/open.js';
import { offlineTimes } from '../indexdb/times.js';
import { driverFor, loggerFor } from './setup.js';
import { startRedisIndex, startRedisTimes } from './index-command.js';
import { type Replicas, startReplicas } from './replicas.js';
import type { RegistryIndex } from '../storage/indexing/index-port.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { type LocalRegistry, createRegistry } from '../storage/registry.js';

export interface Offline {
  readonly config: Config;
  readonly log: Logger;
  readonly registry: LocalRegistry;
  /** Whether the registry's push and pull times are recorded ones (times needed, and the index or Redis answered). */
  readonly timesKnown: boolean;
  /** Lets go of the root (a writing command held it). */
  close(): Promise<void>;
}

/** A command that will write the tree: it takes the root, or refuses while a server holds it. */
export interface OfflineWrites {
  /** As the messages name it: `garbage-collect`, `check --repair`. */
  readonly command: string;
  /** Go on (with a warning) even when a server holds the root. */
  readonly force: boolean;
}

/** What else a command needs of the registry it is given. */
export interface OfflineNeeds {
  /** Deletes allowed whatever storage.delete.enabled says (retention deletes as the operator's policy). */
  readonly deletes?: boolean;
  /**
   * Push and pull times: the replicas' in Redis with `redis`, else from the index database (filesystem
   * roots no server holds); otherwise push times are the revision links' modification times and pull
   * times are unknown. A function decides by the configuration.
   */
  readonly times?: boolean | ((config: Config) => boolean);
}

/**
 * @throws ConfigError, and CommandError when `writes` and a server holds the root, for main to print.
 * `writeLog` receives each log line (default: stderr).
 */
export async function openOffline(
  file: string | undefined,
  env: Record<string, string | undefined>,
  writeLog?: (line: string) => void,
  writes?: OfflineWrites,
  needs: OfflineNeeds = {},
): Promise<Offline> {
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  const log = loggerFor(config, writeLog);
  for (const w of warnings) log.warn(w);
  const storage = config.storage;
  const wantsTimes = typeof needs.times === 'function' ? needs.times(config) : needs.times === true;
  // Blocking reads: this process does nothing else while it reads the tree (filesystem-blocking.ts).
  const driver = await driverFor(storage, undefined, { blocking: true });
  if (storage.driver === 'inmemory') log.warn('storage is inmemory: there is nothing stored to look at');
  let held: IndexLevel | undefined;
  const release = writes
    ? await holdRootForWriting(config, { ...writes, log, held: (db) => void (held = db) })
    : async () => undefined;
  const served = !writes && (await otherHolder(config)) !== undefined;
  if (served) log.info('a Berth server is serving this root; this command only reads it');
  // With `redis` the times are the replicas' (in Redis); else a reading command opens the database
  // itself for them, unless a server holds it.
  const replicas = (wantsTimes || writes) && config.redis !== undefined ? await connectShared(config, log, writes !== undefined) : undefined;
  const shared = wantsTimes && replicas ? await startRedisTimes(replicas, log) : undefined;
  const index = writes && replicas ? await startRedisIndex(replicas, driver, log, false) : undefined;
  if (wantsTimes && !shared && !writes && !served && storage.driver === 'filesystem') held = await openLevel(indexLocation(storage.rootdirectory), log);
  const opened = !writes ? held : undefined;
  if (wantsTimes && !shared && !held) log.warn('push times are the link files\' modification times and pull times are unknown: the index database is not available');
  const times = shared ?? (wantsTimes && held ? offlineTimes(held) : undefined);
  const registry = createRegistry({
    driver,
    deleteEnabled: needs.deletes === true || storage.delete.enabled,
    immutableTags: storage.immutabletags,
    ...(times && { times }),
    ...(index && { index: reportingOnly(index) }),
  });
  const close = async (): Promise<void> => {
    if (index && !(await index.settle())) log.warn('some changes did not reach the index in redis: run `berth index rebuild` before the replicas list again');
    await index?.close();
    await shared?.close();
    await replicas?.close();
    await opened?.close();
    await release();
  };
  return { config, log, registry, timesKnown: times !== undefined, close };
}

/**
 * The replicas' Redis for an offline command. A command that writes goes on without it when it cannot
 * be reached (offline commands never needed Redis), saying the index in Redis must then be rebuilt.
 */
async function connectShared(config: Config, log: Logger, writes: boolean): Promise<Replicas | undefined> {
  if (!writes) return startReplicas(config, log, false);
  try {
    return await startReplicas(config, log, false);
  } catch (err) {
    log.warn('redis cannot be reached: the index in redis will not hear of this command\'s changes; run `berth index rebuild` after it', {
      err: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}

/** `index` told of every write, and asked nothing: an offline command reads storage itself. */
function reportingOnly(index: RegistryIndex): RegistryIndex {
  return {
    repositories: async () => undefined,
    tags: async () => undefined,
    referrers: async () => undefined,
    onChange: (change) => index.onChange(change),
  };
}

/** Where command output goes; a test passes its own. */
export interface CommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Whether stderr is a terminal (then a progress line is kept up to date there). */
  readonly stderrIsTty: boolean;
  readonly stdoutIsTty: boolean;
}

export const processIo = (): CommandIo => ({
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  stderrIsTty: process.stderr.isTTY === true,
  stdoutIsTty: process.stdout.isTTY === true,
});

/**
 * A one-line progress display on a terminal's stderr, redrawn at most every 100 ms; `line` writes a
 * line of output without leaving the progress line torn. Does nothing when stderr is not a terminal.
 * Output to a stdout that is not a terminal (a file, a pipe) is gathered and written OUT_CHUNK at a
 * time, and before anything goes to stderr (so the two keep their order when they share a file) and
 * at `done` (after which it is written at once): the collector prints a line per marked blob, some 40,000 on a tree of 10,000
 * repositories, and a write each cost about a tenth of a dry run (issue #19).
 */
export interface Progress {
  show(text: string): void;
  /** Writes `text` (whole lines) to stdout without tearing the progress line. */
  out(text: string): void;
  /** Writes `text` (whole lines) to stderr without tearing the progress line. */
  err(text: string): void;
  done(): void;
}

/** Characters of non-terminal output gathered before they are written (Progress). */
const OUT_CHUNK = 64 * 1024;

export function createProgress(io: CommandIo): Progress {
  let shown = '';
  let lastDraw = 0;
  let pending = '';
  // Until `done`: output printed after it (a command's closing line) goes out at once.
  let gathering = !io.stdoutIsTty;
  const flush = (): void => {
    if (pending === '') return;
    io.stdout(pending);
    pending = '';
  };
  const clear = (): void => {
    flush();
    if (shown !== '') io.stderr('\r\x1b[K');
  };
  return {
    show(text) {
      if (!io.stderrIsTty) return;
      const now = Date.now();
      if (now - lastDraw < 100 && shown !== '') {
        shown = text;
        return;
      }
      lastDraw = now;
      flush();
      io.stderr(`\r\x1b[K${text}`);
      shown = text;
    },
    out(text) {
      if (gathering) {
        pending += text;
        if (pending.length >= OUT_CHUNK) flush();
        return;
      }
      if (shown === '' || !io.stdoutIsTty) {
        io.stdout(text);
        return;
      }
      clear();
      io.stdout(text);
      io.stderr(shown);
    },
    err(text) {
      clear();
      io.stderr(text);
      if (shown !== '') io.stderr(shown);
    },
    done() {
      clear();
      gathering = false;
      shown = '';
    },
  };
}
