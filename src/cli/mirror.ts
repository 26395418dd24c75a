/**
 * Builds the pull-through cache from the `proxy` section (config/proxy.ts): an upstream client per
 * upstream with its credentials, the blob fetches in progress, the mirror wrapping the registry (src/mirror/), its
 * name routing, metrics and one log line per upstream fetch.
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import type { ProxyConfig, UpstreamConfig } from '../config/proxy.js';
import type { Config } from '../config/schema.js';
import type { NameRouting } from '../http/context.js';
import type { Logger } from '../log.js';
import { createMirrorMetrics } from '../metrics/mirror.js';
import { type BlobRange, createBlobFetches } from '../mirror/blob-fetches.js';
import { type EvictionOptions, evict } from '../mirror/eviction.js';
import type { MirrorEvents } from '../mirror/mirror-context.js';
import type { MirrorSharing } from '../mirror/fetch-leases.js';
import { createMirror } from '../mirror/mirror.js';
import { createNameRouter } from '../mirror/routing.js';
import { credentialsOf } from './mirror-credentials.js';
import { importFormerPullTimes, loadSchedulerState } from './pull-times.js';
import { createUpstreamClient } from '../mirror/upstream.js';
import type { Digest } from '../storage/digest.js';
import type { CacheRegistry, LocalRegistry, ManifestTimes, Registry } from '../storage/registry.js';
import type { GcRunOptions } from '../gc/run.js';
import type { Replicas } from './replicas.js';
import { growHeapInLargerSteps } from './heap-growth.js';

export interface StartedMirror {
  /** The registry HTTP serves: `local` with the mirrored repositories wrapped. */
  readonly registry: Registry;
  /** The eviction step of each collector run (before its mark): expired and over-budget images removed. */
  evict(o: { readonly dryRun: boolean }): Promise<number>;
  /** Name routing for Berth's form; undefined for registry:2's (every name is mirrored as is). */
  readonly names: NameRouting | undefined;
  close(): Promise<void>;
}

/** What the mirror is built over. */
export interface MirrorStorage {
  /** The registry HTTP would serve without a mirror. */
  readonly local: LocalRegistry;
  /** The same storage with deletes enabled, for eviction (whatever `storage.delete.enabled` says). */
  readonly evictable: Registry;
}

/** The mirror of `config.proxy` over `storage` (shared with other replicas through `replicas`); undefined when no upstream is configured. */
export async function startMirror(config: Config, storage: MirrorStorage, log: Logger, metrics: PromRegistry, replicas?: Replicas): Promise<StartedMirror | undefined> {
  const proxy = config.proxy;
  if (proxy === undefined) return undefined;
  growHeapInLargerSteps(); // fewer full collections during cold pulls (heap-growth.ts)
  const { local } = storage;
  const fetches = createBlobFetches();
  const counters = createMirrorMetrics(metrics);
  const events: MirrorEvents = {
    ...counters,
    fetched(r) {
      counters.fetched(r);
      const fields = { upstream: r.upstream, kind: r.kind, repository: r.repository, digest: r.digest, bytes: r.bytes, seconds: Number(r.seconds.toFixed(3)) };
      if (r.error === undefined) log.info('upstream fetch', fields);
      else log.warn('upstream fetch failed', { ...fields, err: r.error.message });
    },
  };
  const credentials = proxy.upstreams.map((u) => credentialsOf(u, log));
  const upstreams = proxy.upstreams.map((u, i) => ({
    client: createUpstreamClient({ name: u.prefix ?? new URL(u.remoteurl).host, url: u.remoteurl, credentials: () => credentials[i]?.get() ?? Promise.resolve(undefined) }),
    prefix: u.prefix,
    revalidateMs: u.revalidateMs,
  }));
  const stored = {
    holds: async (d: Digest): Promise<boolean> => (await local.blobs.stat(d)) !== undefined,
    open: (d: Digest, range: BlobRange) => local.blobs.open(d, range),
  };
  const expiry = await startExpiry(config, proxy, storage, events, log);
  const sharing = replicas && { state: redisSharing(replicas), failed: sharingFailed(log) };
  const registry = createMirror({ local, upstreams, fetches, events, stored, times: expiry.times, ...(sharing && { sharing }) });
  log.info('mirroring', { form: proxy.form, upstreams: proxy.upstreams.map((u) => `${u.prefix ?? '*'}=${u.remoteurl}`).join(' ') });
  return {
    registry,
    async evict(o) {
      // Manifests already answered are in the cache first, so the pass sees what clients were given.
      await registry.settled();
      return expiry.evict(o);
    },
    names: routerFor(proxy, local),
    async close() {
      await registry.settled();
      await expiry.stop();
      await fetches.close();
      for (const c of credentials) c.close();
    },
  };
}

/** How long a replica's lease on an upstream fetch outlives it when it dies (it renews the lease while it fetches). */
const FETCH_LEASE_MS = 10_000;

/**
 * The replicas' fetch leases (`<prefix>mirror:fetch:<kind>:<name>…`, cluster locks), revalidation
 * times (`<prefix>mirror:checked:<name>:<tag>`) and blob sizes told by a HEAD upstream
 * (`<prefix>mirror:size:<name>@<digest>`) in Redis, the last two keys expiring `revalidate` after they were set.
 */
function redisSharing(replicas: Replicas): MirrorSharing {
  const checked = (key: string): string => `${replicas.prefix}mirror:checked:${key}`;
  const size = (key: string): string => `${replicas.prefix}mirror:size:${key}`;
  const px = (ms: number): number => Math.max(1, Math.round(ms));
  return {
    tryLease: (key) => replicas.lock(`mirror:fetch:${key}`, FETCH_LEASE_MS).tryAcquire(),
    checkedRecently: async (key) => (await replicas.client.call('EXISTS', checked(key))) === 1,
    markChecked: async (key, ms) => void (await replicas.client.call('SET', checked(key), '1', 'PX', px(ms))),
    knownSize: async (key) => {
      const text = await replicas.client.call('GET', size(key));
      const n = typeof text === 'string' ? Number(text) : Number.NaN;
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    },
    noteSize: async (key, n, ms) => void (await replicas.client.call('SET', size(key), String(n), 'PX', px(ms))),
  };
}

/** Logs a failure of the shared state at most once per 10 s: pulls go on without it. */
function sharingFailed(log: Logger): (err: unknown) => void {
  let last = 0;
  return (err) => {
    if (Date.now() - last < 10_000) return;
    last = Date.now();
    log.warn('mirror: the replicas\' shared fetch leases and revalidation times (redis) failed; fetching and revalidating without them', { err });
  };
}

/** How often registry:2's scheduler-state.json is written while pulls happen. */
const SAVE_EVERY_MS = 30_000;

/** The mirror's expiry: where pulls are noted, and the eviction step the collector runs. */
interface Expiry {
  /** Notes a manifest GET of a mirrored repository (storage's pull times). */
  readonly times: Pick<ManifestTimes, 'pulled'>;
  /** One eviction pass (a step of each collector run, before its mark): images removed, or in a dry run that would be. */
  evict(o: { readonly dryRun: boolean }): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Pulls go to storage's push and pull times (the listing index, Redis with replicas, memory without
 * either); in registry:2's form they are also written to its scheduler-state.json (every 30 s while
 * pulls happen, after each eviction and at stop). The eviction pass is the collector's step.
 */
async function startExpiry(config: Config, proxy: ProxyConfig, storage: MirrorStorage, events: MirrorEvents, log: Logger): Promise<Expiry> {
  const source = { registry: storage.local, times: storage.local.times };
  const root = config.storage.driver === 'filesystem' ? resolve(config.storage.rootdirectory) : undefined;
  if (root !== undefined) {
    await importFormerPullTimes(join(root, 'berth', 'mirror-pulls.json'), source);
    // Earlier versions spooled blob fetches here; what a stopped one left is never a whole blob.
    await rm(join(root, 'berth', 'mirror-spool'), { recursive: true, force: true });
  }
  const state = root !== undefined && proxy.form === 'remoteurl'
    ? await loadSchedulerState(join(root, 'scheduler-state.json'), proxy.upstreams[0]?.ttlMs ?? 0, source)
    : undefined;
  let dirty = false;
  const save = async (): Promise<void> => {
    if (state === undefined) return;
    dirty = false;
    await state.save().catch((err: unknown) => log.warn('saving scheduler-state.json failed', { err }));
  };
  const timer = setInterval(() => void (dirty && save()), SAVE_EVERY_MS);
  timer.unref();
  if (!config.storage.maintenance.gc.enabled && (proxy.budgetBytes !== undefined || proxy.upstreams.some((u) => u.ttlMs > 0))) {
    log.warn('mirror: ttl and budget are enforced by the garbage collector, which is not scheduled (storage.maintenance.gc.enabled: false): nothing is evicted until POST /debug/gc or berth garbage-collect');
  }
  return {
    times: {
      pulled(name, d) {
        storage.local.times.pulled(name, d);
        dirty = true;
      },
    },
    async evict(o) {
      const evicted = await evictionPass(proxy, storage.evictable, storage.local.times, o.dryRun, (image) => {
        if (!image.dryRun) events.evicted(upstreamNameOf(proxy, image.name));
        log.info(image.dryRun ? 'mirror would evict' : 'mirror evicted', image);
      });
      // registry:2's blob entries that expired, once the images are evicted (their blobs then count as unnamed).
      const blobs = state === undefined ? [] : await state.expireBlobs(storage.evictable, Date.now(), o.dryRun);
      for (const b of blobs) log.info(b.unlinked ? (o.dryRun ? 'mirror would unlink an expired blob' : 'mirror unlinked an expired blob') : 'mirror keeps an expired blob a cached image names', { ...b, dryRun: o.dryRun });
      if ((evicted > 0 || blobs.length > 0) && !o.dryRun) await save();
      return evicted;
    },
    async stop() {
      clearInterval(timer);
      await storage.local.times.flush().catch(() => undefined);
      await save();
    },
  };
}

/**
 * The eviction step of the offline `berth garbage-collect` over `registry` (deletes enabled), by the
 * pull times it holds; undefined without a mirror, or (with a warning) when the pull times are unknown
 * (the index is not available), as every image would then look unpulled since it was cached.
 */
export function offlineEviction(config: Config, registry: LocalRegistry, timesKnown: boolean, log: Logger): GcRunOptions['evict'] {
  const proxy = config.proxy;
  if (proxy === undefined) return undefined;
  if (!timesKnown) {
    log.warn('mirror: pull times are unknown (the index is not available), so no cached image is evicted');
    return undefined;
  }
  return (o) => evictionPass(proxy, registry, registry.times, o.dryRun, (image) => log.info(image.dryRun ? 'mirror would evict' : 'mirror evicted', image));
}

/** One eviction pass over `registry` (deletes enabled) by `proxy`'s ttls and budget. */
function evictionPass(proxy: ProxyConfig, registry: Registry, times: EvictionOptions['times'], dryRun: boolean, evicted: EvictionOptions['evicted']): Promise<number> {
  return evict({
    local: registry, times, dryRun, budgetBytes: proxy.budgetBytes,
    ttlOf: (name) => upstreamFor(proxy, name)?.ttlMs,
    ...(evicted && { evicted }),
  });
}

/** The upstream name metrics use for a cached repository. */
function upstreamNameOf(proxy: ProxyConfig, name: string): string {
  const u = upstreamFor(proxy, name) ?? proxy.upstreams[0];
  return u?.prefix ?? new URL(u?.remoteurl ?? 'http://upstream').host;
}

/** The upstream a cached repository's name belongs to. */
function upstreamFor(proxy: ProxyConfig, name: string): UpstreamConfig | undefined {
  return proxy.upstreams.find((u) => u.prefix === undefined || name.startsWith(`${u.prefix}/`));
}

function routerFor(proxy: ProxyConfig, local: CacheRegistry): NameRouting | undefined {
  if (proxy.form === 'remoteurl') return undefined;
  return createNameRouter(local, proxy.upstreams.flatMap((u) => (u.prefix === undefined ? [] : [{ prefix: u.prefix, hosts: u.hosts, default: u.default }])));
}
