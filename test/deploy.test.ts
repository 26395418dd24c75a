/**
 * deploy/, checked against Berth itself: every YAML file parses; the image's config (deploy/config.yml)
 * and the Kubernetes ConfigMap's config.yml load with Berth's own loadConfig without a warning; the
 * Deployment's probes name the paths the server serves on the port its config listens on, and a real
 * `serve()` started from the ConfigMap's config answers 200 on each of them (and on the Prometheus
 * scrape path); the Secret reaches `http.secret` through REGISTRY_HTTP_SECRET; the volumes sit where the
 * config's rootdirectory is; uid, gid and port agree with the Dockerfile; every stop grace period outlasts
 * the server's drain timeout; the compose service builds the repository's Dockerfile (and
 * `docker-compose config` accepts the file); the systemd unit runs `node dist/main.js serve` with a
 * writable state directory that is the config's rootdirectory under its environment, is hardened, and
 * passes `systemd-analyze verify` and `security`.
 */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseAddr } from '../src/cli/serve-addr.js';
import { type Serving, serve } from '../src/cli/serve.js';
import { loadConfig } from '../src/config/parse.js';
import type { Config } from '../src/config/schema.js';
import { DEBUG_HEALTH_PATH } from '../src/http/debug.js';
import { LIVENESS_PATH, READINESS_PATH } from '../src/http/middleware/probes.js';
import { raw } from './helpers/oci.js';
import { describeWithTool, freePort, run, runResult, toolAvailable, which } from './helpers/tools.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const DEPLOY = join(REPO_ROOT, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');
const COMPOSE_FILE = join(DEPLOY, 'docker-compose.yml');
const UNIT_FILE = join(DEPLOY, 'systemd', 'berth.service');

// ---- small readers ----

type Json = Record<string, unknown>;

/** Every YAML file under `dir`, recursively. */
async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** The documents of a YAML file. @throws on any YAML error, naming the file. */
async function documents(file: string): Promise<Json[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8'));
  const all = Array.isArray(docs) ? docs : [docs];
  for (const d of all) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return all.map((d) => d.toJS() as Json).filter((d) => d !== null);
}

/** The Dockerfile's instructions of the last stage (the runtime image), `NAME` → arguments, continuation lines joined. */
async function runtimeStage(): Promise<Map<string, string>> {
  const text = (await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8')).replace(/\\\n/g, ' ');
  const stage = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) continue;
    if (m[1] === 'FROM') stage.clear();
    stage.set(m[1], m[2].trim());
  }
  return stage;
}

/** A systemd unit: section → key → every value given (in order; an empty assignment is kept as ''). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const textLine of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = textLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section?.[1] !== undefined) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** A Go/systemd-style duration (`30s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(s: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|min|s|m|h)/g;
  let matched = '';
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * (units[m[2] ?? ''] ?? Number.NaN);
    matched += m[0];
  }
  if (matched !== s.replace(/\s+/g, '')) throw new Error(`not a duration: ${s}`);
  return total;
}

async function configFrom(file: string, env: Record<string, string | undefined> = {}): Promise<{ config: Config; warnings: string[] }> {
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  return { config, warnings };
}

const rootOf = (c: Config): string => (c.storage.driver === 'filesystem' ? c.storage.rootdirectory : '(not filesystem)');

// ---- the tests ----

describe('deploy/: every YAML file', () => {
  it('parses, and the image\'s config.yml loads with Berth\'s loadConfig without a warning, as registry:2\'s image has it', async () => {
    const files = await yamlFiles(DEPLOY);
    expect(files.map((f) => relative(DEPLOY, f))).toEqual(expect.arrayContaining([
      'config.yml', 'docker-compose.yml', 'kubernetes/kustomization.yaml', 'kubernetes/deployment.yaml',
    ]));
    for (const f of files) expect((await documents(f)).length, f).toBeGreaterThan(0);

    const { config, warnings } = await configFrom(join(DEPLOY, 'config.yml'));
    expect(warnings).toEqual([]);
    expect(config.http.addr).toBe(':5000');
    expect(rootOf(config)).toBe('/var/lib/registry');
    expect(config.http.secret, 'the secret comes from the environment, not the file').toBeUndefined();
    const stage = await runtimeStage();
    expect(stage.get('VOLUME')).toBe('["/var/lib/registry"]');
    expect(stage.get('EXPOSE')).toBe(String(parseAddr(config.http.addr).port));
  });
});

describe('deploy/kubernetes', () => {
  const byKind = new Map<string, Json>();
  let kustomization: Json = {};
  let config: Config;
  let pod: Json = {};
  let container: Json = {};
  let dir = '';

  const get = (o: unknown, ...path: (string | number)[]): unknown =>
    path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), o);
  const list = (o: unknown, ...path: (string | number)[]): Json[] => (get(o, ...path) as Json[] | undefined) ?? [];
  const named = (items: Json[], name: string): Json | undefined => items.find((i) => i['name'] === name);
  /** A probe's or Service's port (a name or a number) as the container port number. */
  const containerPort = (port: unknown): number => {
    if (typeof port === 'number') return port;
    const p = named(list(container, 'ports'), String(port));
    if (p === undefined) throw new Error(`no container port named ${String(port)}`);
    return p['containerPort'] as number;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-deploy-'));
    for (const f of await yamlFiles(K8S)) {
      for (const doc of await documents(f)) {
        const kind = doc['kind'] as string;
        if (kind === 'Kustomization') {
          kustomization = { ...doc, file: relative(K8S, f) };
          continue;
        }
        expect(byKind.has(kind), `one ${kind}`).toBe(false);
        byKind.set(kind, doc);
      }
    }
    const configText = get(byKind.get('ConfigMap'), 'data', 'config.yml');
    if (typeof configText !== 'string') throw new Error('the ConfigMap has no config.yml');
    await writeFile(join(dir, 'config.yml'), configText);
    config = (await configFrom(join(dir, 'config.yml'))).config;
    pod = get(byKind.get('Deployment'), 'spec', 'template', 'spec') as Json;
    container = list(pod, 'containers')[0] ?? {};
  });

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('the kustomization lists every manifest, and there is one ConfigMap, Secret, PVC, Deployment and Service', async () => {
    const files = (await yamlFiles(K8S)).map((f) => relative(K8S, f)).filter((f) => f !== kustomization['file']);
    expect([...(kustomization['resources'] as string[])].sort()).toEqual(files);
    expect([...byKind.keys()].sort()).toEqual(['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Service']);
    const image = list(kustomization, 'images')[0];
    expect(image?.['name'], 'the kustomization retags the Deployment\'s image').toBe(container['image']);
  });

  it('the ConfigMap\'s config.yml loads with loadConfig without a warning, with the debug listener for /metrics', async () => {
    const { warnings } = await configFrom(join(dir, 'config.yml'));
    expect(warnings).toEqual([]);
    expect(config.http.debug.addr).toBeDefined();
    expect(config.http.debug.prometheus.enabled).toBe(true);
    expect(config.http.secret).toBeUndefined();
  });

  it('the container runs the image\'s command on the config the ConfigMap mounts, as the Dockerfile\'s user', async () => {
    const stage = await runtimeStage();
    expect(JSON.parse(stage.get('CMD') ?? '[]')).toEqual(container['args']);
    const configPath = (container['args'] as string[])[1] ?? '';
    const mount = list(container, 'volumeMounts').find((m) => configPath.startsWith(`${String(m['mountPath'])}/`));
    expect(mount?.['readOnly']).toBe(true);
    const volume = named(list(pod, 'volumes'), String(mount?.['name']));
    expect(get(volume, 'configMap', 'name')).toBe(get(byKind.get('ConfigMap'), 'metadata', 'name'));
    expect(configPath.slice(String(mount?.['mountPath']).length + 1)).toBe('config.yml');

    const [uid, gid] = (stage.get('USER') ?? '').split(':').map(Number);
    expect(get(pod, 'securityContext', 'runAsUser')).toBe(uid);
    expect(get(pod, 'securityContext', 'runAsGroup')).toBe(gid);
    expect(get(pod, 'securityContext', 'fsGroup')).toBe(gid);
    expect(get(pod, 'securityContext', 'runAsNonRoot')).toBe(true);
    expect(get(container, 'securityContext', 'readOnlyRootFilesystem')).toBe(true);
    expect(get(container, 'securityContext', 'allowPrivilegeEscalation')).toBe(false);
    expect(get(container, 'securityContext', 'capabilities', 'drop')).toEqual(['ALL']);
    expect(pod['enableServiceLinks'], 'no REGISTRY_*-like service variables').toBe(false);
    // A read-only root needs a writable /tmp.
    const tmp = list(container, 'volumeMounts').find((m) => m['mountPath'] === '/tmp');
    expect(get(named(list(pod, 'volumes'), String(tmp?.['name'])), 'emptyDir')).toBeDefined();
  });

  it('the Secret reaches http.secret through REGISTRY_HTTP_SECRET', async () => {
    const env = named(list(container, 'env'), 'REGISTRY_HTTP_SECRET');
    const ref = get(env, 'valueFrom', 'secretKeyRef') as Json | undefined;
    const secret = byKind.get('Secret');
    expect(ref?.['name']).toBe(get(secret, 'metadata', 'name'));
    const value = get(secret, 'stringData', String(ref?.['key']));
    expect(typeof value).toBe('string');
    const loaded = await configFrom(join(dir, 'config.yml'), { REGISTRY_HTTP_SECRET: value as string });
    expect(loaded.config.http.secret).toBe(value);
  });

  it('the data volume is the PVC, mounted at the config\'s rootdirectory; one replica, recreated', () => {
    const mount = list(container, 'volumeMounts').find((m) => m['mountPath'] === rootOf(config));
    expect(mount, `a volume mounted at ${rootOf(config)}`).toBeDefined();
    const volume = named(list(pod, 'volumes'), String(mount?.['name']));
    const pvc = byKind.get('PersistentVolumeClaim');
    expect(get(volume, 'persistentVolumeClaim', 'claimName')).toBe(get(pvc, 'metadata', 'name'));
    expect(get(pvc, 'spec', 'accessModes')).toEqual(['ReadWriteOnce']);
    expect(get(pvc, 'spec', 'resources', 'requests', 'storage')).toMatch(/^\d+[GT]i$/);
    const deployment = byKind.get('Deployment');
    expect(get(deployment, 'spec', 'replicas')).toBe(1);
    expect(get(deployment, 'spec', 'strategy', 'type')).toBe('Recreate');
    expect(get(container, 'resources', 'requests', 'cpu')).toBeDefined();
    expect(get(container, 'resources', 'requests', 'memory')).toBeDefined();
    expect(get(container, 'resources', 'limits', 'memory')).toBeDefined();
  });

  it('probes, container ports, the Service and the scrape annotations point where the config listens; the grace period outlasts the drain', () => {
    const apiPort = parseAddr(config.http.addr).port;
    const debugPort = parseAddr(config.http.debug.addr ?? '').port;
    expect(containerPort('http')).toBe(apiPort);
    expect(containerPort('debug')).toBe(debugPort);
    expect(get(container, 'livenessProbe', 'httpGet', 'path')).toBe(LIVENESS_PATH);
    expect(get(container, 'readinessProbe', 'httpGet', 'path')).toBe(READINESS_PATH);
    expect(get(container, 'startupProbe', 'httpGet', 'path')).toBe(LIVENESS_PATH);
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      expect(containerPort(get(container, probe, 'httpGet', 'port')), probe).toBe(apiPort);
    }
    const service = byKind.get('Service');
    const labels = get(byKind.get('Deployment'), 'spec', 'template', 'metadata', 'labels') as Json;
    expect(labels).toMatchObject(get(service, 'spec', 'selector') as Json);
    expect(labels).toMatchObject(get(byKind.get('Deployment'), 'spec', 'selector', 'matchLabels') as Json);
    const servicePorts = list(service, 'spec', 'ports');
    expect(servicePorts.map((p) => containerPort(p['targetPort']))).toEqual([apiPort]);
    const annotations = get(byKind.get('Deployment'), 'spec', 'template', 'metadata', 'annotations') as Json;
    expect(Number(annotations['prometheus.io/port'])).toBe(debugPort);
    expect(annotations['prometheus.io/path']).toBe(config.http.debug.prometheus.path);
    expect((pod['terminationGracePeriodSeconds'] as number) * 1000).toBeGreaterThan(config.http.draintimeoutMs);
  });

  it('a real Berth started from the ConfigMap\'s config answers 200 on every probe path and on the scrape path', async () => {
    // The manifest's ports, moved to free ones on loopback; the rootdirectory, to a temporary directory.
    const api = await freePort();
    const debug = await freePort();
    const ports = new Map([[parseAddr(config.http.addr).port, api], [parseAddr(config.http.debug.addr ?? '').port, debug]]);
    let serving: Serving | undefined;
    try {
      serving = await serve(join(dir, 'config.yml'), {
        REGISTRY_HTTP_ADDR: `127.0.0.1:${api}`,
        REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${debug}`,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, 'root'),
        REGISTRY_LOG_LEVEL: 'error',
      });
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const port = ports.get(containerPort(get(container, probe, 'httpGet', 'port')));
        const res = await raw(`http://127.0.0.1:${String(port)}`, 'GET', String(get(container, probe, 'httpGet', 'path')));
        expect(res.status, probe).toBe(200);
      }
      const annotations = get(byKind.get('Deployment'), 'spec', 'template', 'metadata', 'annotations') as Json;
      const scrapePort = ports.get(Number(annotations['prometheus.io/port']));
      const scrape = await raw(`http://127.0.0.1:${String(scrapePort)}`, 'GET', String(annotations['prometheus.io/path']));
      expect(scrape.status).toBe(200);
      expect(scrape.body.toString('utf8')).toMatch(/^process_cpu_user_seconds_total /m);
      expect((await raw(`http://127.0.0.1:${debug}`, 'GET', DEBUG_HEALTH_PATH)).status).toBe(200);
      expect((await stat(join(dir, 'root', 'berth'))).isDirectory()).toBe(true);
    } finally {
      await serving?.stop();
    }
  });
});

describe('deploy/docker-compose.yml', () => {
  interface ComposeService {
    build: { context: string; dockerfile: string };
    image: string;
    ports: string[];
    volumes: string[];
    environment: Record<string, string>;
    read_only?: boolean;
    tmpfs?: string[];
    stop_grace_period: string;
  }
  let service: ComposeService;
  let compose: { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  let config: Config;

  beforeAll(async () => {
    compose = parse(await readFile(COMPOSE_FILE, 'utf8')) as typeof compose;
    const s = compose.services['berth'];
    if (s === undefined) throw new Error('no service "berth"');
    service = s;
    config = (await configFrom(join(DEPLOY, 'config.yml'))).config;
  });

  it('builds the repository\'s Dockerfile and keeps the data in a named volume at the image config\'s rootdirectory', async () => {
    const context = resolve(dirname(COMPOSE_FILE), service.build.context);
    expect(context).toBe(REPO_ROOT);
    expect((await stat(join(context, service.build.dockerfile))).isFile()).toBe(true);
    const data = service.volumes.map((v) => v.split(':')).find(([, target]) => target === rootOf(config));
    expect(data, `a volume at ${rootOf(config)}`).toBeDefined();
    expect(Object.keys(compose.volumes)).toContain(data?.[0]);
    const published = service.ports.map((p) => Number(p.split(':').at(-1)));
    expect(published).toEqual([parseAddr(config.http.addr).port]);
    expect(service.environment['REGISTRY_HTTP_SECRET']).toMatch(/^\$\{REGISTRY_HTTP_SECRET/);
    expect(service.read_only).toBe(true);
    expect(service.tmpfs).toContain('/tmp');
    expect(durationMs(service.stop_grace_period)).toBeGreaterThan(config.http.draintimeoutMs);
  });

  describeWithTool('docker-compose', toolAvailable('docker-compose'), 'docker-compose config', () => {
    it('accepts the file and resolves the build context to the repository', async () => {
      const out = await run('docker-compose', ['--file', COMPOSE_FILE, 'config'], { env: { REGISTRY_HTTP_SECRET: 'from-the-environment' } });
      const resolved = parse(out.stdout) as { services: Record<string, { build: { context: string }; environment: Record<string, string> }> };
      expect(resolve(resolved.services['berth']?.build.context ?? '')).toBe(REPO_ROOT);
      expect(resolved.services['berth']?.environment['REGISTRY_HTTP_SECRET']).toBe('from-the-environment');
    });
  });
});

describe('deploy/systemd/berth.service', () => {
  let unit: Map<string, Map<string, string[]>>;
  const one = (section: string, key: string): string | undefined => unit.get(section)?.get(key)?.at(-1);

  beforeAll(async () => {
    unit = parseUnit(await readFile(UNIT_FILE, 'utf8'));
  });

  it('runs node dist/main.js serve on a config that resolves, under the unit\'s environment, to its writable state directory', async () => {
    const exec = (one('Service', 'ExecStart') ?? '').split(/\s+/);
    expect(exec[0]).toMatch(/^\/.*\/node$/);
    expect(exec.slice(1, 3)).toEqual([`${one('Service', 'WorkingDirectory') ?? ''}/dist/main.js`, 'serve']);
    expect(exec).toHaveLength(4);
    expect(exec[3]).toBe('/etc/berth/config.yml');
    expect(one('Service', 'ConfigurationDirectory')).toBe('berth');

    // The unit's Environment= lines over deploy/config.yml (what the install note copies to /etc/berth).
    const env: Record<string, string> = {};
    for (const line of unit.get('Service')?.get('Environment') ?? []) {
      for (const assignment of line.split(/\s+/)) {
        const eq = assignment.indexOf('=');
        env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
      }
    }
    const { config, warnings } = await configFrom(join(DEPLOY, 'config.yml'), env);
    expect(warnings).toEqual([]);
    expect(rootOf(config)).toBe(`/var/lib/${one('Service', 'StateDirectory') ?? ''}`);
    expect(one('Service', 'ProtectSystem'), 'the state directory is then the only writable path').toBe('strict');
    expect(durationMs(one('Service', 'TimeoutStopSec') ?? '')).toBeGreaterThan(config.http.draintimeoutMs);
    expect(one('Service', 'KillSignal')).toBe('SIGTERM');
    expect(one('Install', 'WantedBy')).toBe('multi-user.target');
  });

  it('runs as an unprivileged user with the hardening options on, and leaves W^X off for V8\'s JIT', () => {
    const user = one('Service', 'User');
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)$/);
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes', ProtectKernelModules: 'yes', ProtectControlGroups: 'yes', RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes', RestrictNamespaces: 'yes', CapabilityBoundingSet: '',
    };
    for (const [key, value] of Object.entries(expected)) expect(one('Service', key), key).toBe(value);
    expect(one('Service', 'MemoryDenyWriteExecute') ?? 'no').not.toBe('yes');
  });

  describeWithTool('systemd-analyze', toolAvailable('systemd-analyze', 'systemd'), 'systemd-analyze', () => {
    let dir = '';
    let copy = '';
    beforeAll(async () => {
      // verify checks that ExecStart's program exists: point it at this machine's node when that is elsewhere.
      dir = await mkdtemp(join(tmpdir(), 'berth-unit-'));
      copy = join(dir, 'berth.service');
      const node = which('node') ?? process.execPath;
      const text = await readFile(UNIT_FILE, 'utf8');
      const written = (one('Service', 'ExecStart') ?? '').split(/\s+/)[0] ?? '';
      if (written !== node && !(await stat(written).then(() => true, () => false))) {
        console.log(`systemd-analyze: ${written} does not exist here; verifying with ExecStart=${node}`);
        await writeFile(copy, text.replace(`ExecStart=${written} `, `ExecStart=${node} `));
      } else {
        await writeFile(copy, text);
      }
    });
    afterAll(async () => {
      if (dir !== '') await rm(dir, { recursive: true, force: true });
    });

    it('verify reports nothing', async () => {
      const r = await runResult('systemd-analyze', ['verify', copy]);
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.code).toBe(0);
    });

    it('security rates the unit\'s exposure below 2.0 ("OK")', async () => {
      const r = await runResult('systemd-analyze', ['security', '--offline=yes', '--threshold=20', '--no-pager', copy]);
      const m = /Overall exposure level for .*: (\d+\.\d+) (\w+)/.exec(r.stdout);
      expect(m, `${r.stdout}${r.stderr}`).not.toBeNull();
      console.log(`systemd-analyze security: exposure ${m?.[1] ?? ''} ${m?.[2] ?? ''}`);
      expect(Number(m?.[1])).toBeLessThan(2);
      expect(r.code).toBe(0);
    });
  });
});
