/**
 * Loads Berth's configuration: a YAML file in registry:2's config.yml format, then REGISTRY_*
 * environment overrides on top, into a deeply frozen Config.
 *
 * The pipeline: YAML text → a raw tree (maps, lists, and scalars that remember the text they were
 * written as, so `secret: 0123` stays "0123") → environment overrides written into that tree in name
 * order, as registry:2's configuration/parser.go applies them → a check of every key against CONFIG_KEYS (schema.ts)
 * (unknown: error; unsafe to ignore: error; harmless: one warning) → typed reads with registry:2's
 * defaults. Every problem is one ConfigError naming the dotted key. YAML is read as 1.1 (`yes` is a
 * boolean), like registry:2's gopkg.in/yaml.v2.
 */
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import {
  CONFIG_KEYS, DEFAULT_GC, DEFAULT_HTTP_ADDR, DEFAULT_ROOT_DIRECTORY, DEFAULT_UPLOAD_PURGING, DEVELOPMENT_DOCUMENT,
  STORAGE_DRIVERS, SUPPORTED_STORAGE_DRIVERS,
} from './schema.js';
import type {
  Config, GcConfig, KeySection, KeySpec, LogFormatter, LogLevel, StorageConfig, UploadPurgingConfig,
} from './schema.js';
import { readAuth } from './auth.js';
import { readNotifications } from './notifications.js';
import { readProxy } from './proxy.js';
import { readQuotas } from './quotas.js';
import { readImmutableTags, readRetention } from './retention.js';
import { readRedis } from './redis.js';
import { readDrainTimeout, readHeaders, readPrefix, readPrometheus, readTls, readWorkers } from './http.js';
import { readAccessLog, readLogFields, readStorageHealth } from './observability.js';
import { readS3 } from './s3.js';
import {
  ConfigError, Lit, NULL, type Raw, type RawMap, describe, isEmpty, lookup, readBool, readChoice, readDuration, readString,
} from './raw.js';
import { nearest } from './suggest.js';


/** Options of loadConfig. */
export interface LoadConfigOptions {
  /** The config file; when undefined, `env.REGISTRY_CONFIGURATION_PATH`, else the built-in development document. */
  file?: string | undefined;
  /** The environment, usually `process.env`; REGISTRY_* variables override the file. */
  env: Record<string, string | undefined>;
  /** Receives one line per accepted-but-ignored key or environment variable; defaults to stderr. */
  warn?: (msg: string) => void;
}

/**
 * Reads, overrides, validates and freezes the configuration.
 * @throws ConfigError for an unreadable file, malformed YAML, an unknown or unsupported key, a wrong type
 *   or a bad value (the key is named), or no storage driver when a file is given.
 */
export async function loadConfig(o: LoadConfigOptions): Promise<Config> {
  const warn = o.warn ?? ((msg: string) => void process.stderr.write(`${msg}\n`));
  const envPath = o.env['REGISTRY_CONFIGURATION_PATH'];
  const file = o.file ?? (envPath === '' ? undefined : envPath);
  const root = file === undefined
    ? parseRoot(DEVELOPMENT_DOCUMENT, '<built-in>')
    : parseRoot(await readConfigFile(file), file);
  normalizeStorage(root);
  const fromEnv = applyEnv(root, o.env, warn);
  try {
    checkSection(root, CONFIG_KEYS, '', warn);
    return deepFreeze(buildConfig(root));
  } catch (err) {
    throw namingTheVariable(err, fromEnv);
  }
}

/**
 * A ConfigError about a key (or something inside a key) that an environment variable set names that
 * variable too: `config: REGISTRY_STORAGE_DELETE_ENABLED (storage.delete.enabled): …`.
 */
function namingTheVariable(err: unknown, fromEnv: ReadonlyMap<string, string>): unknown {
  if (!(err instanceof ConfigError)) return err;
  let found: [string, string] | undefined; // the longest key that holds the one at fault
  for (const [key, name] of fromEnv) {
    const holds = err.key === key || err.key.startsWith(`${key}.`) || err.key.startsWith(`${key}[`);
    if (holds && key.length > (found?.[0].length ?? -1)) found = [key, name];
  }
  if (found === undefined) return err;
  const problem = err.message.slice(`config: ${err.key}: `.length);
  return new ConfigError(err.key, problem, { cause: err, variable: found[1] });
}


// ---- The raw tree ----

const MAX_DEPTH = 64;

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = READ_ERRORS[code] ?? (err instanceof Error ? err.message : String(err));
    throw new ConfigError(file, `cannot read the configuration file: ${why}`, { cause: err });
  }
}
const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory',
};

/** Parses a whole document, which must be a mapping (or empty). */
function parseRoot(text: string, source: string): RawMap {
  const doc = parseDocument(text, { version: '1.1' });
  const err = doc.errors[0];
  if (err !== undefined) {
    const pos = err.linePos?.[0];
    const what = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
    throw new ConfigError(source, `invalid YAML${where}: ${what}`, { cause: err });
  }
  const root = toRaw(doc.contents, doc, source, 0);
  if (root instanceof Map) return root;
  if (root instanceof Lit && root.value === null) return new Map();
  throw new ConfigError(source, `expected a mapping at the top level, got ${describe(root)}`);
}

function toRaw(node: unknown, doc: Document, source: string, depth: number): Raw {
  if (depth > MAX_DEPTH) throw new ConfigError(source, 'YAML nested too deeply (or a recursive alias)');
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (target === undefined) throw new ConfigError(source, `unresolved YAML alias *${node.source}`);
    return toRaw(target, doc, source, depth + 1);
  }
  if (isScalar(node)) return new Lit(node.value, node.source ?? String(node.value));
  if (isSeq(node)) return node.items.map((item) => toRaw(item, doc, source, depth + 1));
  if (isMap(node)) {
    const map: RawMap = new Map();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? (pair.key.source ?? String(pair.key.value)) : String(pair.key);
      map.set(key, toRaw(pair.value, doc, source, depth + 1));
    }
    return map;
  }
  return NULL;
}

/** An environment value is a YAML scalar (or flow collection); text that is not YAML stays a string. */
function envValue(text: string): Raw {
  const doc = parseDocument(text, { version: '1.1' });
  if (doc.errors.length > 0) return new Lit(text, text);
  try {
    return toRaw(doc.contents, doc, '<env>', 0);
  } catch {
    return new Lit(text, text);
  }
}


// ---- Environment overrides ----

/**
 * registry:2's scheme: REGISTRY_HTTP_ADDR sets http.addr. Names are applied in sorted order, so
 * REGISTRY_STORAGE (a driver name) comes before REGISTRY_STORAGE_DELETE_ENABLED.
 */
function applyEnv(root: RawMap, env: Record<string, string | undefined>, warn: (msg: string) => void): Map<string, string> {
  const applied = new Map<string, string>();
  const names = Object.keys(env)
    .filter((name) => name.startsWith('REGISTRY_') && name !== 'REGISTRY_CONFIGURATION_PATH')
    .sort();
  for (const name of names) {
    const text = env[name];
    if (text === undefined) continue;
    const path = name.slice('REGISTRY_'.length).toLowerCase().split('_');
    if (!isKnownPath(path)) {
      warn(`config: ${name}: ignored: environment variable names no configuration key`);
      continue;
    }
    const value = envValue(text);
    if (path.length === 1 && path[0] === 'storage' && value instanceof Lit && value.value !== null) {
      try {
        selectDriver(root, value.text);
      } catch (err) {
        throw namingTheVariable(err, new Map([['storage', name]]));
      }
    } else {
      setIn(root, path, value);
      applied.set(path.join('.'), name);
    }
  }
  return applied;
}

/** True when the path names a key, or lies inside a key whose contents Berth does not inspect. */
function isKnownPath(path: readonly string[]): boolean {
  let spec: KeySpec = CONFIG_KEYS;
  for (const segment of path) {
    if (typeof spec !== 'object') return spec !== 'value';
    const child = childSpec(spec, segment);
    if (child === undefined) return false;
    spec = child;
  }
  return true;
}

function setIn(root: RawMap, path: readonly string[], value: Raw): void {
  let map = root;
  for (const segment of path.slice(0, -1)) {
    const next = map.get(segment);
    if (next instanceof Map) {
      map = next;
    } else {
      const fresh: RawMap = new Map();
      map.set(segment, fresh);
      map = fresh;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) map.set(last, value);
}

/** `storage: inmemory` (file) or REGISTRY_STORAGE=inmemory: that driver replaces any configured one. */
function selectDriver(root: RawMap, name: string): void {
  if (!STORAGE_DRIVERS.includes(name)) {
    throw new ConfigError('storage', `unknown storage driver ${JSON.stringify(name)}`);
  }
  let storage = root.get('storage');
  if (!(storage instanceof Map)) {
    storage = new Map();
    root.set('storage', storage);
  }
  for (const driver of STORAGE_DRIVERS) storage.delete(driver);
  storage.set(name, NULL);
}

function normalizeStorage(root: RawMap): void {
  const storage = root.get('storage');
  if (storage instanceof Lit && storage.value !== null) selectDriver(root, storage.text);
}

// ---- Key check ----

function childSpec(section: KeySection, key: string): KeySpec | undefined {
  return Object.hasOwn(section, key) ? section[key] : undefined;
}

function checkSection(raw: Raw | undefined, section: KeySection, key: string, warn: (msg: string) => void): void {
  if (raw === undefined || (raw instanceof Lit && raw.value === null)) return;
  if (!(raw instanceof Map)) throw new ConfigError(key, `expected a mapping, got ${describe(raw)}`);
  for (const [name, value] of raw) {
    const full = key === '' ? name : `${key}.${name}`;
    const spec = childSpec(section, name);
    if (spec === undefined) {
      const near = nearest(name, Object.keys(section));
      throw new ConfigError(full, `unknown key${near === undefined ? '' : ` (did you mean ${key === '' ? near : `${key}.${near}`}?)`}`);
    }
    if (typeof spec === 'object') checkSection(value, spec, full, warn);
    else if (spec === 'ignored') warn(`config: ${full}: ignored: not supported yet by Berth`);
    else if (spec === 'unsupported' || (spec === 'unsupported-unless-empty' && !isEmpty(value))) {
      throw new ConfigError(full, 'not supported yet by Berth');
    }
  }
}


const FORMATTERS: readonly LogFormatter[] = ['text', 'json', 'logstash'];

function buildConfig(root: RawMap): Config {
  const redis = readRedis(root);
  const storage = readStorage(root);
  return {
    version: readVersion(root),
    log: {
      level: readLogLevel(root),
      formatter: readChoice<LogFormatter>(root, 'log.formatter', FORMATTERS, 'text'),
      fields: readLogFields(root),
      accesslog: readAccessLog(root),
    },
    http: {
      addr: readAddr(root),
      secret: readString(root, 'http.secret') || undefined,
      relativeurls: readBool(root, 'http.relativeurls', false),
      host: readHost(root),
      prefix: readPrefix(root),
      debug: { addr: readDebugAddr(root), prometheus: readPrometheus(root) },
      tls: readTls(root),
      headers: readHeaders(root),
      draintimeoutMs: readDrainTimeout(root),
      workers: readWorkers(root, { redis: redis.redis !== undefined, driver: storage.driver }),
    },
    health: { storagedriver: readStorageHealth(root) },
    ui: { enabled: readBool(root, 'ui.enabled', true) },
    auth: readAuth(root),
    ...readNotifications(root),
    ...redis,
    ...readProxy(root),
    storage,
  };
}

function readVersion(root: RawMap): '0.1' {
  const raw = lookup(root, 'version');
  if (raw === undefined) throw new ConfigError('version', 'missing; expected 0.1');
  if (readString(root, 'version') !== '0.1') throw new ConfigError('version', `expected 0.1, got ${describe(raw)}`);
  return '0.1';
}

function readLogLevel(root: RawMap): LogLevel {
  const level = readString(root, 'log.level')?.toLowerCase();
  if (level === undefined) return 'info';
  if (level === 'panic' || level === 'fatal') return 'error';
  if (level === 'trace') return 'debug'; // registry:2 (logrus) takes trace; Berth logs nothing finer than debug
  const levels: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
  const known = levels.find((l) => l === level);
  if (known !== undefined) return known;
  throw new ConfigError('log.level', `expected one of ${levels.join(', ')}, got ${JSON.stringify(level)}`);
}

const ADDR = /^(?:\[[0-9A-Za-z:.%]+\]|[^:[\]\s]*):(\d+)$/;

/** Only `tcp` (or unset): `unix` would make http.addr a socket path. */
function checkNet(root: RawMap): void {
  const net = readString(root, 'http.net') ?? 'tcp';
  if (net === 'unix') throw new ConfigError('http.net', 'unix sockets are not supported yet by Berth');
  if (net !== 'tcp' && net !== '') throw new ConfigError('http.net', `expected tcp, got ${JSON.stringify(net)}`);
}

/** `host:port` or `:port` (IPv6 hosts in brackets), kept as written. */
function readAddr(root: RawMap): string {
  checkNet(root);
  return checkAddr('http.addr', readString(root, 'http.addr') ?? DEFAULT_HTTP_ADDR);
}

/** `http.debug.addr`: like http.addr; unset or empty means no debug listener. */
function readDebugAddr(root: RawMap): string | undefined {
  const addr = readString(root, 'http.debug.addr');
  return addr === undefined || addr === '' ? undefined : checkAddr('http.debug.addr', addr);
}

function checkAddr(key: string, addr: string): string {
  const port = ADDR.exec(addr)?.[1];
  if (port === undefined) throw new ConfigError(key, `expected host:port, got ${JSON.stringify(addr)}`);
  if (Number(port) > 65535) {
    throw new ConfigError(key, `port must be 0 to 65535, got ${JSON.stringify(addr)}`);
  }
  return addr;
}

/** An absolute http(s) URL, kept as its origin: registry:2 ignores any path, so does Berth. */
function readHost(root: RawMap): string | undefined {
  const host = readString(root, 'http.host');
  if (host === undefined || host === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(host);
  } catch {
    url = undefined;
  }
  if (url === undefined || !['http:', 'https:'].includes(url.protocol) || url.hostname === '') {
    const problem = `expected an absolute http(s) URL like https://registry.example.com, got ${JSON.stringify(host)}`;
    throw new ConfigError('http.host', problem);
  }
  return url.origin;
}

function readStorage(root: RawMap): Config['storage'] {
  return {
    ...readDriver(root),
    delete: { enabled: readBool(root, 'storage.delete.enabled', false) },
    redirect: { disable: readBool(root, 'storage.redirect.disable', false) },
    automaticcrossmount: readBool(root, 'storage.automaticcrossmount', true),
    maintenance: {
      uploadpurging: readUploadPurging(root),
      readonly: { enabled: readBool(root, 'storage.maintenance.readonly.enabled', false) },
      gc: readGc(root),
      ...readRetention(root, readGc(root).graceperiodMs),
    },
    immutabletags: readImmutableTags(root),
    quotas: readQuotas(root),
  };
}

function readDriver(root: RawMap): StorageConfig {
  const storage = lookup(root, 'storage');
  const names = storage instanceof Map ? [...storage.keys()].filter((k) => SUPPORTED_STORAGE_DRIVERS.includes(k)) : [];
  if (names.length === 0) throw new ConfigError('storage', 'no storage driver configured');
  if (names.length > 1) {
    throw new ConfigError('storage', `more than one storage driver configured: ${names.join(', ')}`);
  }
  if (names[0] === 'inmemory') return { driver: 'inmemory' };
  if (names[0] === 's3') return { driver: 's3', s3: readS3(root) };
  const rootdirectory = readString(root, 'storage.filesystem.rootdirectory') ?? DEFAULT_ROOT_DIRECTORY;
  if (rootdirectory === '') throw new ConfigError('storage.filesystem.rootdirectory', 'must not be empty');
  return { driver: 'filesystem', rootdirectory };
}

function readUploadPurging(root: RawMap): UploadPurgingConfig {
  const key = 'storage.maintenance.uploadpurging';
  return {
    enabled: readBool(root, `${key}.enabled`, DEFAULT_UPLOAD_PURGING.enabled),
    ageMs: readDuration(root, `${key}.age`, DEFAULT_UPLOAD_PURGING.ageMs, { positive: false }),
    intervalMs: readDuration(root, `${key}.interval`, DEFAULT_UPLOAD_PURGING.intervalMs, { positive: true }),
    dryrun: readBool(root, `${key}.dryrun`, DEFAULT_UPLOAD_PURGING.dryrun),
  };
}

function readGc(root: RawMap): GcConfig {
  const key = 'storage.maintenance.gc';
  return {
    enabled: readBool(root, `${key}.enabled`, DEFAULT_GC.enabled),
    intervalMs: readDuration(root, `${key}.interval`, DEFAULT_GC.intervalMs, { positive: true }),
    graceperiodMs: readDuration(root, `${key}.graceperiod`, DEFAULT_GC.graceperiodMs, { positive: false }),
    deleteuntagged: readBool(root, `${key}.deleteuntagged`, DEFAULT_GC.deleteuntagged),
    dryrun: readBool(root, `${key}.dryrun`, DEFAULT_GC.dryrun),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
