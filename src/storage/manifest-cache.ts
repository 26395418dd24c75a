/**
 * A bounded cache of what stored manifests say about themselves. Manifests are content-addressed and
 * never change, so an entry is never stale; the bound only limits memory.
 */
import type { Digest } from './digest.js';
import type { ManifestInfo } from './manifest-format.js';

/** What a stored manifest says of itself, and its size. */
export interface ManifestSummary {
  readonly mediaType: string;
  readonly size: number;
  readonly info?: ManifestInfo;
}

/** Summaries of manifests by digest, bounded in number. */
export interface ManifestCache {
  get(d: Digest): ManifestSummary | undefined;
  /** Describes `content` (once per digest) and keeps the answer. */
  remember(
    d: Digest,
    content: Buffer,
    describe: (body: Uint8Array) => { mediaType: string; info?: ManifestInfo },
  ): ManifestSummary;
}

/** A cache holding at most `maxEntries` summaries, least recently used dropped first. */
export function createManifestCache(maxEntries = 10_000): ManifestCache {
  const entries = new Map<Digest, ManifestSummary>();
  return {
    get(d) {
      const hit = entries.get(d);
      if (hit) {
        // Map keeps insertion order: re-inserting makes this the most recently used entry.
        entries.delete(d);
        entries.set(d, hit);
      }
      return hit;
    },
    remember(d, content, describe) {
      const known = this.get(d);
      if (known) return known;
      const summary: ManifestSummary = { ...describe(content), size: content.length };
      entries.set(d, summary);
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as Digest);
      return summary;
    },
  };
}
