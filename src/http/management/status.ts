/**
 * The operator's endpoints of the management API:
 * - `GET /berth/v1/status` (the catalog grant, or no auth): version, storage and its health, auth mode,
 *   the collector's settings and last runs, retention/quota/immutable-tag settings in words, and the
 *   mirror's upstreams with their hits and misses. The document is the composition root's
 *   (cli/status.ts); this file only guards it.
 * - `POST /berth/v1/gc?dryrun=true|false` (delete on every repository: `registry:gc:*`, which the
 *   built-in issuer grants to rules covering `**` with delete; or no auth): one collection now, as
 *   `POST /debug/gc` runs it, answering its report; 429 TOOMANYREQUESTS while one is running.
 */
import { type AccessItem, CATALOG_ACCESS, GC_ACCESS } from '../../auth/access.js';
import { RegistryError, unavailable } from '../../errors.js';
import { queryValue } from '../params.js';
import type { ManagementDeps, ManagementEndpoint, ServerStatusSource } from './types.js';

export type { ServerStatusSource };

function sourceOf(deps: ManagementDeps): ServerStatusSource {
  if (deps.status === undefined) throw unavailable('the status API is not available on this server');
  return deps.status;
}

export const getStatus: ManagementEndpoint = {
  access: (): AccessItem[] => [CATALOG_ACCESS],
  writes: false,
  async handle(ctx, deps) {
    const status = await sourceOf(deps).status();
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 200;
    ctx.body = status;
  },
};

export const postGc: ManagementEndpoint = {
  access: (): AccessItem[] => [GC_ACCESS],
  writes: true,
  async handle(ctx, deps) {
    const raw = queryValue(ctx, 'dryrun');
    if (raw !== undefined && raw !== 'true' && raw !== 'false') {
      throw new RegistryError('NAME_INVALID', 'invalid request: dryrun must be true or false');
    }
    const outcome = await sourceOf(deps).runGc({ dryRun: raw === 'true' });
    if (outcome.status === 'busy') {
      ctx.set('Retry-After', '10');
      throw new RegistryError('TOOMANYREQUESTS', 'a garbage collection is already running');
    }
    ctx.status = 200;
    ctx.body = outcome.report;
  },
};
