/**
 * Shared by the config tests: write YAML configuration files into a temporary directory, load them
 * with `loadConfig`, and capture the warnings or the ConfigError. Free of vitest, so the tests
 * register the hooks themselves: `beforeAll(files.open)` and `afterAll(files.close)`. A test of one
 * section uses `sectionLoader`, which puts the section after a minimal inmemory document.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../parse.js';
import { ConfigError } from '../raw.js';
import type { Config } from '../schema.js';

/** What a load returned, with the warnings it gave. */
export interface Loaded {
  readonly config: Config;
  readonly warnings: string[];
}

/** A temporary directory of configuration files and the loads that read them. */
export interface ConfigFiles {
  /** The directory. @throws Error before `open()`. */
  readonly dir: string;
  /** Creates the directory. */
  open(): Promise<void>;
  /** Removes the directory and everything in it. */
  close(): Promise<void>;
  /** Writes `text` to a new file in the directory and returns its path. */
  write(text: string): Promise<string>;
  /** Loads `text` as the file (undefined: no file) with the environment `env`, collecting warnings. */
  load(text: string | undefined, env?: Record<string, string>): Promise<Loaded>;
  /** Loads as `load` does and returns the ConfigError it must throw. @throws Error when it throws none or another error. */
  loadError(text: string | undefined, env?: Record<string, string>): Promise<ConfigError>;
}

/** Configuration files in a directory under the OS temp dir whose name starts with `prefix`. */
export function configFiles(prefix: string): ConfigFiles {
  let dir: string | undefined;
  let seq = 0;
  const directory = (): string => {
    if (dir === undefined) throw new Error('configFiles: open() first');
    return dir;
  };
  const write = async (text: string): Promise<string> => {
    seq += 1;
    const path = join(directory(), `config-${seq}.yml`);
    await writeFile(path, text);
    return path;
  };
  const load = async (text: string | undefined, env: Record<string, string> = {}): Promise<Loaded> => {
    const warnings: string[] = [];
    const path = text === undefined ? undefined : await write(text);
    const config = await loadConfig({ file: path, env, warn: (msg) => warnings.push(msg) });
    return { config, warnings };
  };
  return {
    get dir() {
      return directory();
    },
    async open() {
      dir = await mkdtemp(join(tmpdir(), prefix));
    },
    async close() {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    },
    write,
    load,
    async loadError(text, env = {}) {
      const err: unknown = await load(text, env).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(err)}`);
      return err;
    },
  };
}

/** A minimal valid document (inmemory storage) that a section under test is appended to. */
export const INMEMORY_BASE = 'version: 0.1\nstorage:\n  inmemory: {}\n';

/** What a section load returned: the section `K` of the Config, and the warnings. */
export type SectionLoaded<K extends keyof Config> = Pick<Config, K> & { readonly warnings: string[] };

/** Loads of `INMEMORY_BASE` followed by a section's YAML, for the tests of section `key`. */
export interface SectionLoader<K extends keyof Config> {
  /** Loads the section with the environment `env`, collecting warnings. */
  load(section: string, env?: Record<string, string>): Promise<SectionLoaded<K>>;
  /** Loads the section and returns the message of the ConfigError it must throw. @throws Error when it throws none or another error. */
  errorOf(section: string): Promise<string>;
}

/** Section loads through `files` that pick `key` out of the Config. */
export function sectionLoader<K extends keyof Config>(files: ConfigFiles, key: K): SectionLoader<K> {
  return {
    async load(section, env = {}) {
      const { config, warnings } = await files.load(`${INMEMORY_BASE}${section}`, env);
      // A computed key widens to a string index; it is exactly `key` here.
      return { [key]: config[key], warnings } as SectionLoaded<K>;
    },
    async errorOf(section) {
      return (await files.loadError(`${INMEMORY_BASE}${section}`)).message;
    },
  };
}
