/**
 * The pull-through cache (DESIGN.md §9, issue #13): a wrapper of the Registry face HTTP uses, as
 * distribution's registry/proxy wraps its registry. `createMirror(local, upstreams)` answers the same
 * interface. A repository under an upstream's prefix (every repository, in registry:2's `remoteurl`
 * form) is a read-only mirror: it answers from storage when it can and from its upstream when it must,
 * and writes what it fetches into the normal layout through storage's own API (uploads for blobs,
 * manifests.put for manifests), under the name it is asked by, so the catalog, the index, the collector
 * and rsync all see it. Every other repository is the local one, untouched.
 *
 * Not done yet (issue #13 P3): pull times are not recorded, so `ttl` expiry and `budget` eviction do
 * not happen (cached content stays until the ordinary collector removes it); registry:2's
 * scheduler-state.json is neither read nor written; `credentialsfile` is read but not watched.
 */
import { blobUnknown, isRegistryError, nameUnknown, unsupported } from '../errors.js';
import type { BlobInfo, BlobStore } from '../storage/blobs.js';
import type { Digest } from '../storage/digest.js';
import type { ReferrerDescriptor } from '../storage/referrers.js';
import type { RepoName } from '../storage/reference.js';
import type { Registry, Repository } from '../storage/registry.js';
import type { UploadStore } from '../storage/uploads.js';
import type { BlobSpool } from './blob-spool.js';
import { type MirrorContext, type MirrorEvents, NO_EVENTS, createFlights } from './mirror-context.js';
import { mirrorManifests } from './mirror-manifests.js';
import { isNotFound, isTransient, toRegistryError } from './upstream-errors.js';
import type { UpstreamClient } from './upstream.js';

/** One upstream as the mirror uses it. */
export interface MirrorUpstream {
  readonly client: UpstreamClient;
  /** Repositories under `<prefix>/` are this upstream's; undefined: every repository is (registry:2's form). */
  readonly prefix: string | undefined;
  readonly revalidateMs: number;
}

export interface MirrorOptions {
  readonly local: Registry;
  readonly upstreams: readonly MirrorUpstream[];
  /** Where blob fetches spool (blob-spool.ts). */
  readonly spool: BlobSpool;
  readonly events?: MirrorEvents;
  /** How long a manifest or tag-list fetch may take in all (registry:2's cachewritetimeout, 5m). */
  readonly fetchTimeoutMs?: number;
}

const DEFAULT_FETCH_TIMEOUT_MS = 5 * 60_000;

/** The registry `o.local` with the repositories of `o.upstreams` mirrored. */
export function createMirror(o: MirrorOptions): Registry {
  const events = o.events ?? NO_EVENTS;
  const flights = createFlights();
  const checked = new Map<string, number>();
  const timeout = o.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;

  const upstreamOf = (name: string): { upstream: MirrorUpstream; remote: string } | undefined => {
    for (const upstream of o.upstreams) {
      if (upstream.prefix === undefined) return { upstream, remote: name };
      if (name.startsWith(`${upstream.prefix}/`)) return { upstream, remote: name.slice(upstream.prefix.length + 1) };
    }
    return undefined;
  };

  const views = new Map<RepoName, Repository>();
  const repository = (name: RepoName): Repository => {
    const local = o.local.repository(name);
    const found = upstreamOf(name);
    if (found === undefined) return local;
    let view = views.get(name);
    if (view === undefined) {
      const context: MirrorContext = {
        name, remote: found.remote, client: found.upstream.client, flights, events,
        fresh: (key) => (checked.get(key) ?? Number.NEGATIVE_INFINITY) + found.upstream.revalidateMs > Date.now(),
        markFresh: (key) => void checked.set(key, Date.now()),
        signal: () => AbortSignal.timeout(timeout),
      };
      view = mirroredRepository(context, local, o);
      views.set(name, view);
      if (views.size > 256) views.delete(views.keys().next().value as RepoName);
    }
    return view;
  };

  return { ...o.local, repository, blobs: spoolingBlobs(o.local.blobs, o.spool) };
}

/** The global blob store, with blobs being fetched readable before they are cached. */
function spoolingBlobs(local: BlobStore, spool: BlobSpool): BlobStore {
  return {
    ...local,
    async open(d, range, opts) {
      const stream = await spool.inFlight(d)?.open(range);
      return stream ?? local.open(d, range, opts);
    },
    // A blob still arriving has no bytes in storage to redirect to.
    redirectUrl: async (d, method) => (spool.inFlight(d) === undefined ? local.redirectUrl(d, method) : undefined),
  };
}

const readOnly = (m: MirrorContext): Error => unsupported(`${m.name} is a read-only mirror of ${m.client.name}`);

function mirroredRepository(m: MirrorContext, local: Repository, o: MirrorOptions): Repository {
  const refuse = (): Promise<never> => Promise.reject(readOnly(m));
  const uploads: UploadStore = { start: refuse, status: refuse, append: refuse, commit: refuse, cancel: refuse };
  return {
    name: local.name,
    blobs: {
      ...local.blobs,
      link: refuse,
      unlink: refuse,
      delete: refuse,
      mountFrom: refuse,
      mountExisting: refuse,
      require: (d) => requireBlob(m, local, o, d),
    },
    uploads,
    manifests: mirrorManifests(m, local.manifests),
    async tags(range) {
      try {
        const limit = range?.limit;
        const page = await m.flights.run(`tags ${m.name} ${range?.after ?? ''} ${limit ?? ''}`, () =>
          m.client.tags(m.remote, { n: limit, last: range?.after }, m.signal()));
        const after = range?.after;
        const sorted = [...page].sort().filter((t) => after === undefined || t > after);
        return limit === undefined ? sorted : sorted.slice(0, limit);
      } catch (err) {
        if (isTransient(err)) return local.tags(range).catch((e: unknown) => Promise.reject(isRegistryError(e, 'NAME_UNKNOWN') ? toRegistryError(err, e) : e));
        m.events.failed(m.client.name, err);
        throw toRegistryError(err, nameUnknown(m.name));
      }
    },
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

/**
 * A blob of a mirrored repository: linked here already, or being fetched, or in the global store from
 * another repository (linked once the upstream confirms this repository has it), or fetched now.
 */
async function requireBlob(m: MirrorContext, local: Repository, o: MirrorOptions, d: Digest): Promise<BlobInfo> {
  try {
    const info = await local.blobs.require(d);
    m.events.hit(m.client.name);
    return info;
  } catch (err) {
    if (!isRegistryError(err, 'BLOB_UNKNOWN')) throw err;
  }
  m.events.miss(m.client.name);
  try {
    // The bytes may be here under another repository; only the upstream may say this one has them
    // (a user allowed to pull this mirror must not read another repository's blobs by digest).
    if (o.spool.inFlight(d) === undefined && (await o.local.blobs.stat(d)) !== undefined) {
      const size = await m.flights.run(`head ${m.name}@${d}`, () => m.client.headBlob(m.remote, d, m.signal()));
      if (size === undefined) throw blobUnknown(d);
      const linked = await local.blobs.mountExisting(d);
      if (linked !== undefined) return linked;
    }
    const entry = await o.spool.fetch(`${m.name}@${d}`, {
      digest: d,
      start: (signal) => m.client.getBlob(m.remote, d, signal),
      store: async (stream) => {
        const upload = await local.uploads.start();
        try {
          await local.uploads.commit(upload.id, d, stream);
        } catch (err) {
          await local.uploads.cancel(upload.id).catch(() => undefined);
          throw err;
        }
      },
      report: (r) => m.events.fetched({ upstream: m.client.name, kind: 'blob', repository: m.name, digest: d, ...r }),
    });
    return { digest: d, size: await entry.size() };
  } catch (err) {
    m.events.failed(m.client.name, err);
    throw toRegistryError(err, blobUnknown(d));
  }
}

function isReferrer(x: unknown): x is ReferrerDescriptor {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Partial<Record<keyof ReferrerDescriptor, unknown>>;
  return typeof r.mediaType === 'string' && typeof r.digest === 'string' && typeof r.size === 'number';
}
