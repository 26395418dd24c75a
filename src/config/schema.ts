/**
 * Berth's configuration: the keys of registry:2's config.yml that Berth understands, with registry:2's
 * defaults, and CONFIG_KEYS: how each key registry:2 knows is treated (read, ignored or refused).
 * `parse.ts` turns YAML plus REGISTRY_* environment overrides into a frozen Config.
 * Only main.ts and cli/ see this type; every other module takes its own narrow options.
 */

import type { AccessRule } from '../auth/rules.js';

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
  | { readonly driver: 'inmemory' };

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

export interface Config {
  readonly version: '0.1';
  readonly log: { readonly level: LogLevel; readonly formatter: LogFormatter };
  readonly http: {
    /** `host:port` or `:port`, as registry:2 writes it. */
    readonly addr: string;
    /** Secret for the `_state` upload tokens; undefined means one is generated at start. */
    readonly secret: string | undefined;
    /** When true, Location headers are relative paths. */
    readonly relativeurls: boolean;
    /** Base URL (scheme://host[:port]) used for absolute Location headers, if set. */
    readonly host: string | undefined;
    /** registry:2's debug listener (`host:port`); Berth serves `POST /debug/gc` there. Undefined: none. */
    readonly debug: { readonly addr: string | undefined };
  };
  /** Undefined: no authentication, every request is allowed. */
  readonly auth: AuthConfig | undefined;
  readonly storage: StorageConfig & {
    readonly delete: { readonly enabled: boolean };
    readonly maintenance: {
      readonly uploadpurging: UploadPurgingConfig;
      readonly readonly: { readonly enabled: boolean };
      readonly gc: GcConfig;
    };
  };
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
export const SUPPORTED_STORAGE_DRIVERS: readonly string[] = ['filesystem', 'inmemory'];

/** Every storage driver registry:2 knows; the ones Berth lacks are refused by name. */
export const STORAGE_DRIVERS: readonly string[] = [...SUPPORTED_STORAGE_DRIVERS, 's3', 'azure', 'gcs', 'swift', 'oss'];

const UNSAFE = 'unsupported-unless-empty';

/** Every key of registry:2's config.yml (v2.8 and v3) that Berth reads, ignores or refuses. */
export const CONFIG_KEYS: KeySection = {
  version: 'value',
  loglevel: 'ignored',
  log: {
    level: 'value', formatter: 'value',
    fields: 'ignored', hooks: 'ignored', accesslog: 'ignored', reportcaller: 'ignored',
  },
  http: {
    addr: 'value', net: 'value', host: 'value', secret: 'value', relativeurls: 'value',
    prefix: UNSAFE, tls: UNSAFE,
    debug: { addr: 'value', prometheus: 'ignored' }, headers: 'ignored', http2: 'ignored', h2c: 'ignored', draintimeout: 'ignored',
  },
  storage: {
    filesystem: { rootdirectory: 'value', maxthreads: 'ignored' },
    inmemory: {},
    s3: 'unsupported', azure: 'unsupported', gcs: 'unsupported', swift: 'unsupported', oss: 'unsupported',
    delete: { enabled: 'value' },
    maintenance: {
      uploadpurging: { enabled: 'value', age: 'value', interval: 'value', dryrun: 'value' },
      readonly: { enabled: 'value' },
      gc: { enabled: 'value', interval: 'value', graceperiod: 'value', deleteuntagged: 'value', dryrun: 'value' },
    },
    cache: 'ignored', redirect: 'ignored', tag: 'ignored',
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
  proxy: UNSAFE, middleware: UNSAFE,
  notifications: 'ignored', redis: 'ignored', health: 'ignored', reporting: 'ignored',
  validation: 'ignored', compatibility: 'ignored', catalog: 'ignored', tags: 'ignored', policy: 'ignored',
};
