/**
 * Which repository a request's name means, decided once per request at the HTTP boundary (before
 * access control, so a mirror's users need pull on the mirrored name): a name carrying containerd's
 * `?ns=<host>` for an upstream's host goes under that upstream's prefix; a name already under a prefix
 * stays; a read (GET, HEAD) of an un-prefixed name that is not a local repository goes under the
 * default upstream's prefix when there is one. Everything else, every write included, is left as it is
 * (an ordinary repository). registry:2's `remoteurl` form needs no routing: every name is mirrored as is.
 */
import { isRegistryError } from '../errors.js';
import { type RepoName, parseRepoName } from '../storage/reference.js';
import type { CacheRegistry } from '../storage/registry.js';

/** One upstream as routing sees it. */
export interface RoutedUpstream {
  readonly prefix: string;
  /** containerd's `ns` values meaning this upstream. */
  readonly hosts: readonly string[];
  readonly default: boolean;
}

/** What routing knows of a request. */
export interface RouteHints {
  /** containerd's `?ns=` query value. */
  readonly ns: string | undefined;
  /** True for POST, PUT, PATCH, DELETE. */
  readonly write: boolean;
}

/** Maps a request's repository name to the repository it means. */
export interface NameRouter {
  /** The name to serve; the raw name when it names no mirror (or is not a valid name: the handler refuses it). */
  route(name: string, hints: RouteHints): Promise<string>;
}

/** A router over `upstreams`; `local` says whether an un-prefixed name is a local repository. */
export function createNameRouter(local: CacheRegistry, upstreams: readonly RoutedUpstream[]): NameRouter {
  const fallback = upstreams.find((u) => u.default);
  const under = (name: string): RoutedUpstream | undefined => upstreams.find((u) => name.startsWith(`${u.prefix}/`));
  const isLocal = async (name: string): Promise<boolean> => {
    let repo: RepoName;
    try {
      repo = parseRepoName(name);
    } catch (err) {
      if (isRegistryError(err, 'NAME_INVALID')) return false;
      throw err;
    }
    return local.repository(repo).exists();
  };
  return {
    async route(name, hints) {
      if (under(name) !== undefined) return name;
      const byHost = hints.ns === undefined ? undefined : upstreams.find((u) => u.hosts.includes(hints.ns ?? ''));
      if (byHost !== undefined) return `${byHost.prefix}/${name}`;
      if (fallback === undefined || hints.write || (await isLocal(name))) return name;
      return `${fallback.prefix}/${name}`;
    },
  };
}
