/**
 * The parts of the `http` section that shape how Berth serves: TLS, extra response headers, the drain
 * timeout of a graceful shutdown, and the Prometheus endpoint of the debug listener. (Addresses, host
 * and secret are read in parse.ts.)
 */
import { ConfigError, Lit, type RawMap, describe, lookup, readBool, readDuration, readString, readStringList, stringList } from './raw.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, type TlsConfig } from './schema.js';

/** registry:2's `minimumtls` names and the Node protocol versions they mean. */
const TLS_VERSIONS: Readonly<Record<string, TlsConfig['minimumtls']>> = {
  'tls1.0': 'TLSv1', 'tls1.1': 'TLSv1.1', 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3',
};

/** `http.tls`; undefined when no certificate is configured. Both certificate and key are needed. */
export function readTls(root: RawMap): TlsConfig | undefined {
  const certificate = readString(root, 'http.tls.certificate') || undefined;
  const key = readString(root, 'http.tls.key') || undefined;
  const clientcas = readStringList(root, 'http.tls.clientcas') ?? [];
  const minimum = readString(root, 'http.tls.minimumtls') || 'tls1.2';
  if (certificate === undefined && key === undefined) {
    if (clientcas.length > 0) throw new ConfigError('http.tls.clientcas', 'needs http.tls.certificate and http.tls.key');
    return undefined;
  }
  if (certificate === undefined) throw new ConfigError('http.tls.certificate', 'missing: http.tls.key needs its certificate');
  if (key === undefined) throw new ConfigError('http.tls.key', 'missing: http.tls.certificate needs its key');
  const minimumtls = TLS_VERSIONS[minimum.toLowerCase()];
  if (minimumtls === undefined) {
    throw new ConfigError('http.tls.minimumtls', `expected one of ${Object.keys(TLS_VERSIONS).join(', ')}, got ${JSON.stringify(minimum)}`);
  }
  return { certificate, key, clientcas, minimumtls };
}

/** `http.headers`: header name → list of values (a single string is one value), as registry:2 takes them. */
export function readHeaders(root: RawMap): Record<string, readonly string[]> {
  const raw = lookup(root, 'http.headers');
  if (raw === undefined) return {};
  if (!(raw instanceof Map)) throw new ConfigError('http.headers', `expected a mapping of header names to lists of values, got ${describe(raw)}`);
  const headers: Record<string, readonly string[]> = {};
  for (const [name, value] of raw) {
    const key = `http.headers.${name}`;
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new ConfigError(key, 'not a valid header name');
    const values = value instanceof Lit && value.value !== null && typeof value.value !== 'object'
      ? [typeof value.value === 'string' ? value.value : value.text]
      : stringList(value, key);
    if (values.some((v) => /[\r\n\0]/.test(v))) throw new ConfigError(key, 'values must not contain line breaks');
    headers[name] = values;
  }
  return headers;
}

/** The most `http.workers` Berth takes: far more than the cores a registry host has. */
export const MAX_WORKERS = 64;

/**
 * `http.workers` (Berth's, issue #19): how many processes serve the API; 1 (the default) is one process.
 * More than one needs `redis` (the workers coordinate as replicas do) and storage they all see.
 */
export function readWorkers(root: RawMap, o: { readonly redis: boolean; readonly driver: string }): number {
  const key = 'http.workers';
  const raw = lookup(root, key);
  if (raw === undefined || (raw instanceof Lit && raw.value === null)) return 1;
  const n = raw instanceof Lit ? (typeof raw.value === 'number' ? raw.value : Number(raw.text)) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(key, `expected a whole number from 1 to ${MAX_WORKERS}, got ${describe(raw)}`);
  }
  if (n === 1) return 1;
  if (o.driver === 'inmemory') {
    throw new ConfigError(key, `${n} workers cannot share inmemory storage (each process would have its own); use 1, or filesystem or s3 storage with redis`);
  }
  if (!o.redis) {
    throw new ConfigError(
      key,
      `${n} workers need redis (redis.addr): the workers coordinate as replicas do, and without redis the listing index ` +
        '(LevelDB) and the locks ordering pushes against the collector are one process\'s; set redis, or use 1',
    );
  }
  return n;
}

/** `http.draintimeout`: Berth drains for 25 s when unset (registry:2 exits at once). */
export function readDrainTimeout(root: RawMap): number {
  return readDuration(root, 'http.draintimeout', DEFAULT_DRAIN_TIMEOUT_MS, { positive: false });
}

/** `http.debug.prometheus`: on at `/metrics` unless disabled (registry:2 needs `enabled: true`). */
export function readPrometheus(root: RawMap): { enabled: boolean; path: string } {
  const path = readString(root, 'http.debug.prometheus.path') || '/metrics';
  if (!/^\/[\w./-]*$/.test(path)) throw new ConfigError('http.debug.prometheus.path', `expected an absolute path like /metrics, got ${JSON.stringify(path)}`);
  return { enabled: readBool(root, 'http.debug.prometheus.enabled', true), path };
}

/**
 * `http.prefix` (registry:2): the path the API is served under. `/registry/` and `/registry` both mean
 * `/registry/v2/…`; unset, '' or '/' mean the root. Kept without its trailing slash.
 */
export function readPrefix(root: RawMap): string {
  const prefix = readString(root, 'http.prefix') ?? '';
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(trimmed)) {
    throw new ConfigError('http.prefix', `expected a path like /registry/, got ${JSON.stringify(prefix)}`);
  }
  return trimmed;
}
