/**
 * The management API's route table (`/berth/v1/`, README "Management API"). Each endpoint lives in its
 * own file in this folder and is listed here; dispatch.ts routes to it through the same auth as `/v2/`.
 */
import { deleteRepository } from './repositories.js';
import type { ManagementRoute } from './types.js';
import { getRepositoryUsage, listUsage } from './usage.js';

export const MANAGEMENT_PREFIX = '/berth/v1';

const NAME = '(?<name>.+?)';

/** In match order (see types.ts for how a method decides between routes matching one path). */
export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [
  { name: 'usage', pattern: /^\/berth\/v1\/usage$/, methods: { GET: listUsage } },
  { name: 'repository-usage', pattern: new RegExp(`^/berth/v1/repositories/${NAME}/usage$`), methods: { GET: getRepositoryUsage } },
  { name: 'repository', pattern: new RegExp(`^/berth/v1/repositories/${NAME}$`), methods: { DELETE: deleteRepository } },
];

/** Every route whose pattern matches `path`, in table order, with its named groups. */
export function matchManagementRoutes(path: string): { route: ManagementRoute; params: Record<string, string> }[] {
  return MANAGEMENT_ROUTES.flatMap((route) => {
    const m = route.pattern.exec(path);
    return m ? [{ route, params: { ...m.groups } }] : [];
  });
}
