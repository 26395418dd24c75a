/**
 * Berth's configuration: the keys of registry:2's config.yml that Berth understands, with registry:2's
 * defaults, and CONFIG_KEYS: how each key registry:2 knows is treated (read, ignored or refused).
 * `parse.ts` turns YAML plus REGISTRY_* environment overrides into a frozen Config.
 * Only main.ts and cli/ see this type; every other module takes its own narrow options.
 */

import type { AccessRule } from '../auth/rules.js';
import type { NotificationsConfig } from './notifications.js';
import type { ProxyConfig } from './proxy.js';
import type { RedisConfig } from './redis.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** registry:2's `log.formatter` choices; `text` when unset. */
export type LogFormatter = 'text' | 'json' | 'logstash';

export interface UploadPurgingConfig {
  readonly enabled: boolean;
  /** Uploads whose `startedat` is older than this many milliseconds are removed. */
  readonly ageMs: number;
  /** How often purging runs, in milliseconds. */
  readonly intervalMs: number;
  readonly dryrun: boolean;
}

/** Berth's `storage.maintenance.gc`: garbage collection inside the server (DESIGN.md §6). */
export interface GcConfig {
  /** Run on a schedule (every `intervalMs`); `POST /debug/gc` works either way. */
  readonly enabled: boolean;
  readonly intervalMs: number;
  /** Blobs and revisions written or linked more recently than this are never collected. */
  readonly graceperiodMs: number;
  /** Keep only manifests reachable from tags (and their index children and referrers). */
  readonly deleteuntagged: boolean;
  readonly dryrun: boolean;
}

export type StorageConfig =
  | { readonly driver: 'filesystem'; readonly rootdirectory: string }
  | { readonly driver: 'inmemory' }
  | { readonly driver: 's3'; readonly s3: S3StorageConfig };

/** registry:2's `storage.s3` (read by s3.ts); sizes in bytes. */
export interface S3StorageConfig {
  readonly region: string;
  /** Endpoint of an S3-compatible server (Ceph RGW, MinIO); undefined for AWS itself. */
  readonly regionendpoint: string | undefined;
  readonly bucket: string;
  /** Static credentials; undefined means the AWS SDK's default chain (environment, profile, instance role). */
  readonly accesskey: string | undefined;
  readonly secretkey: string | undefined;
  /** Path-style URLs; true by default when `regionendpoint` is set (as registry:2 2.8 always did), else false. */
  readonly forcepathstyle: boolean;
  readonly secure: boolean;
  readonly skipverify: boolean;
  /** Prefix of every key in the bucket. */
  readonly rootdirectory: string;
  readonly chunksize: number;
  readonly storageclass: string;
  readonly objectacl: string;
  readonly multipartcopychunksize: number;
  readonly multipartcopymaxconcurrency: number;
  readonly multipartcopythresholdsize: number;
  readonly usedualstack: boolean;
  readonly accelerate: boolean;
  readonly usefipsendpoint: boolean;
}

/** registry:2's `auth.token`: verify Bearer tokens from an external (or the built-in) token server. */
export interface TokenAuthConfig {
  readonly kind: 'token';
  /** Where clients get tokens: an absolute http(s) URL. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM file with the certificates whose keys may sign tokens. */
  readonly rootcertbundle: string | undefined;
  /** JWKS file with the keys that may sign tokens (registry:2 v3). */
  readonly jwks: string | undefined;
  readonly autoredirect: boolean;
  /** Allowed JWS algorithms; undefined means every asymmetric one. */
  readonly signingalgorithms: readonly string[] | undefined;
}

/** registry:2's `auth.htpasswd`: HTTP Basic against an htpasswd file of bcrypt entries. */
export interface HtpasswdAuthConfig {
  readonly kind: 'htpasswd';
  readonly realm: string;
  readonly path: string;
}

/** Berth's `auth.builtin`: its own token issuer at /auth/token, with users from an htpasswd file. */
export interface BuiltinAuthConfig {
  readonly kind: 'builtin';
  readonly service: string;
  readonly issuer: string;
  /** Absolute URL of the token endpoint, or undefined for `<request base>/auth/token`. */
  readonly realm: string | undefined;
  readonly htpasswd: string;
  /** PEM file of the EC P-256 signing key; created on first start when missing. Undefined: kept in memory. */
  readonly signingkey: string | undefined;
  readonly tokenttlMs: number;
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly rules: readonly AccessRule[];
}

export type AuthConfig = TokenAuthConfig | HtpasswdAuthConfig | BuiltinAuthConfig;

/** registry:2's `http.tls`: serve HTTPS with this certificate, optionally requiring client certificates. */
export interface TlsConfig {
  /** PEM file: the server certificate, then any intermediates. */
  readonly certificate: string;
  /** PEM file: the certificate's private key. */
  readonly key: string;
  /** PEM files of the CAs whose client certificates are accepted; non-empty means every client must present one. */
  readonly clientcas: readonly string[];
  /** Oldest protocol version accepted (registry:2's `minimumtls`). */
  readonly minimumtls: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}

/** registry:2's `health.storagedriver`: a periodic storage check that turns every request into 503 while it fails. */
export interface StorageHealthConfig {
  readonly enabled: boolean;
  readonly intervalMs: number;
  /** Consecutive failed checks before the registry reports itself unhealthy. */
  readonly threshold: number;
}

export interface Config {
  readonly version: '0.1';
  readonly log: {
    readonly level: LogLevel;
    readonly formatter: LogFormatter;
    /** Added to every log line (registry:2's `log.fields`). */
    readonly fields: Readonly<Record<string, string>>;
    /** One line per request at info level, unless disabled. */
    readonly accesslog: { readonly disabled: boolean };
  };
  readonly http: {
    /** `host:port` or `:port`, as registry:2 writes it. */
    readonly addr: string;
    /** Secret for the `_state` upload tokens; undefined means one is generated at start. */
    readonly secret: string | undefined;
    /** When true, Location headers are relative paths. */
    readonly relativeurls: boolean;
    /** Base URL (scheme://host[:port]) used for absolute Location headers, if set. */
    readonly host: string | undefined;
    /**
     * registry:2's `http.prefix`: the path the API is served under (`/registry` serves `/registry/v2/…`),
     * without a trailing slash; '' (the default) serves it at the root.
     */
    readonly prefix: string;
    /** registry:2's debug listener (`host:port`); Berth serves `POST /debug/gc`, health and metrics there. Undefined: none. */
    readonly debug: {
      readonly addr: string | undefined;
      /** Prometheus metrics on the debug listener, at `path`. */
      readonly prometheus: { readonly enabled: boolean; readonly path: string };
    };
    /** Undefined: plain HTTP. */
    readonly tls: TlsConfig | undefined;
    /** Headers added to every response of the registry API, each with its values. */
    readonly headers: Readonly<Record<string, readonly string[]>>;
    /** How long a SIGTERM waits for requests in flight before closing their connections. */
    readonly draintimeoutMs: number;
    /**
     * Berth's `http.workers`: processes serving the API (node:cluster), 1 by default (one process).
     * More than one is refused at load without `redis`, and with inmemory storage.
     */
    readonly workers: number;
  };
  readonly health: { readonly storagedriver: StorageHealthConfig };
  /** Berth's `ui`: the web UI at `/ui/` on the API listener (DESIGN.md §11); on unless `enabled: false`. */
  readonly ui: { readonly enabled: boolean };
  /** Undefined: no authentication, every request is allowed. */
  readonly auth: AuthConfig | undefined;
  /** registry:2's `notifications`; absent when no endpoint is configured. */
  readonly notifications?: NotificationsConfig;
  /** registry:2's `redis` (redis.ts): shared state of replicas; absent when no address is configured. */
  readonly redis?: RedisConfig;
  /** `proxy` (proxy.ts): the pull-through cache; absent when no upstream is configured. */
  readonly proxy?: ProxyConfig;
  readonly storage: StorageConfig & {
    readonly delete: { readonly enabled: boolean };
    /** registry:2's `storage.redirect.disable`: serve blobs through Berth even when the driver could redirect. */
    readonly redirect: { readonly disable: boolean };
    /**
     * `storage.automaticcrossmount` (default true): a mount without `from` links any blob the caller may
     * pull from some repository. False: only a mount with `from` can link; without it, a plain upload.
     */
    readonly automaticcrossmount: boolean;
    readonly maintenance: {
      readonly uploadpurging: UploadPurgingConfig;
      readonly readonly: { readonly enabled: boolean };
      readonly gc: GcConfig;
      /** `storage.maintenance.retention` (retention.ts); absent when no policy is configured. */
      readonly retention?: RetentionConfig;
    };
    /** `storage.immutabletags` (retention.ts): tags that, once set, cannot be moved or deleted. */
    readonly immutabletags: readonly ImmutableTagRule[];
    /** `storage.quotas` (quotas.ts): limits per repository glob, checked when a push writes; [] when absent. */
    readonly quotas: readonly QuotaConfig[];
  };
}

/** One `storage.quotas` entry: limits on the repositories its globs match (at least one limit is set). */
export interface QuotaConfig {
  /** Repository globs (`*` one level, `**` any depth); `["**"]` when not given. */
  readonly repositories: readonly string[];
  /** `storage`: the most bytes those repositories may link together, each distinct blob counted once. */
  readonly storageBytes?: number;
  /** `maxrepositories`: the most repositories the globs may match. */
  readonly maxrepositories?: number;
}

/** One `keeptags` rule of a retention policy (regexes and durations checked at load). */
export interface KeepTagsRule {
  readonly patterns: readonly string[];
  readonly mostrecentlypushed?: number;
  readonly mostrecentlypulled?: number;
  readonly pushedwithinMs?: number;
  readonly pulledwithinMs?: number;
}

/** One retention policy. */
export interface RetentionPolicyConfig {
  /** Repository globs (`*` one level, `**` any depth); `["**"]` when not given. */
  readonly repositories: readonly string[];
  readonly deleteuntagged: boolean;
  readonly deletereferrers: boolean;
  /** Empty: every tag is kept. */
  readonly keeptags: readonly KeepTagsRule[];
}

/** `storage.maintenance.retention`. */
export interface RetentionConfig {
  readonly dryrun: boolean;
  /** Untagged manifests and orphaned referrers pushed more recently are kept; default: the gc grace period. */
  readonly delayMs: number;
  readonly policies: readonly RetentionPolicyConfig[];
}

/** One `storage.immutabletags` rule: tags matching a pattern in repositories matching a glob. */
export interface ImmutableTagRule {
  readonly repositories: readonly string[];
  readonly patterns: readonly string[];
}

export const DEFAULT_ROOT_DIRECTORY = '/var/lib/registry';

/** `http.addr` when a file gives none (registry:2's sample config and Docker image listen on :5000). */
export const DEFAULT_HTTP_ADDR = ':5000';

/** registry:2's upload purging defaults: on, every 24h, removing uploads started over 168h ago. */
export const DEFAULT_UPLOAD_PURGING: UploadPurgingConfig = Object.freeze({
  enabled: true,
  ageMs: 168 * 3_600_000,
  intervalMs: 24 * 3_600_000,
  dryrun: false,
});

/** Berth's collector defaults: off (on demand only), every 24h, sparing what is younger than 1h. */
export const DEFAULT_GC: GcConfig = Object.freeze({
  enabled: false,
  intervalMs: 24 * 3_600_000,
  graceperiodMs: 3_600_000,
  deleteuntagged: false,
  dryrun: false,
});

/** How long SIGTERM waits for requests in flight when `http.draintimeout` is unset (within Kubernetes' 30 s grace). */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25_000;

/** Berth checks storage by default (registry:2 only when configured), every 10 s, unhealthy after 3 failures. */
export const DEFAULT_STORAGE_HEALTH: StorageHealthConfig = Object.freeze({ enabled: true, intervalMs: 10_000, threshold: 3 });

/**
 * What Berth loads when given no file (`npm start`): registry:2's development config, deletes enabled.
 */
export const DEVELOPMENT_DOCUMENT = `version: 0.1
http:
  addr: ':5000'
storage:
  filesystem:
    rootdirectory: ./data
  delete:
    enabled: true
`;

/**
 * How parse.ts treats a key of registry:2's config.yml. `value`: Berth reads it into Config.
 * `ignored`: Berth does not act on it and ignoring it is harmless; accepted with one warning.
 * `unsupported`: refused, because ignoring it would be unsafe (e.g. an open registry instead of an
 * authenticated one, or another storage backend). `unsupported-unless-empty`: refused unless its value
 * is empty (null, "", {} or []), which means nothing. An object is a section of further keys; any key
 * not listed is an error.
 */
export type KeySpec = 'value' | 'ignored' | 'unsupported' | 'unsupported-unless-empty' | KeySection;

/** A section of config.yml: its known keys. */
export interface KeySection {
  readonly [key: string]: KeySpec;
}

/** Storage drivers Berth implements; `storage` must name exactly one. */
export const SUPPORTED_STORAGE_DRIVERS: readonly string[] = ['filesystem', 'inmemory', 's3'];

/** Every storage driver registry:2 knows; the ones Berth lacks are refused by name. */
export const STORAGE_DRIVERS: readonly string[] = [...SUPPORTED_STORAGE_DRIVERS, 'azure', 'gcs', 'swift', 'oss'];

const UNSAFE = 'unsupported-unless-empty';

/** Every key of registry:2's config.yml (v2.8 and v3) that Berth reads, ignores or refuses. */
export const CONFIG_KEYS: KeySection = {
  version: 'value',
  loglevel: 'ignored',
  log: {
    level: 'value', formatter: 'value', fields: 'value', accesslog: { disabled: 'value' },
    hooks: 'ignored', reportcaller: 'ignored',
  },
  http: {
    addr: 'value', net: 'value', host: 'value', secret: 'value', relativeurls: 'value',
    prefix: 'value',
    tls: { certificate: 'value', key: 'value', clientcas: 'value', minimumtls: 'value', ciphersuites: 'ignored', letsencrypt: UNSAFE },
    debug: { addr: 'value', prometheus: { enabled: 'value', path: 'value' } },
    headers: 'value', http2: 'ignored', h2c: 'ignored', draintimeout: 'value', workers: 'value',
  },
  storage: {
    filesystem: { rootdirectory: 'value', maxthreads: 'ignored' },
    inmemory: {},
    s3: {
      region: 'value', regionendpoint: 'value', bucket: 'value', accesskey: 'value', secretkey: 'value',
      forcepathstyle: 'value', secure: 'value', skipverify: 'value', v4auth: 'value', rootdirectory: 'value',
      chunksize: 'value', storageclass: 'value', objectacl: 'value', encrypt: 'value', keyid: UNSAFE,
      multipartcopychunksize: 'value', multipartcopymaxconcurrency: 'value', multipartcopythresholdsize: 'value',
      usedualstack: 'value', accelerate: 'value', usefipsendpoint: 'value', redirectendpoint: UNSAFE,
      useragent: 'ignored', loglevel: 'ignored',
    },
    azure: 'unsupported', gcs: 'unsupported', swift: 'unsupported', oss: 'unsupported',
    delete: { enabled: 'value' },
    maintenance: {
      uploadpurging: { enabled: 'value', age: 'value', interval: 'value', dryrun: 'value' },
      readonly: { enabled: 'value' },
      gc: { enabled: 'value', interval: 'value', graceperiod: 'value', deleteuntagged: 'value', dryrun: 'value' },
      retention: { dryrun: 'value', delay: 'value', policies: 'value' },
    },
    immutabletags: 'value',
    quotas: 'value',
    cache: 'ignored', redirect: { disable: 'value' }, tag: 'ignored', automaticcrossmount: 'value',
  },
  auth: {
    token: {
      realm: 'value', service: 'value', issuer: 'value', rootcertbundle: 'value', jwks: 'value',
      autoredirect: 'value', autoredirectpath: 'unsupported-unless-empty', signingalgorithms: 'value',
    },
    htpasswd: { realm: 'value', path: 'value' },
    builtin: {
      service: 'value', issuer: 'value', realm: 'value', htpasswd: 'value', signingkey: 'value',
      tokenttl: 'value', groups: 'value', rules: 'value',
    },
    silly: 'unsupported', none: 'ignored',
  },
  // registry:2's proxy keys and Berth's upstreams (proxy.ts); v3's credential helper is not supported.
  proxy: {
    remoteurl: 'value', username: 'value', password: 'value', ttl: 'value', exec: UNSAFE,
    upstreams: 'value', budget: 'value',
  },
  middleware: UNSAFE,
  notifications: { endpoints: 'value', events: { includereferences: 'value' } },
  redis: {
    addr: 'value', addrs: 'value', username: 'value', password: 'value', db: 'value',
    dialtimeout: 'value', readtimeout: 'value', writetimeout: 'value',
    tls: { enabled: 'value', certificate: UNSAFE, key: UNSAFE, rootcas: UNSAFE },
    pool: { maxidle: 'value', maxactive: 'value', idletimeout: 'value' },
    // registry:2 v3's go-redis tuning: harmless to ignore. Sentinel and cluster routing are not.
    clientname: 'ignored', protocol: 'ignored', maxretries: 'ignored', minretrybackoff: 'ignored', maxretrybackoff: 'ignored',
    contexttimeoutenabled: 'ignored', poolfifo: 'ignored', poolsize: 'ignored', pooltimeout: 'ignored', minidleconns: 'ignored',
    maxidleconns: 'ignored', maxactiveconns: 'ignored', connmaxidletime: 'ignored', connmaxlifetime: 'ignored',
    disableidentity: 'ignored', identitysuffix: 'ignored', unstableresp3: 'ignored',
    mastername: UNSAFE, sentinelusername: UNSAFE, sentinelpassword: UNSAFE, maxredirects: UNSAFE, readonly: UNSAFE,
    routebylatency: UNSAFE, routerandomly: UNSAFE,
  },
  health: { storagedriver: { enabled: 'value', interval: 'value', threshold: 'value' }, file: 'ignored', http: 'ignored', tcp: 'ignored' },
  ui: { enabled: 'value' },
  reporting: 'ignored',
  validation: 'ignored', compatibility: 'ignored', catalog: 'ignored', tags: 'ignored', policy: 'ignored',
};
