/**
 * A bounded cache of stored manifests: what each says about itself and, for the smaller ones, its
 * bytes. Manifests are content-addressed and never change, so an entry is never stale; the bounds
 * only limit memory. The bytes save a manifest GET the blob's stat and read (the repository's revision
 * link is still read for every request, so a deleted manifest is never served from here).
 */
import type { Digest } from '../digest.js';
import type { ManifestInfo } from './manifest-format.js';

/** What a stored manifest says of itself, and its size. */
export interface ManifestSummary {
  readonly mediaType: string;
  readonly size: number;
  readonly info?: ManifestInfo;
}

/** Summaries of manifests by digest, bounded in number, and the bytes of recent ones, bounded in size. */
export interface ManifestCache {
  get(d: Digest): ManifestSummary | undefined;
  /** Describes `content` (once per digest) and keeps the answer. */
  remember(
    d: Digest,
    content: Buffer,
    describe: (body: Uint8Array) => { mediaType: string; info?: ManifestInfo },
  ): ManifestSummary;
  /** Keeps the bytes of manifest `d` (unless they are large), for `content`. */
  keepContent(d: Digest, content: Buffer): void;
  /** The bytes of manifest `d` when they are cached (callers must not modify them). */
  content(d: Digest): Buffer | undefined;
}

/** Bounds of a manifest cache. */
export interface ManifestCacheLimits {
  /** Summaries kept, least recently used dropped first. Default 10,000. */
  readonly maxEntries?: number;
  /** Bytes of manifest content kept (keepContent), least recently used dropped first. Default 8 MiB. */
  readonly maxContentBytes?: number;
}

/** A manifest over this share of maxContentBytes is never cached (one large manifest must not evict all). */
const LARGEST_SHARE = 16;

/** An LRU map over Map's insertion order: a hit is re-inserted as the most recently used. */
function touch<K, V>(m: Map<K, V>, k: K): V | undefined {
  const v = m.get(k);
  if (v !== undefined) {
    m.delete(k);
    m.set(k, v);
  }
  return v;
}

/** A cache within `limits`. */
export function createManifestCache(limits: ManifestCacheLimits | number = {}): ManifestCache {
  const { maxEntries = 10_000, maxContentBytes = 8 * 1024 * 1024 } = typeof limits === 'number' ? { maxEntries: limits } : limits;
  const entries = new Map<Digest, ManifestSummary>();
  const bytes = new Map<Digest, Buffer>();
  let contentBytes = 0;

  const keepContent = (d: Digest, content: Buffer): void => {
    if (touch(bytes, d) !== undefined || content.length > maxContentBytes / LARGEST_SHARE) return;
    bytes.set(d, content);
    contentBytes += content.length;
    while (contentBytes > maxContentBytes) {
      const [oldest, old] = bytes.entries().next().value as [Digest, Buffer];
      bytes.delete(oldest);
      contentBytes -= old.length;
    }
  };

  return {
    get: (d) => touch(entries, d),
    remember(d, content, describe) {
      const known = touch(entries, d);
      if (known) return known;
      const summary: ManifestSummary = { ...describe(content), size: content.length };
      entries.set(d, summary);
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as Digest);
      return summary;
    },
    keepContent,
    content: (d) => touch(bytes, d),
  };
}
