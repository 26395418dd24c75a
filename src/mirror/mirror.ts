/**
 * The pull-through cache (DESIGN.md §9, issue #13): a wrapper of the Registry face HTTP uses, as
 * distribution's registry/proxy wraps its registry. `createMirror(local, upstreams)` answers the same
 * interface. A repository under an upstream's prefix (every repository, in registry:2's `remoteurl`
 * form) is a read-only mirror: it answers from storage when it can and from its upstream when it must,
 * and writes what it fetches into the normal layout through storage's own API (uploads for blobs,
 * manifests.put for manifests), under the name it is asked by, so the catalog, the index, the collector
 * and rsync all see it. Every other repository is the local one, untouched.
 *
 * Manifest GETs are noted in storage's pull times (`o.times`) for expiry (eviction.ts; cli/pull-times.ts
 * also keeps registry:2's scheduler-state.json for its form). A HEAD of a blob not cached is answered
 * by this repository's fetch of it in progress, else by what the upstream told a HEAD within
 * `revalidate`, else by a HEAD upstream.
 */
import { blobUnknown, isRegistryError, nameUnknown, unsupported } from '../errors.js';
import type { Readable } from 'node:stream';
import type { Digest } from '../storage/digest.js';
import type { RepoName } from '../storage/reference.js';
import type {
  BlobServing, CacheRegistry, ManifestTimes, CacheRepository, ReferrerDescriptor, Registry, Repository, RepositoryBlobs, ServeOptions, StoredManifest, UploadStore,
} from '../storage/registry.js';
import type { BlobFetches, BlobRange, InFlightBlob } from './blob-fetches.js';
import { type MirrorContext, type MirrorEvents, NO_EVENTS, createFlights } from './mirror-context.js';
import { type Lease, type MirrorSharing, claim } from './fetch-leases.js';
import { mirrorManifests } from './mirror-manifests.js';
import { isNotFound, isTransient, toRegistryError } from './upstream-errors.js';
import type { UpstreamClient } from './upstream.js';

/** What storage holds, whichever repository links it. */
export interface StoredBlobs {
  /**
   * Whether storage holds a blob's bytes: such a blob is linked into the mirrored repository once its
   * upstream confirms it has it (a HEAD), instead of fetched again.
   */
  holds(d: Digest): Promise<boolean>;
  /** The blob's bytes `range` (for a reader of a fetch that fell behind it, once the blob is stored). @throws BLOB_UNKNOWN */
  open(d: Digest, range: BlobRange): Promise<Readable>;
}

/** One upstream as the mirror uses it. */
export interface MirrorUpstream {
  readonly client: UpstreamClient;
  /** Repositories under `<prefix>/` are this upstream's; undefined: every repository is (registry:2's form). */
  readonly prefix: string | undefined;
  readonly revalidateMs: number;
}

export interface MirrorOptions {
  /** The local registry: the HTTP face, whose manifests can also be cached before the blobs they name. */
  readonly local: CacheRegistry;
  readonly upstreams: readonly MirrorUpstream[];
  /** The blob fetches in progress (blob-fetches.ts). */
  readonly fetches: BlobFetches;
  /** The bytes storage holds under any repository (the global blob store). */
  readonly stored: StoredBlobs;
  readonly events?: MirrorEvents;
  /** Storage's push and pull times, where each manifest GET of a mirrored repository is noted (for eviction.ts). */
  readonly times?: Pick<ManifestTimes, 'pulled'>;
  /** How long a manifest or tag-list fetch may take in all (registry:2's cachewritetimeout, 5m). */
  readonly fetchTimeoutMs?: number;
  /** With replicas: their fetch leases and revalidation times (fetch-leases.ts), and where its failures are told. */
  readonly sharing?: { readonly state: MirrorSharing; readonly failed: (err: unknown) => void };
}

const DEFAULT_FETCH_TIMEOUT_MS = 5 * 60_000;
const VIEWS_KEPT = 256;
/** Blob sizes the upstream told (a HEAD), kept in memory for at most `revalidate` each (and in Redis with replicas). */
const SIZES_KEPT = 4096;

/** The registry `o.local` with the repositories of `o.upstreams` mirrored. */
export interface MirrorRegistry extends Registry {
  /** Settles once every manifest already answered is written to the cache (shutdown). */
  settled(): Promise<void>;
}

/** The registry `o.local` with the repositories of `o.upstreams` mirrored. */
export function createMirror(o: MirrorOptions): MirrorRegistry {
  const events = o.events ?? NO_EVENTS;
  const flights = createFlights();
  const checked = new Map<string, number>();
  const pending = new Map<string, StoredManifest>();
  const tagWrites = new Map<string, Promise<void>>();
  const sizes = new Map<string, { size: number; at: number }>();
  const timeout = o.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const sharing = o.sharing;

  const upstreamOf = (name: string): { upstream: MirrorUpstream; remote: string } | undefined => {
    for (const upstream of o.upstreams) {
      if (upstream.prefix === undefined) return { upstream, remote: name };
      if (name.startsWith(`${upstream.prefix}/`)) return { upstream, remote: name.slice(upstream.prefix.length + 1) };
    }
    return undefined;
  };

  const views = new Map<RepoName, Repository>();
  const repository = (name: RepoName): Repository => {
    const found = upstreamOf(name);
    if (found === undefined) return o.local.repository(name);
    let view = views.get(name);
    if (view === undefined) {
      const context: MirrorContext = {
        name, remote: found.remote, client: found.upstream.client, flights, events,
        fresh: async (key) => {
          if ((checked.get(key) ?? Number.NEGATIVE_INFINITY) + found.upstream.revalidateMs > Date.now()) return true;
          if (sharing === undefined || found.upstream.revalidateMs <= 0) return false;
          // Another replica may have revalidated it: ask before asking the upstream.
          return sharing.state.checkedRecently(key).catch((err: unknown) => {
            sharing.failed(err);
            return false;
          });
        },
        markFresh: (key) => {
          checked.set(key, Date.now());
          if (sharing !== undefined && found.upstream.revalidateMs > 0) void sharing.state.markChecked(key, found.upstream.revalidateMs).catch(sharing.failed);
        },
        claim: (key, landed) => (sharing === undefined
          ? Promise.resolve({ lease: undefined })
          : claim({ sharing: sharing.state, key, landed, waitMs: timeout, failed: sharing.failed })),
        signal: () => AbortSignal.timeout(timeout),
        pulled: (digest) => o.times?.pulled(name, digest),
        pending,
        tagWrites,
        sizes: {
          async get(d) {
            const known = sizes.get(`${name}@${d}`);
            if (known !== undefined && known.at + found.upstream.revalidateMs > Date.now()) return known.size;
            if (sharing === undefined || found.upstream.revalidateMs <= 0) return undefined;
            // Another replica may have asked the upstream: ask Redis before asking it again.
            return sharing.state.knownSize(`${name}@${d}`).catch((err: unknown) => {
              sharing.failed(err);
              return undefined;
            });
          },
          async set(d, size) {
            sizes.set(`${name}@${d}`, { size, at: Date.now() });
            if (sizes.size > SIZES_KEPT) sizes.delete(sizes.keys().next().value as string);
            // Awaited (one Redis write beside the HEAD upstream it saves), so the next replica asked knows it.
            if (sharing !== undefined && found.upstream.revalidateMs > 0) await sharing.state.noteSize(`${name}@${d}`, size, found.upstream.revalidateMs).catch(sharing.failed);
          },
        },
      };
      view = mirroredRepository(context, o.local.repository(name), o);
      views.set(name, view);
      if (views.size > VIEWS_KEPT) views.delete(views.keys().next().value as RepoName);
    }
    return view;
  };

  return {
    repository,
    // The stored repositories, with those whose first manifest was answered and is being written.
    async repositories(range) {
      const stored = await o.local.repositories(range);
      const answered = [...new Set([...pending.keys()].map((k) => k.split(/[:@]/, 1)[0] ?? k))];
      if (answered.length === 0) return stored;
      const merged = withinRange([...new Set([...stored, ...answered])], range);
      // A page cut by `limit` must not end past names the stored page did not reach.
      const last = stored.length > 0 && range?.limit !== undefined && stored.length >= range.limit ? stored[stored.length - 1] : undefined;
      return last === undefined ? merged : merged.filter((n) => n <= last);
    },
    settled: () => flights.settled(),
  };
}

const readOnly = (m: MirrorContext): Error => unsupported(`${m.name} is a read-only mirror of ${m.client.name}`);

function mirroredRepository(m: MirrorContext, local: CacheRepository, o: MirrorOptions): Repository {
  const refuse = (): Promise<never> => Promise.reject(readOnly(m));
  const uploads: UploadStore = { start: refuse, status: refuse, append: refuse, commit: refuse, cancel: refuse };
  const blobs: RepositoryBlobs = {
    stat: (d, opts) => local.blobs.stat(d, opts),
    serve: (d, opts) => serveBlob(m, local, o, d, opts),
    delete: refuse,
    mountFrom: refuse,
    mountExisting: refuse,
  };
  return {
    name: local.name,
    blobs,
    uploads,
    manifests: mirrorManifests(m, local.manifests),
    tags: (range) => mirroredTags(m, local, range),
    async referrers(subject, filter, opts) {
      try {
        const listed = await m.client.referrers(m.remote, subject, filter.artifactType, m.signal());
        if (listed !== undefined) return listed.filter(isReferrer).filter((r) => filter.artifactType === undefined || r.artifactType === filter.artifactType);
      } catch (err) {
        if (!isTransient(err) && !isNotFound(err)) throw toRegistryError(err, nameUnknown(m.name));
      }
      return local.referrers(subject, filter, opts);
    },
  };
}

/** The upstream's tags when it answers, the cached ones when it is down. */
async function mirroredTags(m: MirrorContext, local: CacheRepository, range: { after?: string | undefined; limit?: number | undefined } | undefined): Promise<readonly string[]> {
  try {
    const limit = range?.limit;
    const after = range?.after;
    const page = await m.flights.run(`tags ${m.name} ${after ?? ''} ${limit ?? ''}`, () =>
      m.client.tags(m.remote, { n: limit, last: after }, m.signal()));
    const sorted = [...page].sort().filter((t) => after === undefined || t > after);
    return limit === undefined ? sorted : sorted.slice(0, limit);
  } catch (err) {
    m.events.failed(m.client.name, err);
    if (!isTransient(err)) throw toRegistryError(err, nameUnknown(m.name));
    // The cached tags, with those answered whose cache write is still under way.
    const answered = pendingTags(m, range);
    try {
      const stored = await local.tags(range);
      return answered.length === 0 ? stored : withinRange([...new Set([...stored, ...answered])], range);
    } catch (cached) {
      if (isRegistryError(cached, 'NAME_UNKNOWN') && answered.length > 0) return answered;
      throw isRegistryError(cached, 'NAME_UNKNOWN') ? toRegistryError(err, cached) : cached;
    }
  }
}

/** Tags of `m` answered whose cache write is under way, within `range`. */
function pendingTags(m: MirrorContext, range: { after?: string | undefined; limit?: number | undefined } | undefined): string[] {
  const prefix = `${m.name}:`;
  return withinRange([...m.pending.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)), range);
}

function withinRange(tags: string[], range: { after?: string | undefined; limit?: number | undefined } | undefined): string[] {
  const sorted = tags.sort().filter((t) => range?.after === undefined || t > range.after);
  return range?.limit === undefined ? sorted : sorted.slice(0, range.limit);
}

/**
 * A blob of a mirrored repository: from storage when this repository links it; else, for HEAD, the
 * upstream's answer; else from a fetch (this request's, or one in progress), read as it arrives.
 */
async function serveBlob(m: MirrorContext, local: CacheRepository, o: MirrorOptions, d: Digest, opts: ServeOptions): Promise<BlobServing> {
  try {
    const served = await local.blobs.serve(d, opts);
    m.events.hit(m.client.name);
    return served;
  } catch (err) {
    if (!isRegistryError(err, 'BLOB_UNKNOWN')) throw err;
  }
  m.events.miss(m.client.name);
  try {
    if (await linkedFromStorage(m, local, o, d)) return await local.blobs.serve(d, opts);
    if (opts.method === 'HEAD') {
      const size = await upstreamSize(m, o, d);
      if (size === undefined) throw blobUnknown(d);
      const info = { digest: d, size };
      const range = opts.range?.(size);
      return range === 'unsatisfiable' ? { kind: 'unsatisfiable', info } : { kind: 'stream', info, range, stream: undefined };
    }
    let entry: InFlightBlob;
    try {
      entry = await fetchBlob(m, local, o, d);
    } catch (err) {
      // Another replica fetched it meanwhile: it is in storage now.
      if (err instanceof LandedElsewhere) return await local.blobs.serve(d, opts);
      throw err;
    }
    const info = { digest: d, size: await entry.size() };
    // A fetch that ended since it was found is in storage now.
    return (await answer(info, opts, entry)) ?? (await local.blobs.serve(d, opts));
  } catch (err) {
    m.events.failed(m.client.name, err);
    throw toRegistryError(err, blobUnknown(d));
  }
}

/** The answer for `info`: 416 or the fetch's stream; undefined when the fetch is over (read storage). */
async function answer(info: { digest: Digest; size: number }, opts: ServeOptions, entry: InFlightBlob): Promise<BlobServing | undefined> {
  const range = opts.range?.(info.size);
  if (range === 'unsatisfiable') return { kind: 'unsatisfiable', info };
  const stream = await entry.open(range);
  return stream === undefined ? undefined : { kind: 'stream', info, range, stream };
}

/**
 * Links a blob whose bytes storage holds under another repository, once the upstream confirms this
 * repository has it (a user allowed to pull this mirror must not read other repositories' blobs by digest).
 */
async function linkedFromStorage(m: MirrorContext, local: CacheRepository, o: MirrorOptions, d: Digest): Promise<boolean> {
  if (o.fetches.inFlight(d) !== undefined || !(await o.stored.holds(d))) return false;
  const size = await upstreamSize(m, o, d);
  if (size === undefined) throw blobUnknown(d);
  return (await local.blobs.mountExisting(d)) !== undefined;
}

/**
 * The size of blob `d` of this repository upstream, undefined when the upstream does not have it: from
 * this repository's fetch of it in progress, else from what a HEAD told within `revalidate`, else from
 * a HEAD upstream (one for concurrent callers).
 */
async function upstreamSize(m: MirrorContext, o: MirrorOptions, d: Digest): Promise<number | undefined> {
  const fetching = o.fetches.running(`${m.name}@${d}`);
  if (fetching !== undefined) {
    const size = await fetching.then((entry) => entry.size()).catch(() => undefined);
    if (size !== undefined) return size;
  }
  const known = await m.sizes.get(d);
  if (known !== undefined) return known;
  const size = await m.flights.run(`head ${m.name}@${d}`, () => m.client.headBlob(m.remote, d, m.signal()));
  if (size !== undefined) await m.sizes.set(d, size);
  return size;
}

/** A blob another replica fetched while this one waited for its lease: it is in storage. */
class LandedElsewhere extends Error {}

/**
 * This repository's fetch of `d` (shared with every concurrent reader), cached through storage's
 * uploads; with replicas, under the fetch's lease, held until the blob is cached or the fetch failed.
 * @throws LandedElsewhere when another replica's fetch stored it meanwhile
 */
function fetchBlob(m: MirrorContext, local: CacheRepository, o: MirrorOptions, d: Digest): Promise<InFlightBlob> {
  let lease: Lease | undefined;
  let readWritten: ((start: number) => Promise<Readable>) | undefined;
  return o.fetches.fetch(`${m.name}@${d}`, {
    digest: d,
    async start(signal) {
      const claimed = await m.claim(`blob:${m.name}@${d}`, () => local.blobs.stat(d));
      if ('landed' in claimed) throw new LandedElsewhere(`${d} was fetched by another replica`);
      lease = claimed.lease;
      try {
        return await m.client.getBlob(m.remote, d, signal);
      } catch (err) {
        await lease?.release();
        lease = undefined;
        throw err;
      }
    },
    // The fetch hashes the bytes as they come and ends the stream only once they match `d`.
    store: async (stream) => void (await local.uploads.ingestVerified(d, stream, { onWriting: (read) => (readWritten = read) })),
    stored: (range) => o.stored.open(d, range),
    written: async (start) => readWritten?.(start),
    report(r) {
      void lease?.release();
      m.events.fetched({ upstream: m.client.name, kind: 'blob', repository: m.name, digest: d, ...r });
    },
  });
}

function isReferrer(x: unknown): x is ReferrerDescriptor {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Partial<Record<keyof ReferrerDescriptor, unknown>>;
  return typeof r.mediaType === 'string' && typeof r.digest === 'string' && typeof r.size === 'number';
}
