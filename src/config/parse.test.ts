import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './parse.js';
import { ConfigError, parseDuration } from './raw.js';
import type { Config } from './schema.js';
import { configFiles } from './suite/helpers.js';

const files = configFiles('berth-config-');
beforeAll(files.open);
afterAll(files.close);
const { write: file, load, loadError } = files;

const MINIMAL = 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n';

const HOUR = 3_600_000;
const DEFAULT_PURGING = { enabled: true, ageMs: 168 * HOUR, intervalMs: 24 * HOUR, dryrun: false };
const DEFAULT_GC = { enabled: false, intervalMs: 24 * HOUR, graceperiodMs: HOUR, deleteuntagged: false, dryrun: false };
const DEFAULT_LOG = { level: 'info', formatter: 'text', fields: {}, accesslog: { disabled: false } } as const;
const DEFAULT_HTTP_SERVING = {
  prefix: '',
  debug: { addr: undefined, prometheus: { enabled: true, path: '/metrics' } },
  tls: undefined,
  headers: {},
  draintimeoutMs: 25_000,
  workers: 1,
};
const DEFAULT_HEALTH = { storagedriver: { enabled: true, intervalMs: 10_000, threshold: 3 } };

describe('loadConfig defaults', () => {
  it('serves the built-in development document without a file', async () => {
    const { config, warnings } = await load(undefined);
    expect(config).toEqual({
      version: '0.1',
      log: DEFAULT_LOG,
      http: { addr: ':5000', secret: undefined, relativeurls: false, host: undefined, ...DEFAULT_HTTP_SERVING },
      health: DEFAULT_HEALTH,
      ui: { enabled: true },
      auth: undefined,
      storage: {
        driver: 'filesystem',
        rootdirectory: './data',
        delete: { enabled: true },
        redirect: { disable: false },
        automaticcrossmount: true,
        maintenance: { uploadpurging: DEFAULT_PURGING, readonly: { enabled: false }, gc: DEFAULT_GC },
        immutabletags: [],
        quotas: [],
      },
    } satisfies Config);
    expect(warnings).toEqual([]);
  });

  it('applies registry:2 defaults to a minimal file (delete disabled)', async () => {
    const { config } = await load(MINIMAL);
    expect(config.http.addr).toBe(':5000');
    expect(config.storage).toMatchObject({ driver: 'filesystem', rootdirectory: '/srv/reg', delete: { enabled: false } });
    expect(config.storage.maintenance.uploadpurging).toEqual(DEFAULT_PURGING);
  });

  it('defaults rootdirectory to /var/lib/registry', async () => {
    const { config } = await load('version: "0.1"\nstorage:\n  filesystem:\n');
    expect(config.storage).toMatchObject({ driver: 'filesystem', rootdirectory: '/var/lib/registry' });
  });

  it.each([
    ['storage:\n  inmemory: {}\n'],
    ['storage:\n  inmemory:\n'],
    ['storage: inmemory\n'],
  ])('accepts inmemory as %j', async (storage) => {
    const { config } = await load(`version: 0.1\n${storage}`);
    expect(config.storage.driver).toBe('inmemory');
  });

  it('returns a deeply frozen Config', async () => {
    const { config } = await load(MINIMAL);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.storage.maintenance.uploadpurging)).toBe(true);
    expect(Object.isFrozen(config.http)).toBe(true);
  });
});

describe('loadConfig reads every key', () => {
  it('reads a full file', async () => {
    const { config } = await load(`version: 0.1
log: {level: DEBUG, formatter: json}
http:
  addr: 127.0.0.1:5055
  net: tcp
  secret: 0123
  relativeurls: yes
  host: https://registry.example.com:8443/ignored/path
storage:
  filesystem: {rootdirectory: /data}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false, age: 2h, interval: 30m, dryrun: true}
    readonly: {enabled: true}
    gc: {enabled: true, interval: 6h, graceperiod: 10m, deleteuntagged: true, dryrun: true}
`);
    expect(config.log).toEqual({ ...DEFAULT_LOG, level: 'debug', formatter: 'json' });
    expect(config.http).toEqual({
      addr: '127.0.0.1:5055', secret: '0123', relativeurls: true, host: 'https://registry.example.com:8443', ...DEFAULT_HTTP_SERVING,
    });
    expect(config.storage.delete.enabled).toBe(true);
    expect(config.storage.maintenance).toEqual({
      uploadpurging: { enabled: false, ageMs: 2 * HOUR, intervalMs: HOUR / 2, dryrun: true },
      readonly: { enabled: true },
      gc: { enabled: true, intervalMs: 6 * HOUR, graceperiodMs: 10 * 60_000, deleteuntagged: true, dryrun: true },
    });
  });

  it.each([
    ['panic', 'error'], ['fatal', 'error'], ['error', 'error'], ['warn', 'warn'], ['info', 'info'], ['Debug', 'debug'],
  ])('maps log.level %s to %s', async (level, want) => {
    const { config } = await load(`${MINIMAL}log:\n  level: ${level}\n`);
    expect(config.log.level).toBe(want);
  });

  it.each([['localhost:5000'], [':0'], ['0.0.0.0:65535'], ['[::1]:5000'], ['[::]:80']])(
    'accepts http.addr %s as written',
    async (addr) => {
      const { config } = await load(`${MINIMAL}http:\n  addr: '${addr}'\n`);
      expect(config.http.addr).toBe(addr);
    },
  );

  it.each([
    ['log.hooks', 'log:\n  hooks: []\n'],
    ['loglevel', 'loglevel: debug\n'],
    ['http.http2', 'http:\n  http2: {disabled: false}\n'],
    ['http.tls.ciphersuites', 'http:\n  tls: {certificate: /c, key: /k, ciphersuites: [TLS_AES_128_GCM_SHA256]}\n'],
    ['health.http', 'health: {http: [{uri: "http://localhost:8080/"}]}\n'],
    ['storage.cache', 'storage:\n  inmemory:\n  cache: {blobdescriptor: inmemory}\n'],
    ['storage.tag', 'storage:\n  inmemory:\n  tag: {concurrencylimit: 8}\n'],
    ['reporting', 'reporting: {}\n'],
    ['validation', 'validation: {disabled: true}\n'],
    ['compatibility', 'compatibility: {}\n'],
    ['catalog', 'catalog: {maxentries: 100}\n'],
  ])('accepts %s and warns that it is ignored', async (key, yaml) => {
    const text = yaml.startsWith('storage:') ? `version: 0.1\n${yaml}` : `${MINIMAL}${yaml}`;
    const { warnings } = await load(text);
    expect(warnings).toEqual([`config: ${key}: ignored: not supported yet by Berth`]);
  });

  it.each([['http:\n  prefix: ""\n'], ['auth: {}\n'], ['http:\n  tls:\n']])(
    'accepts an empty unsupported section %j without warning',
    async (yaml) => {
      expect((await load(`${MINIMAL}${yaml}`)).warnings).toEqual([]);
    },
  );
});

describe('serving and operations keys', () => {
  it('reads http.tls, http.headers, http.draintimeout, http.debug.prometheus, log.fields, log.accesslog and health', async () => {
    const { config, warnings } = await load(`${MINIMAL}log:
  fields: {service: registry, replicas: 3}
  accesslog: {disabled: true}
http:
  tls: {certificate: /c.pem, key: /k.pem, clientcas: [/ca1.pem, /ca2.pem], minimumtls: tls1.3}
  headers:
    X-Content-Type-Options: [nosniff]
    X-Single: one
  draintimeout: 5s
  debug: {addr: ':5001', prometheus: {enabled: false, path: /prom}}
health:
  storagedriver: {enabled: false, interval: 30s, threshold: 5}
`);
    expect(warnings).toEqual([]);
    expect(config.log.fields).toEqual({ service: 'registry', replicas: '3' });
    expect(config.log.accesslog).toEqual({ disabled: true });
    expect(config.http.tls).toEqual({ certificate: '/c.pem', key: '/k.pem', clientcas: ['/ca1.pem', '/ca2.pem'], minimumtls: 'TLSv1.3' });
    expect(config.http.headers).toEqual({ 'X-Content-Type-Options': ['nosniff'], 'X-Single': ['one'] });
    expect(config.http.draintimeoutMs).toBe(5000);
    expect(config.http.debug).toEqual({ addr: ':5001', prometheus: { enabled: false, path: '/prom' } });
    expect(config.health.storagedriver).toEqual({ enabled: false, intervalMs: 30_000, threshold: 5 });
  });

  it('defaults minimumtls to tls1.2 and reads REGISTRY_HTTP_TLS_* overrides', async () => {
    const { config } = await load(MINIMAL, { REGISTRY_HTTP_TLS_CERTIFICATE: '/env/c.pem', REGISTRY_HTTP_TLS_KEY: '/env/k.pem' });
    expect(config.http.tls).toEqual({ certificate: '/env/c.pem', key: '/env/k.pem', clientcas: [], minimumtls: 'TLSv1.2' });
  });

  it.each([
    ['http:\n  tls: {certificate: /c.pem}\n', 'http.tls.key', /missing/],
    ['http:\n  tls: {key: /k.pem}\n', 'http.tls.certificate', /missing/],
    ['http:\n  tls: {clientcas: [/ca.pem]}\n', 'http.tls.clientcas', /needs http.tls.certificate/],
    ['http:\n  tls: {certificate: /c, key: /k, minimumtls: ssl3}\n', 'http.tls.minimumtls', /expected one of tls1.0/],
    ['http:\n  tls: {certificate: /c, key: /k, letsencrypt: {email: a@b}}\n', 'http.tls.letsencrypt', /not supported/],
    ['http:\n  headers: {"Bad Header": [x]}\n', 'http.headers.Bad Header', /not a valid header name/],
    ['http:\n  headers: [x]\n', 'http.headers', /expected a mapping/],
    ['http:\n  draintimeout: soon\n', 'http.draintimeout', /expected a duration/],
    ['http:\n  debug: {prometheus: {path: metrics}}\n', 'http.debug.prometheus.path', /absolute path/],
    ['log:\n  fields: {nested: {a: b}}\n', 'log.fields.nested', /expected a string/],
    ['health:\n  storagedriver: {threshold: 0}\n', 'health.storagedriver.threshold', /at least 1/],
    ['health:\n  storagedriver: {interval: 0s}\n', 'health.storagedriver.interval', /greater than zero/],
    ['http:\n  workers: 0\n', 'http.workers', /whole number from 1 to 64/],
    ['http:\n  workers: two\n', 'http.workers', /whole number from 1 to 64/],
    ['http:\n  workers: 2\n', 'http.workers', /need redis \(redis.addr\).*LevelDB/],
  ])('refuses %j naming %s', async (extra, key, problem) => {
    const err = await loadError(`${MINIMAL}${extra}`);
    expect(err.key).toBe(key);
    expect(err.message).toMatch(problem);
  });
});

describe('http.workers', () => {
  it('is 1 by default and takes more with redis', async () => {
    expect((await load(MINIMAL)).config.http.workers).toBe(1);
    const { config } = await load(`${MINIMAL}http:\n  workers: 4\nredis:\n  addr: 127.0.0.1:6379\n`);
    expect(config.http.workers).toBe(4);
  });

  it('refuses more than one over inmemory storage, whose content each process would keep apart', async () => {
    const err = await loadError('version: 0.1\nstorage:\n  inmemory:\nhttp:\n  workers: 2\nredis:\n  addr: 127.0.0.1:6379\n');
    expect(err.key).toBe('http.workers');
    expect(err.message).toMatch(/cannot share inmemory storage/);
  });
});

describe('REGISTRY_* environment overrides', () => {
  const cases: [string, Record<string, string>, (c: Config) => unknown, unknown][] = [
    ['REGISTRY_HTTP_ADDR', { REGISTRY_HTTP_ADDR: '127.0.0.1:5055' }, (c) => c.http.addr, '127.0.0.1:5055'],
    ['REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY', { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/reg' },
      (c) => c.storage, expect.objectContaining({ driver: 'filesystem', rootdirectory: '/srv/reg' })],
    ['REGISTRY_STORAGE_DELETE_ENABLED', { REGISTRY_STORAGE_DELETE_ENABLED: 'true' }, (c) => c.storage.delete.enabled, true],
    ['REGISTRY_HTTP_SECRET', { REGISTRY_HTTP_SECRET: 's3cr3t' }, (c) => c.http.secret, 's3cr3t'],
    ['REGISTRY_HTTP_WORKERS (with REGISTRY_REDIS_ADDR)', { REGISTRY_HTTP_WORKERS: '3', REGISTRY_REDIS_ADDR: '127.0.0.1:6379' }, (c) => c.http.workers, 3],
    ['REGISTRY_HTTP_SECRET (numeric text kept)', { REGISTRY_HTTP_SECRET: '00123' }, (c) => c.http.secret, '00123'],
    ['REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE', { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2h' },
      (c) => c.storage.maintenance.uploadpurging.ageMs, 2 * HOUR],
    ['REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED', { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false' },
      (c) => c.storage.maintenance.uploadpurging.enabled, false],
    ['REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED', { REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true' },
      (c) => c.storage.maintenance.readonly.enabled, true],
    ['REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD', { REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: '2s' },
      (c) => c.storage.maintenance.gc.graceperiodMs, 2_000],
    ['REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED', { REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'true' },
      (c) => c.storage.maintenance.gc.enabled, true],
    ['REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL', { REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '30s' },
      (c) => c.storage.maintenance.gc.intervalMs, 30_000],
    ['REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED', { REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: 'true' },
      (c) => c.storage.maintenance.gc.deleteuntagged, true],
    ['REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN', { REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN: 'true' },
      (c) => c.storage.maintenance.gc.dryrun, true],
    ['REGISTRY_HTTP_DEBUG_ADDR', { REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:5001' }, (c) => c.http.debug.addr, '127.0.0.1:5001'],
    ['REGISTRY_LOG_LEVEL', { REGISTRY_LOG_LEVEL: 'debug' }, (c) => c.log.level, 'debug'],
    ['REGISTRY_LOG_FORMATTER', { REGISTRY_LOG_FORMATTER: 'logstash' }, (c) => c.log.formatter, 'logstash'],
    ['REGISTRY_HTTP_RELATIVEURLS', { REGISTRY_HTTP_RELATIVEURLS: 'true' }, (c) => c.http.relativeurls, true],
    ['REGISTRY_HTTP_HOST', { REGISTRY_HTTP_HOST: 'http://reg.local:5000' }, (c) => c.http.host, 'http://reg.local:5000'],
    ['REGISTRY_STORAGE=inmemory', { REGISTRY_STORAGE: 'inmemory' }, (c) => c.storage.driver, 'inmemory'],
    // Applied in name order, like registry:2: REGISTRY_STORAGE first, whatever the object's order.
    ['REGISTRY_STORAGE then a filesystem key',
      { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/x', REGISTRY_STORAGE: 'filesystem' },
      (c) => c.storage, expect.objectContaining({ driver: 'filesystem', rootdirectory: '/x' })],
  ];

  it.each(cases)('%s without a file', async (_name, env, pick, want) => {
    expect(pick((await load(undefined, env)).config)).toEqual(want);
  });

  it.each(cases)('%s over a file', async (_name, env, pick, want) => {
    expect(pick((await load(MINIMAL, env)).config)).toEqual(want);
  });

  it('REGISTRY_STORAGE replaces the driver but keeps delete and maintenance', async () => {
    const { config } = await load(`${MINIMAL}  delete: {enabled: true}\n`, { REGISTRY_STORAGE: 'inmemory' });
    expect(config.storage).toMatchObject({ driver: 'inmemory', delete: { enabled: true } });
  });

  it('supplies the storage section a file lacks', async () => {
    const { config } = await load('version: 0.1\n', { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/reg' });
    expect(config.storage).toMatchObject({ driver: 'filesystem', rootdirectory: '/srv/reg' });
  });

  it.each([
    ['REGISTRY_PORT', 'tcp://10.0.0.1:5000'],
    ['REGISTRY_PORT_5000_TCP_ADDR', '10.0.0.1'],
    ['REGISTRY_SERVICE_HOST', '10.0.0.1'],
    ['REGISTRY_HTTP_ADR', ':1'],
    ['REGISTRY_HTTP_ADDR_X', ':1'],
    ['REGISTRY_STORAGE_INMEMORY_SIZE', '5'],
    ['REGISTRY_CONSTRUCTOR', 'x'],
    ['REGISTRY___PROTO__', 'x'],
  ])('ignores %s with a warning', async (name, value) => {
    const { config, warnings } = await load(MINIMAL, { [name]: value });
    expect(config.http.addr).toBe(':5000');
    expect(warnings).toEqual([`config: ${name}: ignored: environment variable names no configuration key`]);
  });

  it('does not treat REGISTRY_CONFIGURATION_PATH as an override', async () => {
    const path = await file(MINIMAL);
    const warnings: string[] = [];
    const config = await loadConfig({ file: path, env: { REGISTRY_CONFIGURATION_PATH: path }, warn: (m) => warnings.push(m) });
    expect(config.storage.driver).toBe('filesystem');
    expect(warnings).toEqual([]);
  });

  it('warns for an ignored key set from the environment', async () => {
    const { warnings } = await load(MINIMAL, { REGISTRY_HTTP_HTTP2_DISABLED: 'true' });
    expect(warnings).toEqual(['config: http.http2: ignored: not supported yet by Berth']);
  });
});

describe('REGISTRY_CONFIGURATION_PATH', () => {
  it('names the file when no argument does', async () => {
    const path = await file('version: 0.1\nstorage: {inmemory: }\n');
    const config = await loadConfig({ env: { REGISTRY_CONFIGURATION_PATH: path }, warn: () => undefined });
    expect(config.storage.driver).toBe('inmemory');
    expect(config.storage.delete.enabled).toBe(false);
  });

  it('loses to an explicit file', async () => {
    const path = await file(MINIMAL);
    const config = await loadConfig({ file: path, env: { REGISTRY_CONFIGURATION_PATH: '/nonexistent.yml' } });
    expect(config.storage.driver).toBe('filesystem');
  });

  it('names a missing file in the error', async () => {
    const err = await loadConfig({ env: { REGISTRY_CONFIGURATION_PATH: '/nonexistent/berth.yml' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('/nonexistent/berth.yml');
  });
});

describe('ConfigError', () => {
  const UP = 'storage.maintenance.uploadpurging';
  const cases: [string, string | undefined, Record<string, string>, string, RegExp][] = [
    ['unknown key', `${MINIMAL}http:\n  adr: ':5000'\n`, {}, 'http.adr', /^config: http\.adr: unknown key \(did you mean http\.addr\?\)$/],
    ['unknown top-level key', `${MINIMAL}storge: {}\n`, {}, 'storge', /unknown key \(did you mean storage\?\)$/],
    ['misspelt driver', 'version: 0.1\nstorage:\n  filesytem: {rootdirectory: /r}\n', {}, 'storage.filesytem',
      /^config: storage\.filesytem: unknown key \(did you mean storage\.filesystem\?\)$/],
    ['inherited property name', `${MINIMAL}constructor: {}\n`, {}, 'constructor', /unknown key$/],
    ['unknown driver parameter', `${MINIMAL}    maxsize: 5\n`, {}, 'storage.filesystem.maxsize', /unknown key$/],
    ['wrong type (bool)', `${MINIMAL}  delete: {enabled: "true"}\n`, {}, 'storage.delete.enabled',
      /expected true or false, got "true"$/],
    ['wrong type (bool from env)', MINIMAL, { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' }, 'storage.delete.enabled',
      /^config: REGISTRY_STORAGE_DELETE_ENABLED \(storage\.delete\.enabled\): expected true or false, got "maybe"$/],
    ['wrong type (section)', `${MINIMAL}http: 5\n`, {}, 'http', /expected a mapping, got 5$/],
    ['wrong type (string)', `${MINIMAL}http:\n  addr: [a]\n`, {}, 'http.addr', /expected a string, got a list$/],
    ['readonly not a map', `${MINIMAL}  maintenance:\n    readonly: true\n`, {}, 'storage.maintenance.readonly',
      /expected a mapping, got true$/],
    ['bad level', `${MINIMAL}log: {level: loud}\n`, {}, 'log.level',
      /expected one of error, warn, info, debug, got "loud"$/],
    ['bad formatter', `${MINIMAL}log: {formatter: xml}\n`, {}, 'log.formatter', /expected one of text, json, logstash/],
    ['bad addr', `${MINIMAL}http: {addr: abc}\n`, {}, 'http.addr', /^config: http\.addr: expected host:port, got "abc"$/],
    ['bad addr from env', MINIMAL, { REGISTRY_HTTP_ADDR: '5000' }, 'http.addr', /^config: REGISTRY_HTTP_ADDR \(http\.addr\): expected host:port, got "5000"$/],
    ['port out of range', `${MINIMAL}http: {addr: ':65536'}\n`, {}, 'http.addr', /port must be 0 to 65535/],
    ['unix socket', `${MINIMAL}http: {net: unix, addr: /run/r.sock}\n`, {}, 'http.net', /not supported yet/],
    ['bad net', `${MINIMAL}http: {net: udp}\n`, {}, 'http.net', /expected tcp, got "udp"$/],
    ['bad host', `${MINIMAL}http: {host: registry.example.com}\n`, {}, 'http.host', /absolute http\(s\) URL/],
    ['ftp host', `${MINIMAL}http: {host: "ftp://x"}\n`, {}, 'http.host', /absolute http\(s\) URL/],
    ['bad version', MINIMAL.replace('0.1', '0.2'), {}, 'version', /expected 0\.1, got 0\.2$/],
    ['missing version', 'storage: inmemory\n', {}, 'version', /missing/],
    ['bad duration', `${MINIMAL}  maintenance: {uploadpurging: {age: 7d}}\n`, {}, `${UP}.age`, /got "7d"$/],
    ['zero interval', `${MINIMAL}  maintenance: {uploadpurging: {interval: 0s}}\n`, {}, `${UP}.interval`, /greater than zero/],
    ['negative age', MINIMAL, { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '-1h' }, `${UP}.age`, /zero or more/],
    ['bad gc graceperiod', `${MINIMAL}  maintenance: {gc: {graceperiod: 1d}}\n`, {}, 'storage.maintenance.gc.graceperiod', /got "1d"$/],
    ['zero gc interval', MINIMAL, { REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: '0' }, 'storage.maintenance.gc.interval', /greater than zero/],
    ['gc enabled not a boolean', `${MINIMAL}  maintenance: {gc: {enabled: sometimes}}\n`, {}, 'storage.maintenance.gc.enabled', /true or false/],
    ['unknown gc key', `${MINIMAL}  maintenance: {gc: {grace: 1h}}\n`, {}, 'storage.maintenance.gc.grace', /unknown key/],
    ['bad debug addr', `${MINIMAL}http: {debug: {addr: localhost}}\n`, {}, 'http.debug.addr', /expected host:port/],
    ['empty rootdirectory', MINIMAL.replace('/srv/reg', '""'), {}, 'storage.filesystem.rootdirectory', /must not be empty/],
    ['two drivers', `${MINIMAL}  inmemory: {}\n`, {}, 'storage', /more than one storage driver configured: filesystem, inmemory$/],
    ['two drivers via env', 'version: 0.1\nstorage: inmemory\n', { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/x' },
      'storage', /inmemory, filesystem$/],
    ['no storage with a file', 'version: 0.1\n', {}, 'storage', /^config: storage: no storage driver configured$/],
    ['storage without a driver', 'version: 0.1\nstorage:\n  delete: {enabled: true}\n', {}, 'storage', /no storage driver/],
    ['unknown driver', 'version: 0.1\nstorage: floppy\n', {}, 'storage', /unknown storage driver "floppy"$/],
    ['unknown driver via env', MINIMAL, { REGISTRY_STORAGE: 'floppy' }, 'storage', /^config: REGISTRY_STORAGE \(storage\): unknown storage driver/],
    ['auth silly', `${MINIMAL}auth:\n  silly: {realm: r, service: s}\n`, {}, 'auth.silly', /^config: auth.silly: not supported yet by Berth$/],
    ['auth htpasswd without path, via env', MINIMAL, { REGISTRY_AUTH_HTPASSWD_REALM: 'r' }, 'auth.htpasswd.path', /required$/],
    ['auth as a string', `${MINIMAL}auth: silly\n`, {}, 'auth', /expected a mapping/],
    ['http.prefix not a path', `${MINIMAL}http:\n  prefix: registry\n`, {}, 'http.prefix', /expected a path like \/registry\//],
    ['proxy.exec', `${MINIMAL}proxy: {remoteurl: https://registry-1.docker.io, exec: {command: helper}}\n`, {}, 'proxy.exec', /not supported yet/],
    ['middleware', `${MINIMAL}middleware: {storage: [{name: cloudfront}]}\n`, {}, 'middleware', /not supported yet/],
    ['s3 without a region', 'version: 0.1\nstorage:\n  s3: {bucket: b}\n', {}, 'storage.s3.region', /missing/],
    ['s3 via env without a bucket', MINIMAL, { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_REGION: 'us-east-1' }, 'storage.s3.bucket', /missing/],
    ['azure', 'version: 0.1\nstorage: azure\n', {}, 'storage.azure', /not supported yet/],
  ];

  it.each(cases)('%s', async (_name, text, env, key, message) => {
    const err = await loadError(text, env);
    expect(err.key).toBe(key);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(message);
    // A key an environment variable set is named with that variable: `config: REGISTRY_HTTP_ADDR (http.addr): …`.
    expect(err.message.startsWith(`config: ${err.variable === undefined ? key : `${err.variable} (${key})`}: `)).toBe(true);
    expect(err.message).not.toContain('\n');
  });

  it.each([
    ['a bad indent', 'version: 0.1\nstorage:\n  inmemory: {}\n delete: x\n', 4],
    ['an unclosed flow map', 'version: 0.1\nhttp: {addr: x\n', 3],
    ['a duplicate key', 'version: 0.1\nversion: 0.1\n', 2],
  ])('reports %s as a YAML error with line and column', async (_name, text, line) => {
    const err = await loadError(text);
    expect(err.key).toMatch(/config-\d+\.yml$/);
    expect(err.message).toMatch(new RegExp(`^config: .*config-\\d+\\.yml: invalid YAML at line ${line}, column \\d+: `));
    expect(err.message).not.toContain('\n');
  });

  it('reports a top level that is not a mapping', async () => {
    expect((await loadError('- a\n- b\n')).message).toMatch(/expected a mapping at the top level, got a list$/);
  });

  it('names a missing file', async () => {
    const path = join(files.dir, 'absent.yml');
    const err = await loadConfig({ file: path, env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ key: path, message: `config: ${path}: cannot read the configuration file: no such file` });
  });

  it('names a directory given as the file', async () => {
    const dir = files.dir;
    const err = await loadConfig({ file: dir, env: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({ key: dir, message: `config: ${dir}: cannot read the configuration file: is a directory` });
  });
});

describe('parseDuration', () => {
  it.each([
    ['168h', 168 * HOUR], ['24h', 24 * HOUR], ['1h30m', 90 * 60_000], ['30s', 30_000], ['500ms', 500],
    ['1.5h', 1.5 * HOUR], ['0', 0], ['-0', 0], ['+5m', 300_000], ['-2m', -120_000], ['.5s', 500], ['1.s', 1000],
    ['2h45m30.5s', (2 * 3600 + 45 * 60 + 30.5) * 1000], ['1500us', 1.5], ['1500\u00b5s', 1.5], ['2000000ns', 2],
    ['1m1ms', 60_001], ['0s', 0],
  ])('%s is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([[''], ['5'], ['h'], ['1d'], ['1 h'], ['1h '], ['1.2.3s'], ['--1s'], ['.s'], ['1H'], ['abc']])(
    'rejects %j',
    (input) => {
      expect(() => parseDuration(input)).toThrow(SyntaxError);
    },
  );
});

describe('config.example.yaml', () => {
  const example = fileURLToPath(new URL('../../config.example.yaml', import.meta.url));

  it('loads without warnings and states the defaults', async () => {
    const warnings: string[] = [];
    const config = await loadConfig({ file: example, env: {}, warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      version: '0.1',
      log: DEFAULT_LOG,
      http: { addr: ':5000', secret: undefined, relativeurls: false, host: undefined, ...DEFAULT_HTTP_SERVING },
      health: DEFAULT_HEALTH,
      ui: { enabled: true },
      auth: undefined,
      storage: {
        driver: 'filesystem',
        rootdirectory: '/var/lib/registry',
        delete: { enabled: false },
        redirect: { disable: false },
        automaticcrossmount: true,
        maintenance: { uploadpurging: DEFAULT_PURGING, readonly: { enabled: false }, gc: DEFAULT_GC },
        immutabletags: [],
        quotas: [],
      },
    } satisfies Config);
  });
});
