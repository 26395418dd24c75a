/**
 * Builds the pull-through cache from the `proxy` section (config/proxy.ts): an upstream client per
 * upstream with its credentials, the blob fetches in progress, the mirror wrapping the registry (src/mirror/), its
 * name routing, metrics and one log line per upstream fetch.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import type { ProxyConfig, UpstreamConfig } from '../config/proxy.js';
import type { Config } from '../config/schema.js';
import type { NameRouting } from '../http/context.js';
import type { Logger } from '../log.js';
import { createMirrorMetrics } from '../metrics/mirror.js';
import { type BlobRange, createBlobFetches } from '../mirror/blob-fetches.js';
import { type EvictionOptions, type PullRecord, createPullRecord, evict } from '../mirror/eviction.js';
import type { MirrorEvents } from '../mirror/mirror-context.js';
import { createMirror } from '../mirror/mirror.js';
import { createNameRouter } from '../mirror/routing.js';
import { type PullTimesFile, berthPullTimes, schedulerState } from './pull-times.js';
import type { Credentials } from '../mirror/upstream-auth.js';
import { createUpstreamClient } from '../mirror/upstream.js';
import type { Digest } from '../storage/digest.js';
import type { LocalRegistry, Registry } from '../storage/registry.js';

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

/** The mirror of `config.proxy` over `storage`; undefined when no upstream is configured. */
export async function startMirror(config: Config, storage: MirrorStorage, log: Logger, metrics: PromRegistry): Promise<StartedMirror | undefined> {
  const proxy = config.proxy;
  if (proxy === undefined) return undefined;
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
  const upstreams = proxy.upstreams.map((u) => ({
    client: createUpstreamClient({ name: u.prefix ?? new URL(u.remoteurl).host, url: u.remoteurl, credentials: credentialsOf(u) }),
    prefix: u.prefix,
    revalidateMs: u.revalidateMs,
  }));
  const stored = {
    holds: async (d: Digest): Promise<boolean> => (await local.blobs.stat(d)) !== undefined,
    open: (d: Digest, range: BlobRange) => local.blobs.open(d, range),
  };
  const expiry = await startExpiry(config, proxy, storage.evictable, events, log);
  const registry = createMirror({ local, upstreams, fetches, events, stored, record: expiry.record });
  log.info('mirroring', { form: proxy.form, upstreams: proxy.upstreams.map((u) => `${u.prefix ?? '*'}=${u.remoteurl}`).join(' ') });
  return {
    registry,
    evict: (o) => expiry.evict(o),
    names: routerFor(proxy, local),
    async close() {
      await expiry.stop();
      await fetches.close();
    },
  };
}

/** How often pull times are saved. */
const SAVE_EVERY_MS = 30_000;

/** The mirror's expiry: its pull times (kept and saved) and the eviction step the collector runs. */
interface Expiry {
  readonly record: PullRecord;
  /** One eviction pass (a step of each collector run, before its mark): images removed, or in a dry run that would be. */
  evict(o: { readonly dryRun: boolean }): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Pull times (pull-times.ts: registry:2's scheduler-state.json or Berth's own file on filesystem
 * storage, in memory otherwise; saved every 30 s and at stop) and the eviction pass the collector runs
 * before its mark, so that one run evicts and frees.
 */
async function startExpiry(config: Config, proxy: ProxyConfig, evictable: Registry, events: MirrorEvents, log: Logger): Promise<Expiry> {
  const file = pullTimesFile(config, proxy);
  const record = createPullRecord(file === undefined ? {} : await file.load());
  const save = async (): Promise<void> => {
    const snap = record.snapshot();
    if (file === undefined || !snap.dirty) return;
    record.saved();
    await file.save(snap.entries);
  };
  const timer = setInterval(() => void save().catch((err: unknown) => log.warn('saving mirror pull times failed', { err })), SAVE_EVERY_MS);
  timer.unref();
  if (!config.storage.maintenance.gc.enabled && (proxy.budgetBytes !== undefined || proxy.upstreams.some((u) => u.ttlMs > 0))) {
    log.warn('mirror: ttl and budget are enforced by the garbage collector, which is not scheduled (storage.maintenance.gc.enabled: false): nothing is evicted until POST /debug/gc or berth garbage-collect');
  }
  return {
    record,
    evict: (o) => evictionPass(proxy, evictable, record, o.dryRun, (image) => {
      if (!image.dryRun) events.evicted(upstreamNameOf(proxy, image.name));
      log.info(image.dryRun ? 'mirror would evict' : 'mirror evicted', image);
    }),
    async stop() {
      clearInterval(timer);
      await save().catch((err: unknown) => log.warn('saving mirror pull times failed', { err }));
    },
  };
}

/**
 * The eviction step of the offline `berth garbage-collect` over `registry` (deletes enabled), with the
 * pull times the server saved; `close()` saves them back (without the images evicted).
 */
export async function offlineEviction(config: Config, registry: Registry, log: Logger): Promise<{ evict(o: { readonly dryRun: boolean }): Promise<number>; close(): Promise<void> } | undefined> {
  const proxy = config.proxy;
  if (proxy === undefined) return undefined;
  const file = pullTimesFile(config, proxy);
  const record = createPullRecord(file === undefined ? {} : await file.load());
  return {
    evict: (o) => evictionPass(proxy, registry, record, o.dryRun, (image) => log.info(image.dryRun ? 'mirror would evict' : 'mirror evicted', image)),
    async close() {
      if (file !== undefined && record.snapshot().dirty) await file.save(record.snapshot().entries);
    },
  };
}

/** One eviction pass over `registry` (deletes enabled) by `proxy`'s ttls and budget. */
function evictionPass(proxy: ProxyConfig, registry: Registry, record: PullRecord, dryRun: boolean, evicted: EvictionOptions['evicted']): Promise<number> {
  return evict({
    local: registry, record, dryRun, budgetBytes: proxy.budgetBytes,
    ttlOf: (name) => upstreamFor(proxy, name)?.ttlMs,
    ...(evicted && { evicted }),
  });
}

/** The upstream name metrics use for a cached repository. */
function upstreamNameOf(proxy: ProxyConfig, name: string): string {
  const u = upstreamFor(proxy, name) ?? proxy.upstreams[0];
  return u?.prefix ?? new URL(u?.remoteurl ?? 'http://upstream').host;
}

/** registry:2's scheduler-state.json for its `remoteurl` form, Berth's own file otherwise; none off the filesystem. */
function pullTimesFile(config: Config, proxy: ProxyConfig): PullTimesFile | undefined {
  if (config.storage.driver !== 'filesystem') return undefined;
  const root = resolve(config.storage.rootdirectory);
  if (proxy.form === 'remoteurl') return schedulerState(join(root, 'scheduler-state.json'), proxy.upstreams[0]?.ttlMs ?? 0);
  return berthPullTimes(join(root, 'berth', 'mirror-pulls.json'));
}

/** The upstream a cached repository's name belongs to. */
function upstreamFor(proxy: ProxyConfig, name: string): UpstreamConfig | undefined {
  return proxy.upstreams.find((u) => u.prefix === undefined || name.startsWith(`${u.prefix}/`));
}

function routerFor(proxy: ProxyConfig, local: Registry): NameRouting | undefined {
  if (proxy.form === 'remoteurl') return undefined;
  return createNameRouter(local, proxy.upstreams.flatMap((u) => (u.prefix === undefined ? [] : [{ prefix: u.prefix, hosts: u.hosts, default: u.default }])));
}

/** The upstream's credentials: its username and password, or its credentials file read at each use. */
function credentialsOf(u: UpstreamConfig): () => Promise<Credentials | undefined> {
  if (u.username !== undefined) {
    const fixed = { username: u.username, password: u.password ?? '' };
    return async () => fixed;
  }
  const file = u.credentialsfile;
  if (file === undefined) return async () => undefined;
  const host = new URL(u.remoteurl).host;
  return async () => fromDockerConfig(JSON.parse(await readFile(file, 'utf8')) as unknown, host);
}

/** `auths.<host>` of a docker config.json: `auth` (base64 user:password) or `username` and `password`. */
function fromDockerConfig(doc: unknown, host: string): Credentials | undefined {
  const auths = (doc as { auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown }> } | null)?.auths;
  const entry = auths?.[host] ?? auths?.[`https://${host}`] ?? auths?.[`http://${host}`];
  if (entry === undefined) return undefined;
  if (typeof entry.auth === 'string') {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const at = text.indexOf(':');
    if (at > 0) return { username: text.slice(0, at), password: text.slice(at + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  return undefined;
}
