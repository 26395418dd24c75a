/**
 * A real Berth for tests: the HTTP app listening on 127.0.0.1 port 0, storing under a fresh temporary
 * directory with the filesystem driver (or in memory), closed and removed by `close()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuth } from '../../src/cli/auth.js';
import type { AuthConfig } from '../../src/config/schema.js';
import { listen } from '../../src/http/listen.js';
import { createApp } from '../../src/http/server.js';
import type { UiAssets } from '../../src/http/ui/assets.js';
import { type IndexDb, startIndexDb } from '../../src/indexdb/index-db.js';
import { type Level, createLogger } from '../../src/log.js';
import { createDriver } from '../../src/storage/driver/factory.js';
import { createIndexSource } from '../../src/storage/indexing/index-source.js';
import { type LocalRegistry, type QuotaReading, type QuotaSpec, createRegistry } from '../../src/storage/registry.js';

export interface TestBerth {
  /** e.g. `http://127.0.0.1:40123` */
  readonly url: string;
  /** The storage root directory (rootdirectory); the layout lives under `<root>/docker/registry/v2`. */
  readonly root: string;
  /** What the server logged at error level (bugs), for asserting nothing went wrong. */
  readonly errors: string[];
  /** The storage API the server runs on (e.g. to run the garbage collector beside it). */
  readonly registry: LocalRegistry;
  /** What the server logged at warn level. */
  readonly warnings: string[];
  /** The index, with `index: true` (undefined when it could not be opened). */
  readonly index: IndexDb | undefined;
  close(): Promise<void>;
}

export interface TestBerthOptions {
  readonly deleteEnabled?: boolean;
  readonly readOnly?: boolean;
  readonly relativeUrls?: boolean;
  /** Serve an existing root instead of a fresh one (it is not removed on close). */
  readonly root?: string;
  readonly secret?: string;
  /** An `auth` section as config.yml would give it (files it names must exist); default: none. */
  readonly auth?: AuthConfig;
  /**
   * Keep the LevelDB index at `<root>/berth/index` (as `serve` does), and resolve only once its
   * rebuild from storage has finished (or failed).
   */
  readonly index?: boolean;
  /** Every log line at or above `logLevel` (default warn) also goes here, e.g. to read access lines. */
  readonly onLog?: (line: string) => void;
  readonly logLevel?: Level;
  /** `http.prefix` (default none). */
  readonly prefix?: string;
  /** `storage.automaticcrossmount` (default true). */
  readonly automaticCrossMount?: boolean;
  /** `storage.immutabletags` (default none). */
  readonly immutableTags?: readonly { readonly repositories: readonly string[]; readonly patterns: readonly string[] }[];
  /** `storage.quotas` (default none). */
  readonly quotas?: readonly QuotaSpec[];
  /** Told each quota figure a check computes (as serve's gauge and warning are). */
  readonly observeQuota?: (reading: QuotaReading) => void;
  /** Serve the web UI (`ui.enabled`) from these built files (test/helpers/ui.ts builds them); default: no UI. */
  readonly ui?: { readonly assets: UiAssets | undefined };
}

export async function startBerth(opts: TestBerthOptions = {}): Promise<TestBerth> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'berth-test-')));
  const errors: string[] = [];
  const warnings: string[] = [];
  const log = createLogger({
    level: opts.logLevel ?? 'warn',
    format: 'json',
    write: (line) => {
      opts.onLog?.(line);
      const level = (JSON.parse(line) as { level: string }).level;
      if (level === 'error') errors.push(line);
      else if (level === 'warn') warnings.push(line);
    },
  });
  const driver = createDriver({ kind: 'filesystem', root });
  const index = opts.index
    ? await startIndexDb({ location: join(root, 'berth', 'index'), source: createIndexSource(driver), log })
    : undefined;
  await index?.ready();
  const registry = createRegistry({ driver, deleteEnabled: opts.deleteEnabled ?? true, index, times: index?.times, immutableTags: opts.immutableTags,
    quotas: opts.quotas, observeQuota: opts.observeQuota,
    // A lone filesystem Berth, as serve runs one without redis: PATCHes keep their hash in memory and save no hashstates.
    sharedUploads: false,
  });
  const { access, tokenHandlers } = await createAuth(opts.auth, undefined);
  const app = createApp({
    registry,
    log,
    secret: opts.secret ?? 'test-secret',
    relativeUrls: opts.relativeUrls ?? false,
    host: undefined,
    readOnly: opts.readOnly ?? false,
    ...(opts.prefix !== undefined && { prefix: opts.prefix }),
    ...(opts.automaticCrossMount !== undefined && { automaticCrossMount: opts.automaticCrossMount }),
    ...(access && { access }),
    ...(tokenHandlers && { tokenHandlers }),
    management: registry.management,
    ...(opts.ui && { ui: opts.ui }),
  });
  const running = await listen(app, '127.0.0.1', 0);
  return {
    url: running.url,
    root,
    errors,
    registry,
    warnings,
    index,
    async close() {
      await running.close();
      await index?.close();
      if (opts.root === undefined) await rm(root, { recursive: true, force: true });
    },
  };
}
