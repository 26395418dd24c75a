/**
 * The `proxy` section: the pull-through cache (src/mirror/), in two forms.
 *
 * registry:2's form, unchanged: `proxy.remoteurl`, `proxy.username`, `proxy.password`, `proxy.ttl`
 * (168h by default, 0 = never expire) and their REGISTRY_PROXY_* variables; the whole registry mirrors
 * that one upstream under the upstream's own names.
 *
 * Berth's form (issue #13; these key names are used from outside and fixed): `proxy.upstreams[]`, each
 * with `prefix`, `remoteurl`, `default`, `hosts`, `username`/`password` or `credentialsfile`, `ttl`,
 * `revalidate`, and `proxy.budget` for all cached content. Names under a prefix are mirrors; everything
 * else is an ordinary repository. Giving both forms is an error naming both. Keys inside an upstream
 * are checked here, since the key table of schema.ts cannot look inside a list.
 */
import { ConfigError, Lit, type Raw, type RawMap, describe, lookup, parseDuration, readBool, readString, stringList } from './raw.js';

/** One upstream registry the mirror pulls from. */
export interface UpstreamConfig {
  /** Names under `<prefix>/` are this upstream's; undefined in registry:2's form (every name is). */
  readonly prefix: string | undefined;
  /** `http(s)://host[:port]` of the upstream registry. */
  readonly remoteurl: string;
  /** Un-prefixed names that are not local repositories are pulled from this upstream. */
  readonly default: boolean;
  /** containerd's `?ns=` values that mean this upstream (default: the prefix). */
  readonly hosts: readonly string[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** A docker config.json-style file holding the credentials (`auths.<host>.auth`), re-read when it changes. */
  readonly credentialsfile: string | undefined;
  /** Cached content expires this long after its last pull; 0: never. */
  readonly ttlMs: number;
  /** A cached tag is re-checked upstream at most this often. */
  readonly revalidateMs: number;
}

export interface ProxyConfig {
  /** `remoteurl`: registry:2's single-upstream form (the whole registry is a mirror); `upstreams`: Berth's. */
  readonly form: 'remoteurl' | 'upstreams';
  readonly upstreams: readonly UpstreamConfig[];
  /** `proxy.budget`: bytes all cached content may take; undefined: no limit. */
  readonly budgetBytes: number | undefined;
}

/** registry:2's proxy.ttl default. */
export const DEFAULT_PROXY_TTL_MS = 168 * 3_600_000;
/** How often a cached tag is re-checked upstream when `revalidate` is unset. */
export const DEFAULT_REVALIDATE_MS = 30_000;

/** The keys of one `proxy.upstreams[]` entry. */
const UPSTREAM_KEYS: ReadonlySet<string> = new Set([
  'prefix', 'remoteurl', 'default', 'hosts', 'username', 'password', 'credentialsfile', 'ttl', 'revalidate',
]);

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const PREFIX_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);

/** `proxy`, or nothing when neither `proxy.remoteurl` nor `proxy.upstreams` is set. */
export function readProxy(root: RawMap): { proxy?: ProxyConfig } {
  const remoteurl = readString(root, 'proxy.remoteurl') || undefined;
  const upstreamsRaw = lookup(root, 'proxy.upstreams');
  const listed = upstreamsRaw !== undefined && !(Array.isArray(upstreamsRaw) && upstreamsRaw.length === 0);
  if (remoteurl !== undefined && listed) {
    throw new ConfigError('proxy.remoteurl', 'give proxy.remoteurl (one upstream, registry:2) or proxy.upstreams, not both');
  }
  const budgetBytes = readSize(root, 'proxy.budget');
  if (remoteurl !== undefined) return { proxy: { form: 'remoteurl', upstreams: [readRemoteUrlForm(root, remoteurl)], budgetBytes } };
  if (!listed) {
    for (const key of ['username', 'password', 'ttl']) {
      if (readString(root, `proxy.${key}`)) throw new ConfigError(`proxy.${key}`, 'needs proxy.remoteurl');
    }
    return {};
  }
  if (!Array.isArray(upstreamsRaw)) throw new ConfigError('proxy.upstreams', `expected a list of upstreams, got ${describe(upstreamsRaw)}`);
  const upstreams = upstreamsRaw.map((raw, i) => readUpstream(raw, `proxy.upstreams[${i}]`));
  checkDistinct(upstreams);
  return { proxy: { form: 'upstreams', upstreams, budgetBytes } };
}

function readRemoteUrlForm(root: RawMap, remoteurl: string): UpstreamConfig {
  return {
    prefix: undefined,
    remoteurl: checkUrl(remoteurl, 'proxy.remoteurl'),
    default: true,
    hosts: [],
    username: readString(root, 'proxy.username') || undefined,
    password: readString(root, 'proxy.password') || undefined,
    credentialsfile: undefined,
    ttlMs: readProxyDuration(root, 'proxy.ttl', DEFAULT_PROXY_TTL_MS),
    revalidateMs: DEFAULT_REVALIDATE_MS,
  };
}

function readUpstream(raw: Raw, key: string): UpstreamConfig {
  if (!(raw instanceof Map)) throw new ConfigError(key, `expected a mapping, got ${describe(raw)}`);
  for (const name of raw.keys()) {
    if (!UPSTREAM_KEYS.has(name)) throw new ConfigError(`${key}.${name}`, 'unknown key');
  }
  const prefix = readString(raw, 'prefix');
  if (prefix === undefined || prefix === '') throw new ConfigError(`${key}.prefix`, 'missing; every upstream needs a prefix');
  if (!PREFIX_PATTERN.test(prefix)) throw new ConfigError(`${key}.prefix`, `${JSON.stringify(prefix)} is not a repository name prefix`);
  const remoteurl = readString(raw, 'remoteurl');
  if (remoteurl === undefined || remoteurl === '') throw new ConfigError(`${key}.remoteurl`, 'missing');
  const hostsRaw = lookup(raw, 'hosts');
  const username = readString(raw, 'username') || undefined;
  const credentialsfile = readString(raw, 'credentialsfile') || undefined;
  if (username !== undefined && credentialsfile !== undefined) {
    throw new ConfigError(`${key}.credentialsfile`, 'give username/password or credentialsfile, not both');
  }
  return {
    prefix,
    remoteurl: checkUrl(remoteurl, `${key}.remoteurl`),
    default: readBool(raw, 'default', false),
    hosts: hostsRaw === undefined ? [prefix] : stringList(hostsRaw, `${key}.hosts`),
    username,
    password: readString(raw, 'password') || undefined,
    credentialsfile,
    ttlMs: readProxyDuration(raw, 'ttl', DEFAULT_PROXY_TTL_MS, key),
    revalidateMs: readProxyDuration(raw, 'revalidate', DEFAULT_REVALIDATE_MS, key),
  };
}

/** Prefixes may not nest, hosts may not repeat, and at most one upstream is the default. */
function checkDistinct(upstreams: readonly UpstreamConfig[]): void {
  const hosts = new Map<string, number>();
  upstreams.forEach((u, i) => {
    upstreams.forEach((other, j) => {
      if (j < i && other.prefix !== undefined && u.prefix !== undefined && nests(u.prefix, other.prefix)) {
        throw new ConfigError(`proxy.upstreams[${i}].prefix`, `${JSON.stringify(u.prefix)} overlaps proxy.upstreams[${j}].prefix ${JSON.stringify(other.prefix)}`);
      }
    });
    for (const host of u.hosts) {
      const seen = hosts.get(host);
      if (seen !== undefined) throw new ConfigError(`proxy.upstreams[${i}].hosts`, `${JSON.stringify(host)} also names proxy.upstreams[${seen}]`);
      hosts.set(host, i);
    }
  });
  const defaults = upstreams.flatMap((u, i) => (u.default ? [i] : []));
  if (defaults.length > 1) throw new ConfigError(`proxy.upstreams[${defaults[1] ?? 0}].default`, `only one upstream can be the default (proxy.upstreams[${defaults[0] ?? 0}] is)`);
}

function nests(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/** An absolute http(s) URL with no query or fragment, without its trailing slash. */
function checkUrl(text: string, key: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw new ConfigError(key, `expected an absolute http(s) URL, got ${JSON.stringify(text)}`, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(key, `expected an http or https URL, got ${JSON.stringify(text)}`);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError(key, 'expected scheme://host[:port][/path] without credentials, query or fragment');
  }
  return url.href.replace(/\/+$/, '');
}

/** A duration like `168h`; zero allowed (never, for a ttl), negative refused. */
function readProxyDuration(map: RawMap, key: string, fallback: number, section?: string): number {
  const full = section === undefined ? key : `${section}.${key}`;
  const text = readString(map, key);
  if (text === undefined || text === '') return fallback;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new ConfigError(full, `expected a duration like "168h" or "30s", got ${JSON.stringify(text)}`, { cause: err });
  }
  if (ms < 0) throw new ConfigError(full, `must be zero or more, got ${JSON.stringify(text)}`);
  return ms;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, kib: 2 ** 10, m: 1e6, mb: 1e6, mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30, t: 1e12, tb: 1e12, tib: 2 ** 40,
};

/** A size like `200GiB`, `500MB` or a number of bytes; undefined when absent. */
export function readSize(root: RawMap, key: string): number | undefined {
  const raw = lookup(root, key);
  if (raw === undefined) return undefined;
  const text = raw instanceof Lit ? (typeof raw.value === 'string' ? raw.value : raw.text) : '';
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = SIZE_UNITS[(m?.[2] ?? 'x').toLowerCase()];
  if (m === null || unit === undefined || !(Number(m[1]) > 0)) {
    throw new ConfigError(key, `expected a size like "200GiB" or "500MB", got ${describe(raw)}`);
  }
  return Math.floor(Number(m[1]) * unit);
}
