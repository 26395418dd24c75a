/**
 * Access: what a request needs and what a caller holds, in the Docker token scheme's terms. A
 * resource is `{type, name, actions}` (`repository:library/app:pull,push`, `registry:catalog:*`);
 * `*` among a grant's actions means every action.
 */

/** One resource and the actions asked for or granted on it. */
export interface AccessItem {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** What an authenticated (or anonymous) caller may do. */
export interface Grant {
  /** The account name, or undefined for an anonymous caller. */
  readonly subject: string | undefined;
  readonly access: readonly AccessItem[];
  /** Every action on every resource (htpasswd users, as in registry:2), whatever `access` lists. */
  readonly everything?: boolean;
  /**
   * Whether the caller may pull `repository`, whatever the token names: present only where the server
   * itself knows the caller's rights (the built-in issuer's rules). A token from an external token
   * server carries all Berth knows of its holder's rights, so there this is absent. Automatic
   * cross-mount uses it to find a repository the caller may mount from (handlers/uploads.ts).
   */
  readonly mayPull?: (repository: string) => boolean;
}

/** The catalog resource of the token spec. */
export const CATALOG_ACCESS: AccessItem = { type: 'registry', name: 'catalog', actions: ['*'] };

/**
 * Running the garbage collector through the management API (`POST /berth/v1/gc`): "delete on every
 * repository". The built-in issuer grants it to callers whose rules give delete on `**` (rules.ts).
 */
export const GC_ACCESS: AccessItem = { type: 'registry', name: 'gc', actions: ['*'] };

export type RouteScope = 'none' | 'catalog' | 'repository';

/**
 * The access a request needs (DESIGN.md §5): GET/HEAD pull; POST/PUT/PATCH pull+push; DELETE delete;
 * the catalog `registry:catalog:*`; `/v2/` itself nothing beyond being authenticated. A mount's pull on
 * its `from` repository is asked for separately (see `mountSourceAccess`), because lacking it turns the
 * mount into a plain upload rather than a refusal.
 */
export function requiredAccess(scope: RouteScope, method: string, repo: string | undefined): AccessItem[] {
  if (scope === 'none') return [];
  if (scope === 'catalog') return [CATALOG_ACCESS];
  if (repo === undefined) throw new Error('a repository route needs a repository name');
  return [{ type: 'repository', name: repo, actions: actionsFor(method) }];
}

/** Pull on the repository a blob is mounted from. */
export function mountSourceAccess(from: string): AccessItem {
  return { type: 'repository', name: from, actions: ['pull'] };
}

function actionsFor(method: string): string[] {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return ['pull'];
    case 'DELETE':
      return ['delete'];
    default:
      return ['pull', 'push'];
  }
}

/** Whether `grant` covers every action of `needed`. */
export function allows(grant: Grant, needed: AccessItem): boolean {
  if (grant.everything === true) return true;
  const held = new Set<string>();
  for (const item of grant.access) {
    if (item.type === needed.type && item.name === needed.name) for (const a of item.actions) held.add(a);
  }
  return held.has('*') || needed.actions.every((a) => held.has(a));
}

/** Whether `grant` covers everything in `needed`. */
export function allowsAll(grant: Grant, needed: readonly AccessItem[]): boolean {
  return needed.every((item) => allows(grant, item));
}

/** The scope string of the token spec: `repository:a/b:pull,push registry:catalog:*`. */
export function formatScope(items: readonly AccessItem[]): string {
  return items.map((i) => `${i.type}:${i.name}:${i.actions.join(',')}`).join(' ');
}
