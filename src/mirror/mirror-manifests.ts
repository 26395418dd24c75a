/**
 * Manifests of one mirrored repository. By digest: from the cache, else fetched once from the upstream,
 * checked against the digest and cached. By tag: fetched (one GET) when never cached; the cached
 * manifest while the tag was revalidated within `revalidate`; otherwise a HEAD upstream says whether the digest changed (Docker Hub does not count
 * HEADs against its pull limit), and only a changed tag is fetched again. When the upstream is down,
 * slow, answers 429 or 5xx, a cached tag is served marked stale; a tag never cached fails with the
 * upstream's status as a spec code. Concurrent fetches of one manifest share one upstream request. A
 * fetched manifest is answered once its digest is checked, while it is written to the cache.
 */
import { isRegistryError, manifestUnknown, unsupported } from '../errors.js';
import { type Digest, digestAlgorithm, digestOf, parseDigest } from '../storage/digest.js';
import type { CacheManifests, RepositoryManifests, StoredManifest } from '../storage/registry.js';
import type { Reference, Tag } from '../storage/reference.js';
import type { MirrorContext } from './mirror-context.js';
import { isTransient, staleWarning, toRegistryError } from './upstream-errors.js';
import { UpstreamError, type UpstreamManifest } from './upstream.js';

/** What a registry:2 mirror asks for when the client names nothing: every manifest type. */
export const ACCEPT_ANY_MANIFEST = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** The manifests of mirrored repository `m.name`, over its local manifests. */
export function mirrorManifests(m: MirrorContext, local: CacheManifests): RepositoryManifests {
  return {
    async get(ref, o) {
      const got = await getManifest(m, local, ref, o?.accept);
      if (o?.pull === true) m.pulled(got.digest);
      return got;
    },
    put: () => Promise.reject(unsupported(`${m.name} is a read-only mirror of ${m.client.name}`)),
    delete: () => Promise.reject(unsupported(`${m.name} is a read-only mirror of ${m.client.name}`)),
    deleteTagIf: () => Promise.reject(unsupported(`${m.name} is a read-only mirror of ${m.client.name}`)),
  };
}

/** A manifest by tag or digest, from the cache or the upstream. */
async function getManifest(m: MirrorContext, local: CacheManifests, ref: Reference, accept: string | undefined): Promise<StoredManifest> {
  if ('tag' in ref) return byTag(m, local, ref, accept);
  const have = (await cached(local, ref)) ?? m.pending.get(`${m.name}@${ref.digest}`);
  if (have !== undefined) {
    m.events.hit(m.client.name);
    return have;
  }
  m.events.miss(m.client.name);
  try {
    return await fetchAndCache(m, local, ref, accept ?? ACCEPT_ANY_MANIFEST, undefined);
  } catch (err) {
    m.events.failed(m.client.name, err);
    throw toRegistryError(err, manifestUnknown(ref.digest));
  }
}

/** The cached manifest, or undefined. */
async function cached(local: CacheManifests, ref: Reference): Promise<StoredManifest | undefined> {
  try {
    return await local.get(ref);
  } catch (err) {
    if (isRegistryError(err, 'MANIFEST_UNKNOWN')) return undefined;
    throw err;
  }
}

/**
 * Fetches `ref` upstream (once for concurrent callers), checks it, answers it and caches it (under the
 * tag too, for a tag). The answer does not wait for the cache write (its fsyncs, links and tag): until
 * that is done, concurrent callers share this fetch and a GET by the digest or tag is answered from
 * `m.pending` (a tag revalidated by this fetch is fresh from now: `onFetched`); a write that fails
 * leaves nothing (the next request fetches again) and is logged with the fetch.
 */
function fetchAndCache(m: MirrorContext, local: CacheManifests, ref: Reference, accept: string, expected: Digest | undefined, onFetched?: () => void): Promise<StoredManifest> {
  const refText = 'tag' in ref ? ref.tag : ref.digest;
  // The digest a revalidation expects is part of the key: a tag that moved upstream while its earlier
  // fetch is still being written must not share that fetch (it would answer the old manifest).
  return m.flights.runHeld(`manifest ${m.name} ${refText} ${expected ?? ''} ${accept}`, async () => {
    // With replicas, one of them fetches it; the others take it from storage once it is there.
    const claimed = await m.claim(`manifest:${m.name}:${expected ?? refText}`, () => cached(local, expected === undefined ? ref : { digest: expected }));
    if ('landed' in claimed) return { value: claimed.landed, then: Promise.resolve() };
    const { lease } = claimed;
    const began = process.hrtime.bigint();
    let got: UpstreamManifest;
    let digest: Digest;
    try {
      got = await m.client.getManifest(m.remote, expected ?? refText, accept, m.signal());
      digest = checkedDigest(ref, got.content, expected ?? got.digest, m.client.name);
    } catch (err) {
      await lease?.release();
      throw err;
    }
    const manifest = { digest, mediaType: got.mediaType, content: got.content };
    const pendingKeys = [`${m.name}@${digest}`, ...('tag' in ref ? [`${m.name}:${ref.tag}`] : [])];
    for (const k of pendingKeys) m.pending.set(k, manifest);
    onFetched?.();
    const record = { upstream: m.client.name, kind: 'manifest', repository: m.name, digest, bytes: got.content.length } as const;
    const tagKey = 'tag' in ref ? `${m.name}:${ref.tag}` : undefined;
    const before = tagKey === undefined ? undefined : m.tagWrites.get(tagKey);
    const write = before === undefined
      ? local.put(ref, got.content, got.mediaType, { unchecked: true })
      : before.then(() => local.put(ref, got.content, got.mediaType, { unchecked: true }));
    const then = write.then(
      () => {
        m.events.fetched({ ...record, seconds: seconds(began) });
      },
      (err: unknown) => m.events.fetched({ ...record, seconds: seconds(began), error: err instanceof Error ? err : new Error(String(err)) }),
    ).finally(async () => {
      for (const k of pendingKeys) if (m.pending.get(k) === manifest) m.pending.delete(k);
      if (tagKey !== undefined && m.tagWrites.get(tagKey) === then) m.tagWrites.delete(tagKey);
      await lease?.release();
    });
    if (tagKey !== undefined) m.tagWrites.set(tagKey, then);
    return { value: manifest, then };
  });
}

/** A tag: cached while fresh; else revalidated by HEAD, fetched when changed, stale when the upstream fails. */
async function byTag(m: MirrorContext, local: CacheManifests, ref: { readonly tag: Tag }, accept: string | undefined): Promise<StoredManifest> {
  // A tag answered whose cache write is under way is newer than what storage has under it.
  const have = m.pending.get(`${m.name}:${ref.tag}`) ?? (await cached(local, ref));
  const key = `${m.name}:${ref.tag}`;
  if (have !== undefined && accepts(accept, have.mediaType) && (await m.fresh(key))) {
    m.events.hit(m.client.name);
    return have;
  }
  const wanted = accept ?? ACCEPT_ANY_MANIFEST;
  try {
    if (have === undefined) {
      // Never cached: one GET (a HEAD first would only tell the digest the GET tells too).
      m.events.miss(m.client.name);
      return await fetchAndCache(m, local, ref, wanted, undefined, () => m.markFresh(key));
    }
    const head = await m.flights.run(`head ${m.name}:${ref.tag} ${wanted}`, () => m.client.headManifest(m.remote, ref.tag, wanted, m.signal()));
    m.events.revalidated(m.client.name);
    if (have !== undefined && head.digest === have.digest) {
      m.markFresh(key);
      m.events.hit(m.client.name);
      return have;
    }
    m.events.miss(m.client.name);
    return await fetchAndCache(m, local, ref, wanted, head.digest !== undefined ? digestOrThrow(head.digest, m.client.name) : undefined, () => m.markFresh(key));
  } catch (err) {
    if (have !== undefined && isTransient(err)) {
      m.events.stale(m.client.name, err);
      return { ...have, stale: staleWarning(m.client.name, err) };
    }
    m.events.failed(m.client.name, err);
    throw toRegistryError(err, manifestUnknown(ref.tag));
  }
}

/** Whether a client's Accept takes `mediaType` (no Accept, or a wildcard, takes anything). */
function accepts(accept: string | undefined, mediaType: string): boolean {
  if (accept === undefined || accept.trim() === '') return true;
  return accept.split(',').some((part) => {
    const t = part.split(';')[0]?.trim() ?? '';
    return t === mediaType || t === '*/*' || t === 'application/*';
  });
}

function digestOrThrow(text: string, upstream: string): Digest {
  const d = parseDigest(text);
  if (d === undefined) throw new UpstreamError('invalid', `upstream ${upstream} sent the digest ${JSON.stringify(text)}`);
  return d;
}

/** The manifest's digest, checked against the one asked for or announced; wrong bytes are never cached. */
function checkedDigest(ref: Reference, content: Buffer, announced: string | undefined, upstream: string): Digest {
  const expected = 'digest' in ref ? ref.digest : announced === undefined ? undefined : digestOrThrow(announced, upstream);
  const actual = digestOf(content, expected === undefined ? 'sha256' : digestAlgorithm(expected));
  if (expected !== undefined && actual !== expected) {
    throw new UpstreamError('invalid', `upstream ${upstream} sent a manifest that does not match ${expected} (it hashes to ${actual})`);
  }
  return actual;
}

function seconds(began: bigint): number {
  return Number(process.hrtime.bigint() - began) / 1e9;
}
