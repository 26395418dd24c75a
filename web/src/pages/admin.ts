/**
 * The operator's page, from `GET /berth/v1/status`: version, storage and its health, the collector's
 * last runs with "Run now" and "Dry run" (`POST /berth/v1/gc`), retention, quota and immutable-tag
 * settings, and the mirror's upstreams with their hit rates. It needs the catalog grant (or no auth).
 */
import { ApiError, errorOf, getJson, request } from '../api.js';
import { may } from '../auth.js';
import { announce, facts, h, replace, table } from '../dom.js';
import { bytes, when } from '../format.js';
import { errorBox } from './common.js';

/** A collection's report (gc/report.ts), as `/berth/v1/status` lists the last runs. */
export interface GcRun {
  readonly finishedAt: string;
  readonly dryRun: boolean;
  readonly marked?: number;
  readonly swept?: number;
  readonly bytesFreed?: number;
  readonly durationMs?: number;
  readonly error?: string;
}

interface Upstream {
  readonly name: string;
  readonly url: string;
  readonly hits: number;
  readonly misses: number;
}

/** `GET /berth/v1/status` (src/http/management/status.ts). */
export interface Status {
  readonly version: string;
  readonly storage: { readonly driver: string; readonly deleteEnabled: boolean; readonly readOnly: boolean };
  readonly auth: string;
  readonly health: { readonly status: string; readonly checks: Readonly<Record<string, string>> };
  readonly collector: {
    readonly enabled: boolean;
    readonly intervalSeconds: number;
    readonly gracePeriodSeconds: number;
    readonly deleteUntagged: boolean;
    readonly dryRun: boolean;
    readonly lastRuns: readonly GcRun[];
  };
  readonly policies?: Readonly<Record<string, unknown>>;
  readonly mirror?: { readonly upstreams: readonly Upstream[] };
}

/** Renders the page. */
export async function adminPage(root: HTMLElement): Promise<void> {
  root.append(h('h1', {}, 'Admin'));
  let status: Status;
  let canCollect: boolean;
  try {
    [status, canCollect] = await Promise.all([getJson<Status>('berth/v1/status').then((r) => r.body), may('*', 'gc')]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      root.append(h('p', { class: 'notice' }, 'This server has no status API (/berth/v1/status).'));
      return;
    }
    root.append(errorBox(err));
    return;
  }
  const healthy = status.health.status === 'ok';
  root.append(
    h('h2', {}, 'Server'),
    facts([
      ['Version', status.version],
      ['Storage', status.storage.driver],
      ['Health', h('span', { class: healthy ? 'ok' : 'bad' }, healthy ? 'healthy' : `failing: ${Object.entries(status.health.checks).map(([k, v]) => `${k}: ${v}`).join('; ')}`)],
      ['Auth', status.auth],
      ['Deletes', status.storage.deleteEnabled ? 'enabled' : 'disabled'],
      ['Read-only', status.storage.readOnly ? 'yes' : 'no'],
    ]),
    collectorSection(status, canCollect),
    policiesSection(status.policies),
    mirrorSection(status.mirror),
  );
}

function collectorSection(status: Status, canCollect: boolean): HTMLElement {
  const c = status.collector;
  const result = h('div', { 'aria-live': 'polite' });
  const run = (dryRun: boolean) => async (): Promise<void> => {
    replace(result, h('p', { class: 'muted' }, dryRun ? 'Dry run in progress…' : 'Collecting…'));
    const res = await request(`berth/v1/gc?dryrun=${dryRun}`, { method: 'POST' });
    if (!res.ok) {
      replace(result, errorBox(await errorOf(res)));
      return;
    }
    const report = (await res.json()) as GcRun & { swept?: number };
    announce(dryRun ? 'Dry run done' : 'Collection done');
    replace(result, h('p', { class: 'report' },
      `${dryRun ? 'Would free' : 'Freed'} ${bytes(report.bytesFreed)}: ${report.swept ?? 0} blobs swept, ${report.marked ?? 0} marked, in ${report.durationMs ?? 0} ms.`));
  };
  const rows = c.lastRuns.map((r) => h('tr', {},
    h('td', {}, when(r.finishedAt)),
    h('td', {}, r.dryRun ? 'dry run' : 'real'),
    h('td', { class: 'num' }, r.error === undefined ? bytes(r.bytesFreed) : '—'),
    h('td', { class: 'num' }, r.swept ?? '—'),
    h('td', { class: 'num' }, r.durationMs === undefined ? '—' : `${r.durationMs} ms`),
    h('td', {}, r.error ?? 'ok')));
  const schedule = c.enabled ? `every ${c.intervalSeconds} s` : 'on demand only';
  return h('section', {},
    h('h2', {}, 'Garbage collector'),
    facts([['Schedule', schedule], ['Grace period', `${c.gracePeriodSeconds} s`], ['Untagged manifests', c.deleteUntagged ? 'deleted' : 'kept'], ['Configured dry run', c.dryRun ? 'yes' : 'no']]),
    canCollect ? h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'primary', onclick: () => void run(false)().catch((err: unknown) => replace(result, errorBox(err))) }, 'Run now'),
      h('button', { type: 'button', onclick: () => void run(true)().catch((err: unknown) => replace(result, errorBox(err))) }, 'Dry run'))
      : h('p', { class: 'muted' }, 'Running the collector needs delete on every repository.'),
    result,
    rows.length === 0 ? h('p', { class: 'muted' }, 'No collection since the server started.') : table('Last collections', ['Finished', 'Kind', 'Freed', 'Blobs swept', 'Took', 'Outcome'], rows));
}

function policiesSection(policies: Readonly<Record<string, unknown>> | undefined): HTMLElement {
  const entries = Object.entries(policies ?? {});
  return h('section', {},
    h('h2', {}, 'Retention, quotas, immutable tags'),
    entries.length === 0 ? h('p', { class: 'muted' }, 'None configured.') : facts(entries.map(([k, v]) => [k, h('code', { class: 'value' }, typeof v === 'string' ? v : JSON.stringify(v))])));
}

function mirrorSection(mirror: Status['mirror']): HTMLElement {
  if (mirror === undefined || mirror.upstreams.length === 0) return h('section', {}, h('h2', {}, 'Mirror'), h('p', { class: 'muted' }, 'No upstream configured.'));
  const rows = mirror.upstreams.map((u) => {
    const total = u.hits + u.misses;
    return h('tr', {},
      h('td', {}, u.name), h('td', {}, h('code', {}, u.url)),
      h('td', { class: 'num' }, u.hits), h('td', { class: 'num' }, u.misses),
      h('td', { class: 'num' }, total === 0 ? '—' : `${Math.round((100 * u.hits) / total)} %`));
  });
  return h('section', {}, h('h2', {}, 'Mirror'), table('Mirror upstreams', ['Upstream', 'URL', 'Hits', 'Misses', 'Hit rate'], rows));
}
