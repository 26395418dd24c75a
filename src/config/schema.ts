/**
 * Berth's configuration: the keys of registry:2's config.yml that Berth understands, with registry:2's
 * defaults. `parse.ts` turns YAML plus REGISTRY_* environment overrides into a frozen Config.
 * Only main.ts and cli/ see this type; every other module takes its own narrow options.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface UploadPurgingConfig {
  readonly enabled: boolean;
  /** Uploads whose `startedat` is older than this many milliseconds are removed. */
  readonly ageMs: number;
  /** How often purging runs, in milliseconds. */
  readonly intervalMs: number;
  readonly dryrun: boolean;
}

export type StorageConfig =
  | { readonly driver: 'filesystem'; readonly rootdirectory: string }
  | { readonly driver: 'inmemory' };

export interface Config {
  readonly version: '0.1';
  readonly log: { readonly level: LogLevel };
  readonly http: {
    /** `host:port` or `:port`, as registry:2 writes it. */
    readonly addr: string;
    /** Secret for the `_state` upload tokens; undefined means one is generated at start. */
    readonly secret: string | undefined;
    /** When true, Location headers are relative paths. */
    readonly relativeurls: boolean;
    /** Base URL (scheme://host[:port]) used for absolute Location headers, if set. */
    readonly host: string | undefined;
  };
  readonly storage: StorageConfig & {
    readonly delete: { readonly enabled: boolean };
    readonly maintenance: {
      readonly uploadpurging: UploadPurgingConfig;
      readonly readonly: { readonly enabled: boolean };
    };
  };
}

export const DEFAULT_ROOT_DIRECTORY = '/var/lib/registry';
