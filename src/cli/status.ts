/**
 * The status document of `GET /berth/v1/status` (http/management/status.ts), put together where the
 * configuration is known: version, storage driver, deletes and read-only, auth mode, health, the
 * collector's settings and its last runs (kept here, told by the collector's `report` seam), the
 * maintenance settings in words, and the mirror's upstreams with hits and misses read from the
 * `berth_mirror_requests_total` metric.
 */
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Config, QuotaConfig } from '../config/schema.js';
import type { GcReport } from '../gc/report.js';
import type { HealthState } from '../health/health.js';
import type { GcTrigger } from '../http/debug.js';
import type { ServerStatusSource } from '../http/management/status.js';
import { formatBytes } from '../storage/registry.js';
import { packageVersion } from './install-root.js';

/** How many finished collections the status keeps. */
const KEPT_RUNS = 10;

export interface StatusOptions {
  readonly config: Config;
  readonly driverName: string;
  readonly health: HealthState;
  readonly metrics: MetricsRegistry;
  readonly runGc: GcTrigger;
}

/** The status source, and `recordRun` for the collector's report seam (each finished run, newest kept). */
export interface StatusKeeper {
  readonly source: ServerStatusSource;
  recordRun(report: GcReport, error?: unknown): void;
}

interface RunSummary {
  readonly finishedAt: string;
  readonly dryRun: boolean;
  readonly marked: number;
  readonly swept: number;
  readonly bytesFreed: number;
  readonly durationMs: number;
  readonly error?: string;
}

export function createStatusKeeper(o: StatusOptions): StatusKeeper {
  const runs: RunSummary[] = [];
  const version = packageVersion();
  const gc = o.config.storage.maintenance.gc;
  return {
    recordRun(report, error) {
      runs.unshift({
        finishedAt: new Date().toISOString(),
        dryRun: report.dryRun,
        marked: report.marked,
        swept: report.swept,
        bytesFreed: report.bytesFreed,
        durationMs: report.durationMs,
        ...(error !== undefined && { error: error instanceof Error ? error.message : String(error) }),
      });
      runs.length = Math.min(runs.length, KEPT_RUNS);
    },
    source: {
      runGc: o.runGc,
      async status() {
        const failures = o.health.failures();
        return {
          version: await version,
          storage: { driver: o.driverName, deleteEnabled: o.config.storage.delete.enabled, readOnly: o.config.storage.maintenance.readonly.enabled },
          auth: o.config.auth?.kind ?? 'none',
          health: { status: Object.keys(failures).length === 0 ? 'ok' : 'unavailable', checks: failures },
          collector: {
            enabled: gc.enabled,
            intervalSeconds: Math.round(gc.intervalMs / 1000),
            gracePeriodSeconds: Math.round(gc.graceperiodMs / 1000),
            deleteUntagged: gc.deleteuntagged,
            dryRun: gc.dryrun,
            lastRuns: [...runs],
          },
          policies: policiesOf(o.config),
          mirror: { upstreams: await upstreamsOf(o.config, o.metrics) },
        };
      },
    },
  };
}

/** The maintenance settings, one line each. */
function policiesOf(config: Config): Record<string, string> {
  const purging = config.storage.maintenance.uploadpurging;
  // TODO(retention): retention policies and immutable tags, once helper `retention`'s config is on main.
  const quotas = config.storage.quotas;
  return {
    'upload purging': purging.enabled ? `uploads older than ${Math.round(purging.ageMs / 3_600_000)} h, every ${Math.round(purging.intervalMs / 3_600_000)} h${purging.dryrun ? ' (dry run)' : ''}` : 'off',
    ...(quotas.length > 0 && { quotas: quotas.map(describeQuota).join('; ') }),
  };
}

/** `team/**: storage 10 GiB, 50 repositories`. */
function describeQuota(q: QuotaConfig): string {
  const limits = [
    ...(q.storageBytes === undefined ? [] : [`storage ${formatBytes(q.storageBytes)}`]),
    ...(q.maxrepositories === undefined ? [] : [`${q.maxrepositories} repositories`]),
  ];
  return `${q.repositories.join(', ')}: ${limits.join(', ')}`;
}

/** Each configured upstream with its hits and misses so far (the metric's upstream label is the prefix or the host). */
async function upstreamsOf(config: Config, metrics: MetricsRegistry): Promise<{ name: string; url: string; hits: number; misses: number }[]> {
  const upstreams = config.proxy?.upstreams ?? [];
  if (upstreams.length === 0) return [];
  const counts = new Map<string, { hits: number; misses: number }>();
  const metric = metrics.getSingleMetric('berth_mirror_requests_total');
  for (const v of metric === undefined ? [] : (await metric.get()).values) {
    const name = String(v.labels['upstream'] ?? '');
    const c = counts.get(name) ?? { hits: 0, misses: 0 };
    if (v.labels['result'] === 'hit') c.hits += v.value;
    else if (v.labels['result'] === 'miss') c.misses += v.value;
    counts.set(name, c);
  }
  return upstreams.map((u) => {
    const name = u.prefix ?? new URL(u.remoteurl).host;
    return { name, url: u.remoteurl, ...(counts.get(name) ?? { hits: 0, misses: 0 }) };
  });
}
