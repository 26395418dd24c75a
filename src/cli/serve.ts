/**
 * `berth serve [config.yml]`: the composition root. Config → logger → storage driver → registry →
 * HTTP app → listening socket (HTTP or HTTPS), plus the health checks (health.ts), the upload purging
 * timer, the online garbage collector (collector.ts), the metrics (metrics/) and the debug listener that
 * runs the collector on demand and serves health and metrics. `shutdown()` is the graceful stop of a
 * SIGTERM. Only cli/ and main.ts see Config.
 *
 * As one of `http.workers` processes (cli/cluster-worker.ts), the same server is built with four
 * differences: the primary binds the debug listener (and serves the workers' metrics added together),
 * only the leader worker runs the scheduled collector and upload purging, the line once it listens
 * is `worker ready` (the primary says `listening` once every worker is), and a filesystem driver keeps
 * its link checks blocking while it writes (storage/driver/filesystem-shared-stat.ts).
 *
 * What only some configurations use is imported when the configuration asks for it, not at start-up:
 * auth (jose, bcryptjs), the pull-through cache, notifications and the web UI's asset loader.
 * A filesystem registry with none of them does not carry their code (resident memory, issue #19).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { loadConfig } from '../config/parse.js';
import { ConfigError } from '../config/raw.js';
import { startCollector } from './collector.js';
import { retentionFor } from './retention.js';
import { createStatusKeeper } from './status.js';
import type { GcReport } from '../gc/report.js';
import { startIndex, startRedisIndex, startRedisTimes } from './index-command.js';
import { driverKeyStore } from './key-store.js';
import { quotaWarnings } from './quota-warnings.js';
import { startReplicas } from './replicas.js';
import { healthChecksFor } from './health.js';
import { driverFor, loggerFor } from './setup.js';
import { parseAddr } from './serve-addr.js';
import { INSTALL_ROOT } from './install-root.js';
import type { Config } from '../config/schema.js';
import { type Health, type HealthState, startHealth } from '../health/health.js';
import { type GcTrigger, type MetricsSource, createDebugApp } from '../http/debug.js';
import { type RunningServer, type TlsOptions, listen } from '../http/listen.js';
import { createApp } from '../http/server.js';
import type { UiAssets } from '../http/ui/assets.js';
import type { Logger } from '../log.js';
import { type Metrics, createMetrics } from '../metrics/metrics.js';
import { createQuotaMetrics } from '../metrics/quotas.js';
import { createTrafficMetrics } from '../metrics/traffic.js';
import { createRegistry, type LocalRegistry } from '../storage/registry.js';

export interface Serving {
  readonly running: RunningServer;
  /** The debug listener (`http.debug.addr`), when configured. */
  readonly debug: RunningServer | undefined;
  readonly config: Config;
  /** Health checks and the draining flag (a worker reports them to the primary). */
  readonly health: HealthState;
  /** Runs one collection now (`POST /debug/gc`; the primary asks a worker through this). */
  readonly runGc: GcTrigger;
  /** Every metric of this process (the primary adds the workers' together). */
  readonly metrics: Metrics['registry'];
  /** Stops at once: connections are cut, background work is awaited. */
  stop(): Promise<void>;
  /**
   * The graceful stop (SIGTERM): readiness fails, the listener stops accepting, requests in flight get
   * up to `http.draintimeout` to finish, then everything stops as `stop()` does.
   */
  shutdown(): Promise<void>;
}

/** What a process serving as one of `http.workers` is. */
export interface WorkerRole {
  /** 1 to `http.workers`; a replacement takes the slot of the worker it replaces. On every log line as `worker`. */
  readonly slot: number;
  /** The one worker that runs the scheduled collector and upload purging (slot 1). */
  readonly leader: boolean;
}

/** Loads the config (file, then REGISTRY_* overrides), starts the server, resolves once it listens. */
export async function serve(file: string | undefined, env: Record<string, string | undefined>, o: { readonly worker?: WorkerRole } = {}): Promise<Serving> {
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  const root = loggerFor(config, undefined, true);
  const log = o.worker ? root.child({ worker: o.worker.slot }) : root;
  // A worker's warnings about the configuration were said once by the primary.
  if (!o.worker) for (const w of warnings) log.warn(w);
  return serveLoaded(config, log, o.worker);
}

/** Starts the server for an already loaded config (the single process of `berth serve`, or a worker). */
export async function serveLoaded(config: Config, log: Logger, worker?: WorkerRole): Promise<Serving> {
  // What has been started so far, closed in reverse order should a later step fail (a port taken,
  // an unreadable file): a failed start leaves no connection, lock or listener behind.
  const opened: (() => Promise<void> | void)[] = [];
  try {
    return await start(config, log, opened, worker);
  } catch (err) {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch (closeErr) {
        log.warn('while giving up start-up: a part failed to close', { err: closeErr });
      }
    }
    throw err;
  }
}

async function start(config: Config, log: Logger, opened: (() => Promise<void> | void)[], worker: WorkerRole | undefined): Promise<Serving> {
  // The leader (or the only process) runs what must run once per storage on a schedule.
  const leading = worker === undefined || worker.leader;
  const storage = config.storage;
  const metrics = createMetrics();
  const traffic = createTrafficMetrics(metrics.registry);
  // A worker shares full cores with the other workers: its link checks stay off the thread pool (filesystem-shared-stat.ts).
  const driver = await driverFor(storage, traffic.storage, { blockingStatsWhileWriting: worker !== undefined });
  const tls = await readTls(config);
  const auth = config.auth && (await import('./auth.js'));
  const plainBasic = auth?.plainHttpCredentialsWarning(config);
  if (plainBasic !== undefined) log.warn(plainBasic);
  // Replicas (`redis`): the link gate and the collector's lock are shared through Redis (replicas.ts).
  const replicas = await startReplicas(config, log);
  if (replicas) opened.push(() => replicas.close());
  // The listing index (LevelDB, filesystem storage only, none with replicas) is rebuilt from storage at
  // every start and trusted only once that rebuild is done; until then listings come from storage.
  // With replicas the index is in Redis instead, shared by all of them (trusted once complete there).
  const index = replicas ? await startRedisIndex(replicas, driver, log) : await startIndex(config, driver, log);
  if (index) opened.push(() => index.close());
  if (index) metrics.observeIndex(index);
  // Push and pull times: in the LevelDB index, or with replicas in Redis beside the shared index.
  const sharedTimes = replicas && (await startRedisTimes(replicas, log));
  if (sharedTimes) opened.push(() => sharedTimes.close());
  const times = sharedTimes ?? (index && 'times' in index ? index.times : undefined);
  const indexed = { ...(index && { index }), ...(times && { times }) };
  const health = startHealth(healthChecksFor(config, driver), log);
  opened.push(() => health.stop());
  // Webhook events (`notifications`): queued durably before delivery, so they survive a restart.
  const notifier = config.notifications && (await (await import('./notifications.js')).startNotifications(config, log, metrics.registry, driver, replicas));
  if (notifier) opened.push(() => notifier.stop());
  const quotaMetrics = createQuotaMetrics(metrics.registry);
  // Another process may take an upload's next request with replicas or on S3 (a filesystem root
  // without redis has one server): chunked uploads then save their hash state for it (uploads.ts).
  const sharedUploads = replicas !== undefined || storage.driver === 's3';
  const storageRegistry = createRegistry({
    driver, deleteEnabled: storage.delete.enabled, sharedUploads, ...indexed, ...(replicas && { linkGate: replicas.linkGate, tagLanes: replicas.tagLanes, quotaLocks: replicas.quotaLocks }),
    immutableTags: storage.immutabletags,
    quotas: storage.quotas,
    observeQuota: (reading) => quotaMetrics.record(reading),
    warnQuota: quotaWarnings(log, quotaMetrics, notifier?.sink),
  });
  // The pull-through cache (`proxy`) wraps the registry HTTP serves; storage and the collector see the plain one.
  const evictable = config.proxy && createRegistry({
    driver, deleteEnabled: true, sharedUploads, ...indexed, linkGate: storageRegistry.linkGate, tagLanes: storageRegistry.tagLanes,
  });
  const mirror = evictable && (await (await import('./mirror.js')).startMirror(config, { local: storageRegistry, evictable }, log, metrics.registry, replicas));
  if (mirror) opened.push(() => mirror.close());
  const registry = mirror?.registry ?? storageRegistry;
  // The issuer's key lives beside the registry:2 tree (outside docker/registry/v2): in the root, in the
  // bucket (a conditional write, so replicas agree on one), or in memory (inmemory storage).
  const defaultKey = storage.driver === 'filesystem' ? join(resolve(storage.rootdirectory), 'berth', 'token-signing-key.pem') : driverKeyStore(driver);
  const { access, tokenHandlers } = auth ? await auth.createAuth(config.auth, defaultKey, (m) => log.warn(m)) : { access: undefined, tokenHandlers: undefined };
  // `/berth/v1/status` and `/berth/v1/gc`: the collector starts once the listener is bound, so the
  // trigger is bound late (a request before that is answered as if a run were going).
  let runGcNow: GcTrigger = async () => ({ status: 'busy' });
  const status = createStatusKeeper({ config, driverName: driver.name, health, metrics: metrics.registry, runGc: (o) => runGcNow(o) });
  const app = createApp({
    registry,
    log,
    secret: httpSecret(config, log),
    relativeUrls: config.http.relativeurls,
    host: config.http.host,
    prefix: config.http.prefix,
    automaticCrossMount: storage.automaticcrossmount,
    readOnly: storage.maintenance.readonly.enabled,
    headers: config.http.headers,
    health,
    observe: traffic.requests,
    accessLog: !config.log.accesslog.disabled,
    ...(access && { access }),
    ...(tokenHandlers && { tokenHandlers }),
    ...(notifier && { events: notifier.sink }),
    ...(mirror?.names && { names: mirror.names }),
    management: storageRegistry.management,
    status: status.source,
    ...(config.ui.enabled && { ui: { assets: await uiAssets(log) } }),
  });
  const { host, port } = parseAddr(config.http.addr);
  const running = await listen(app, host, port, tls);
  opened.push(() => running.close({ drainMs: 0 }));
  const stopPurging = leading ? schedulePurging(storageRegistry, config, log) : () => undefined;
  opened.push(stopPurging);
  // Retention deletes through storage's own delete, whatever storage.delete.enabled says for clients.
  const retention = storage.maintenance.retention && retentionFor(config, createRegistry({
    driver, deleteEnabled: true, ...indexed, linkGate: storageRegistry.linkGate, tagLanes: storageRegistry.tagLanes,
    immutableTags: storage.immutabletags,
  }), notifier?.sink);
  const report = (r: GcReport, err?: unknown): void => {
    metrics.recordGcRun(r, err);
    status.recordRun(r, err);
  };
  const collector = startCollector({
    registry: storageRegistry, config, log, report, ...(replicas && { cluster: replicas.cluster }), retention,
    ...(mirror && { evict: mirror.evict }), scheduled: leading,
  });
  runGcNow = collector.runNow;
  opened.push(() => collector.stop());
  // Workers leave the debug listener to their primary.
  const debug = worker ? undefined : await listenDebug(config, collector.runNow, config.http.debug.prometheus.enabled ? metrics.registry : undefined, health, log);
  // Ready (and `listening`) only once every listener is bound: a probe must not pass before the debug port is ours.
  health.started();
  log.info(worker ? 'worker ready' : 'listening', {
    addr: config.http.addr, url: running.url, ...(debug && { debug: debug.url }), storage: driver.name,
    auth: config.auth?.kind ?? 'none', tls: tls !== undefined, readOnly: storage.maintenance.readonly.enabled,
    ...(config.http.prefix !== '' && { prefix: config.http.prefix }),
  });
  let stopping: Promise<void> | undefined;
  const stopAll = async (drainMs: number): Promise<void> => {
    health.drain();
    if (drainMs > 0 && running.inFlight > 0) log.info('draining requests in flight', { requests: running.inFlight, timeoutMs: drainMs });
    await running.close({ drainMs });
    await mirror?.close();
    await notifier?.stop(); // after the requests, so their events are queued and written to disk
    stopPurging();
    health.stop();
    await collector.stop();
    await debug?.close();
    await index?.close();
    await sharedTimes?.close(); // the pulls still noted, while Redis is connected
    await replicas?.close();
  };
  const stopOnce = (drainMs: number): Promise<void> => (stopping ??= stopAll(drainMs));
  return {
    running,
    debug,
    config,
    health,
    runGc: collector.runNow,
    metrics: metrics.registry,
    stop: () => stopOnce(0),
    async shutdown() {
      log.info('shutting down', { drainTimeoutMs: config.http.draintimeoutMs });
      await stopOnce(config.http.draintimeoutMs);
      log.info('stopped');
    },
  };
}

/** Reads `http.tls`'s PEM files; a missing or unreadable file stops start-up with its key named. */
async function readTls(config: Config): Promise<TlsOptions | undefined> {
  const tls = config.http.tls;
  if (tls === undefined) return undefined;
  const read = async (key: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(key, `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
  const options: TlsOptions = {
    cert: await read('http.tls.certificate', tls.certificate),
    key: await read('http.tls.key', tls.key),
    clientCas: await Promise.all(tls.clientcas.map((file, i) => read(`http.tls.clientcas[${i}]`, file))),
    minVersion: tls.minimumtls,
  };
  try {
    // Fails now, with the key named, on a malformed PEM or a key that does not match its certificate.
    createSecureContext({ cert: options.cert, key: options.key, ...(options.clientCas?.length && { ca: [...options.clientCas] }) });
  } catch (err) {
    throw new ConfigError('http.tls', `unusable certificate, key or client CA: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return options;
}

/** registry:2's debug listener on `http.debug.addr`, serving `POST /debug/gc`, health and metrics; none when unset. */
async function listenDebug(
  config: Config,
  runGc: GcTrigger,
  metrics: MetricsSource | undefined,
  health: Health,
  log: Logger,
): Promise<RunningServer | undefined> {
  if (config.http.debug.addr === undefined) return undefined;
  const { host, port } = parseAddr(config.http.debug.addr);
  const app = createDebugApp({ runGc, log, health, metricsPath: config.http.debug.prometheus.path, ...(metrics && { metrics }) });
  const debug = await listen(app, host, port);
  log.info('debug listener', { addr: config.http.debug.addr, url: debug.url });
  return debug;
}

/** Where `npm run build:ui` writes the web UI: dist/ui/ of the installed package. */
export const UI_ASSETS_DIR = join(INSTALL_ROOT, 'dist', 'ui');

async function uiAssets(log: Logger): Promise<UiAssets | undefined> {
  const { loadUiAssets } = await import('../http/ui/assets.js');
  const assets = await loadUiAssets(UI_ASSETS_DIR);
  if (assets === undefined) log.warn('the web UI is not built: /ui/ answers 503 until `npm run build:ui` has run', { dir: UI_ASSETS_DIR });
  return assets;
}

function httpSecret(config: Config, log: Logger): string {
  if (config.http.secret !== undefined) return config.http.secret;
  log.warn('no http.secret configured: generated a random one; uploads cannot move between replicas or survive a restart');
  return randomBytes(32).toString('hex');
}


/** Runs upload purging shortly after start and then every interval; answers a function that stops it. */
function schedulePurging(registry: LocalRegistry, config: Config, log: Logger): () => void {
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
