/**
 * `berth serve [config.yml]`: the composition root. Config → logger → storage driver → registry →
 * HTTP app → listening socket, plus the upload purging timer, the online garbage collector
 * (collector.ts), the metrics (metrics/) and the debug listener that runs the collector on demand and
 * serves the metrics. Only cli/ and main.ts see Config.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/parse.js';
import { createAuth } from './auth.js';
import { startCollector } from './collector.js';
import { startIndex } from './index-command.js';
import { driverFor, loggerFor } from './setup.js';
import type { Config } from '../config/schema.js';
import { type GcTrigger, type MetricsSource, createDebugApp } from '../http/debug.js';
import { type RunningServer, createApp, listen } from '../http/server.js';
import type { Logger } from '../log.js';
import { createMetrics } from '../metrics/metrics.js';
import { createRegistry, type Registry } from '../storage/registry.js';

export interface Serving {
  readonly running: RunningServer;
  /** The debug listener (`http.debug.addr`), when configured. */
  readonly debug: RunningServer | undefined;
  readonly config: Config;
  stop(): Promise<void>;
}

/** Loads the config (file, then REGISTRY_* overrides), starts the server, resolves once it listens. */
export async function serve(file: string | undefined, env: Record<string, string | undefined>): Promise<Serving> {
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  const log = loggerFor(config);
  for (const w of warnings) log.warn(w);
  const storage = config.storage;
  const driver = driverFor(storage);
  // The listing index (LevelDB, filesystem storage only) is rebuilt from storage at every start and
  // trusted only once that rebuild is done; until then listings come from storage.
  const index = await startIndex(config, driver, log);
  const metrics = createMetrics();
  if (index) metrics.observeIndex(index);
  const registry = createRegistry({ driver, deleteEnabled: storage.delete.enabled, ...(index && { index }) });
  // The issuer's key lives beside the registry:2 tree (outside docker/registry/v2), or in memory.
  const keyPath = storage.driver === 'filesystem' ? join(resolve(storage.rootdirectory), 'berth', 'token-signing-key.pem') : undefined;
  const { access, tokenHandlers } = await createAuth(config.auth, keyPath);
  const app = createApp({
    registry,
    log,
    secret: httpSecret(config, log),
    relativeUrls: config.http.relativeurls,
    host: config.http.host,
    readOnly: storage.maintenance.readonly.enabled,
    ...(access && { access }),
    ...(tokenHandlers && { tokenHandlers }),
  });
  const { host, port } = parseAddr(config.http.addr);
  const running = await listen(app, host, port);
  log.info('listening', { addr: config.http.addr, url: running.url, storage: driver.name, auth: config.auth?.kind ?? 'none' });
  const stopPurging = schedulePurging(registry, config, log);
  const collector = startCollector({ registry, config, log, report: metrics.recordGcRun });
  const debug = await listenDebug(config, collector.runNow, metrics.registry, log);
  return {
    running,
    debug,
    config,
    async stop() {
      stopPurging();
      await collector.stop();
      await debug?.close();
      await running.close();
      await index?.close();
    },
  };
}

/** registry:2's debug listener on `http.debug.addr`, serving `POST /debug/gc` and `GET /metrics`; none when unset. */
async function listenDebug(
  config: Config,
  runGc: GcTrigger,
  metrics: MetricsSource,
  log: Logger,
): Promise<RunningServer | undefined> {
  if (config.http.debug.addr === undefined) return undefined;
  const { host, port } = parseAddr(config.http.debug.addr);
  const debug = await listen(createDebugApp({ runGc, log, metrics }), host, port);
  log.info('debug listener', { addr: config.http.debug.addr, url: debug.url });
  return debug;
}

function httpSecret(config: Config, log: Logger): string {
  if (config.http.secret !== undefined) return config.http.secret;
  log.warn('no http.secret configured: generated a random one; uploads cannot move between replicas or survive a restart');
  return randomBytes(32).toString('hex');
}

/** `host:port`, `:port` (every interface) or `[v6]:port`. */
export function parseAddr(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  const host = addr.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(addr.slice(at + 1)) };
}

/** Runs upload purging shortly after start and then every interval; answers a function that stops it. */
function schedulePurging(registry: Registry, config: Config, log: Logger): () => void {
  const purging = config.storage.maintenance.uploadpurging;
  if (!purging.enabled) return () => undefined;
  const run = (): void => {
    const olderThan = new Date(Date.now() - purging.ageMs);
    registry
      .purgeUploads({ olderThan, dryRun: purging.dryrun })
      .then((r) => log.info('upload purging done', { purged: r.purged.length, dryRun: purging.dryrun }))
      .catch((err: unknown) => log.error('upload purging failed', { err }));
  };
  const first = setTimeout(run, Math.min(purging.intervalMs, 60_000));
  const every = setInterval(run, purging.intervalMs);
  first.unref();
  every.unref();
  return () => {
    clearTimeout(first);
    clearInterval(every);
  };
}
