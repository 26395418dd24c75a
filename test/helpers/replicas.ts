/**
 * Several `berth serve` processes over one storage, for test/replicas.test.ts: a cluster of replicas
 * (each a real process from a config file, on ports chosen here so a killed one restarts where it was)
 * behind a round-robin proxy, and the collector race of test/gc-race.test.ts played across replicas:
 * one replica collects (`POST /debug/gc`) while clients push to the others images whose layers are
 * orphans that collection is deleting.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { type BerthProcess, startBerthProcess } from './berth-process.js';
import { type S3TestSettings, createBucket, s3StorageYaml } from './ceph-server.js';
import { type Blob, MT, blob, descriptor, manifestBlob, randomBytesSeeded, raw } from './oci.js';
import { type RoundRobinProxy, startRoundRobinProxy } from './round-robin-proxy.js';
import { freePort } from './tools.js';

/** Where the replicas keep the registry, and how a test reaches behind them. */
export interface StorageSetup {
  readonly name: string;
  /** The `storage:` driver section, as YAML lines indented by two spaces. */
  readonly yaml: readonly string[];
  /** Writes blobs that nothing links: what a deleted image leaves behind. */
  writeOrphans(blobs: readonly Blob[]): Promise<void>;
}

/** A new bucket of its own on the test S3 (nothing is written behind the replicas' backs), with `extra` lines under `storage:` (indented by two spaces). */
export async function bucketStorage(s3: S3TestSettings, bucket: string, extra: readonly string[] = []): Promise<StorageSetup> {
  await createBucket(s3, bucket);
  return {
    name: 's3',
    yaml: [...s3StorageYaml(s3, bucket), ...extra],
    writeOrphans: () => Promise.reject(new Error('not used here')),
  };
}

/** One filesystem root shared by every replica, with `extra` lines under `storage:` (indented by two spaces). */
export function filesystemStorage(root: string, extra: readonly string[] = []): StorageSetup {
  return {
    name: 'filesystem',
    yaml: ['  filesystem:', `    rootdirectory: ${JSON.stringify(root)}`, ...extra],
    writeOrphans: () => Promise.reject(new Error('not used here')),
  };
}

export interface ClusterOptions {
  readonly n: number;
  /** Directory for the config files. */
  readonly dir: string;
  readonly storage: StorageSetup;
  /** `redis.addr`; none: every replica has its own in-process gate. */
  readonly redisAddr?: string;
  readonly graceperiod: string;
  /** Lines added under `storage.maintenance:` (indented by four spaces, e.g. `    retention:`). */
  readonly maintenanceYaml?: readonly string[];
  /** Top-level YAML sections added to every replica's config (e.g. `auth:`, `notifications:`). */
  readonly extraYaml?: readonly string[];
  /** Start the replicas all at once (default: one after another). */
  readonly together?: boolean;
}

export interface Cluster {
  readonly proxy: RoundRobinProxy;
  readonly replicas: (BerthProcess | undefined)[];
  /** `http://127.0.0.1:<port>` of replica `i`'s API. */
  url(i: number): string;
  /** Replica `i`'s debug listener. */
  debugUrl(i: number): string;
  /** (Re)starts replica `i` on its ports and puts it back into the proxy's rotation. */
  start(i: number): Promise<BerthProcess>;
  /** SIGKILL by PID, out of the rotation first. */
  kill(i: number): Promise<void>;
  /** SIGTERM (a clean shutdown), out of the rotation first; resolves once it has exited. */
  stop(i: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const ports = await Promise.all(Array.from({ length: o.n }, async () => ({ http: await freePort(), debug: await freePort() })));
  const replicas: (BerthProcess | undefined)[] = Array.from({ length: o.n }, () => undefined);
  const config = (i: number): string => [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    `  fields: {replica: r${i}}`,
    'http:',
    `  addr: 127.0.0.1:${ports[i]!.http}`,
    '  secret: one-secret-for-every-replica',
    '  debug:',
    `    addr: 127.0.0.1:${ports[i]!.debug}`,
    'storage:',
    ...o.storage.yaml,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    '    gc:',
    `      graceperiod: ${o.graceperiod}`,
    ...(o.maintenanceYaml ?? []),
    ...(o.redisAddr === undefined ? [] : ['redis:', `  addr: ${o.redisAddr}`]),
    ...(o.extraYaml ?? []),
    '',
  ].join('\n');
  const proxy = await startRoundRobinProxy({ ports: ports.map((p) => p.http) });
  // Replicas this helper stops or kills; any other exit is reported with the end of its log.
  const stopping = new Set<BerthProcess>();
  const start = async (i: number): Promise<BerthProcess> => {
    // Ready once both listeners are up: `listening` comes before the debug listener binds, and a
    // replica whose debug port was taken in between exits right after it (seen under a full CI run).
    const p = await startBerthProcess({
      config: config(i), configPath: join(o.dir, `replica-${i}.yml`), readyWhen: /debug listener/, readyTimeoutMs: 60_000,
    });
    replicas[i] = p;
    void p.exited.then(({ code, signal }) => {
      if (!stopping.has(p)) console.warn(`replica ${i} exited on its own (code ${code}, signal ${signal}); its log ends:\n${p.log().slice(-4000)}`);
    });
    proxy.up(i);
    return p;
  };
  try {
    if (o.together === true) await Promise.all(Array.from({ length: o.n }, (_, i) => start(i)));
    else for (let i = 0; i < o.n; i++) await start(i);
  } catch (err) {
    for (const r of replicas) if (r) stopping.add(r);
    for (const r of replicas) await r?.stop();
    await proxy.close();
    throw err;
  }
  return {
    proxy,
    replicas,
    url: (i) => `http://127.0.0.1:${ports[i]!.http}`,
    debugUrl: (i) => `http://127.0.0.1:${ports[i]!.debug}`,
    start,
    async kill(i) {
      proxy.down(i);
      const p = replicas[i];
      if (p) stopping.add(p);
      if (p?.child.pid !== undefined) process.kill(p.child.pid, 'SIGKILL');
      await p?.exited;
    },
    async stop(i) {
      proxy.down(i);
      const p = replicas[i];
      if (p) stopping.add(p);
      await p?.stop();
    },
    async close() {
      await proxy.close();
      for (const r of replicas) if (r) stopping.add(r);
      for (const r of replicas) await r?.stop();
    },
  };
}

export const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface RaceImage {
  readonly repo: string;
  readonly tag: string;
  readonly manifest: Blob;
  readonly blobs: readonly Blob[];
}

export interface RaceAttempt {
  readonly image: RaceImage;
  /** 201 acknowledged; refused with MANIFEST_BLOB_UNKNOWN (a blob was swept before it was linked); anything else. */
  readonly outcome: 'acked' | 'refused' | 'failed';
  readonly detail?: string;
}

export interface RaceRound {
  /** The collection's answer (status and report). */
  readonly gc: { readonly status: number; readonly report: { swept?: number } };
  readonly attempts: readonly RaceAttempt[];
  /** Every problem pulling the acknowledged images afterwards. */
  readonly lost: readonly string[];
  /** How many layers (orphans under collection) were uploaded, and how many mounted from another repository. */
  readonly uploaded: number;
  readonly mounted: number;
  /** How long the collection took. */
  readonly ms: number;
}

export interface RaceRoundOptions {
  readonly storage: StorageSetup;
  /** The replica that collects. */
  readonly collector: string;
  /** Where the pushers go, one pusher each (other replicas). */
  readonly pushers: readonly string[];
  /** Where the images are pulled afterwards. */
  readonly pullFrom: string;
  readonly round: number;
  readonly orphans: number;
  /** Wait this long after writing the orphans, so they are older than the grace period. */
  readonly settleMs: number;
}

/**
 * One round: write orphans, start a collection on the collector, and until it answers, push images
 * (through the pushers) whose layers are orphans it is deleting, every other one mounting its layers
 * from the previous image's repository. Then pull every acknowledged image.
 */
export async function raceRound(o: RaceRoundOptions): Promise<RaceRound> {
  const orphans = Array.from({ length: o.orphans }, (_, i) => blob(randomBytesSeeded(512 + (i % 13) * 61, 7_000_000 + o.round * 10_000 + i)));
  await o.storage.writeOrphans(orphans);
  await new Promise((r) => setTimeout(r, o.settleMs));
  let done = false;
  const t0 = performance.now();
  let ms = 0;
  const counts = { uploaded: 0, mounted: 0 };
  const attempts: RaceAttempt[] = [];
  const gc = fetch(`${o.collector}/debug/gc`, { method: 'POST' }).then(async (res) => {
    const report = (await res.json()) as { swept?: number };
    ms = performance.now() - t0;
    done = true;
    return { status: res.status, report };
  }, (err: unknown) => {
    done = true;
    throw err;
  });
  const pushing = o.pushers.map((base, c) => pusher({ base, id: `r${o.round}c${c}`, orphans, until: () => done, attempts, counts }));
  const [result] = await Promise.all([gc, ...pushing]);
  const lost: string[] = [];
  for (const a of attempts) if (a.outcome === 'acked') lost.push(...(await pullProblems(o.pullFrom, a.image)));
  return { gc: result, attempts, lost, ...counts, ms };
}

interface PusherOptions {
  readonly base: string;
  readonly id: string;
  readonly orphans: readonly Blob[];
  readonly until: () => boolean;
  readonly attempts: RaceAttempt[];
  readonly counts: { uploaded: number; mounted: number };
}

async function pusher(o: PusherOptions): Promise<void> {
  let previous: RaceImage | undefined;
  for (let n = 0; !o.until(); n++) {
    const mountFrom = n % 2 === 1 && previous !== undefined ? previous : undefined;
    const layers = mountFrom ? mountFrom.blobs.slice(1) : pick(o.orphans, 6, n);
    const config = blob(JSON.stringify({ pusher: o.id, n, os: 'linux' }));
    const manifest = manifestBlob({
      schemaVersion: 2, mediaType: MT.ociManifest, config: descriptor(MT.ociConfig, config),
      layers: layers.map((l) => descriptor(MT.ociLayer, l)),
    });
    const image: RaceImage = { repo: `race/${o.id}/${mountFrom ? 'mounted' : 'pushed'}`, tag: `n${n}`, manifest, blobs: [config, ...layers] };
    try {
      for (const b of image.blobs) await ensureBlob(o.base, image.repo, b, b === config ? undefined : mountFrom?.repo, o.counts);
      const res = await raw(o.base, 'PUT', `/v2/${image.repo}/manifests/${image.tag}`, { body: manifest.bytes, headers: { 'Content-Type': MT.ociManifest } });
      const body = res.body.toString('utf8');
      const outcome = res.status === 201 ? 'acked' : res.status === 400 && body.includes('MANIFEST_BLOB_UNKNOWN') ? 'refused' : 'failed';
      o.attempts.push({ image, outcome, ...(outcome === 'failed' && { detail: `PUT manifest: ${res.status} ${body}` }) });
      if (outcome === 'acked') previous = image;
    } catch (err) {
      o.attempts.push({ image, outcome: 'failed', detail: (err as Error).message });
    }
  }
}

/** Gets `b` into `repo`: mounted from `from` (when it still can be), else uploaded in one POST. */
async function ensureBlob(base: string, repo: string, b: Blob, from: string | undefined, counts: PusherOptions['counts']): Promise<void> {
  if (from !== undefined) {
    const mount = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?mount=${b.digest}&from=${from}`);
    if (mount.status === 201) {
      counts.mounted += 1;
      return;
    }
    if (mount.status !== 202) throw new Error(`mount ${b.digest}: ${mount.status} ${mount.body.toString()}`);
  }
  const put = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { body: b.bytes, headers: { 'Content-Type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`upload ${b.digest}: ${put.status} ${put.body.toString()}`);
  counts.uploaded += 1;
}

/** `count` different orphans, spread over the whole list and shifted by `n`. */
function pick(orphans: readonly Blob[], count: number, n: number): Blob[] {
  const step = Math.floor(orphans.length / count);
  const offset = (n * 7919) % orphans.length;
  return Array.from({ length: count }, (_, i) => orphans[(offset + i * step) % orphans.length]!);
}

/** What is wrong pulling `image` (manifest and every blob, digests checked); empty when it pulls complete. */
export async function pullProblems(base: string, image: RaceImage): Promise<string[]> {
  const problems: string[] = [];
  const m = await raw(base, 'GET', `/v2/${image.repo}/manifests/${image.tag}`, { headers: { Accept: MT.ociManifest } });
  if (m.status !== 200 || sha256(m.body) !== image.manifest.digest) problems.push(`${image.repo}:${image.tag} manifest: ${m.status}`);
  for (const b of image.blobs) {
    // fetch follows a redirect to the storage (S3), as clients do.
    const res = await fetch(`${base}/v2/${image.repo}/blobs/${b.digest}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || sha256(body) !== b.digest) problems.push(`${image.repo}:${image.tag} blob ${b.digest}: ${res.status}`);
  }
  return problems;
}
