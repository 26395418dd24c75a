/**
 * Expiry of cached content (issue #13): the eviction pass that removes, through storage's own manifest delete, every cached image last pulled longer ago than
 * its upstream's `ttl`, then the least recently pulled ones while the cache is over `budget`. Evicting
 * removes the manifest revision and the tags naming it. The pass is a step of each collector run, before
 * its mark (gc/run.ts `evict`), so the same run sweeps the bytes; the sweep
 * orders its deletes against pulls by the link gate and keeps every blob a kept image still names. A
 * pull racing an eviction finds the manifest or fetches it again: it never breaks.
 *
 * An image's last pull is its revision's pull time in storage's push and pull times (ManifestTimes:
 * the listing index, Redis with replicas), where the mirror records each manifest GET; an image never
 * pulled since it was cached counts from its caching (its push time: the revision link's time).
 *
 * Sizes for the budget are each image's manifest, config and layers as its manifest states them (for
 * an index, its cached children's too); a blob shared by two images counts for both, so the budget errs
 * on the side of evicting early.
 */
import { isRegistryError } from '../errors.js';
import { type Digest, parseDigest } from '../storage/digest.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import type { ManifestTimes, Registry, Repository } from '../storage/registry.js';

/** A cached image: where it is, when it was last pulled, how big it is. */
interface Cached {
  readonly name: string;
  readonly digest: Digest;
  readonly lastPull: number;
  readonly size: number;
  readonly ttlMs: number;
}

export interface EvictionOptions {
  /** The local registry, with deletes enabled. */
  readonly local: Registry;
  /** Storage's push and pull times (the local registry's). */
  readonly times: Pick<ManifestTimes, 'timesOf'>;
  /** The `ttl` of a mirrored repository's upstream (0: never), or undefined when the name is no mirror. */
  readonly ttlOf: (name: string) => number | undefined;
  /** `proxy.budget` in bytes; undefined: none. */
  readonly budgetBytes: number | undefined;
  readonly now?: () => number;
  /** Count what would be evicted, evicting nothing. */
  readonly dryRun?: boolean;
  /** Told each eviction (metrics, log). */
  readonly evicted?: (image: { name: string; digest: string; reason: 'ttl' | 'budget'; size: number; dryRun: boolean }) => void;
}

/** One eviction pass; answers how many images it evicted (dry: would evict). */
export async function evict(o: EvictionOptions): Promise<number> {
  const now = (o.now ?? Date.now)();
  const cached = await cachedImages(o, now);
  let total = cached.reduce((n, c) => n + c.size, 0);
  let count = 0;
  const byAge = [...cached].sort((a, b) => a.lastPull - b.lastPull);
  for (const image of byAge) {
    const expired = image.ttlMs > 0 && now - image.lastPull > image.ttlMs;
    const over = o.budgetBytes !== undefined && total > o.budgetBytes;
    if (!expired && !over) continue;
    if (o.dryRun === true || (await remove(o, image))) {
      total -= image.size;
      count += 1;
      o.evicted?.({ name: image.name, digest: image.digest, reason: expired ? 'ttl' : 'budget', size: image.size, dryRun: o.dryRun === true });
    }
  }
  return count;
}

/** Every tagged image of every mirrored repository, with its last pull (or caching) time. */
async function cachedImages(o: EvictionOptions, now: number): Promise<Cached[]> {
  const found: Cached[] = [];
  for (const name of await o.local.repositories()) {
    const ttlMs = o.ttlOf(name);
    if (ttlMs === undefined) continue;
    const repo = o.local.repository(parseRepoName(name));
    const digests = new Set<Digest>();
    for (const tag of await repo.tags().catch(() => [])) {
      const manifest = await repo.manifests.get({ tag: parseTag(tag) }).catch(() => undefined);
      if (manifest !== undefined) digests.add(manifest.digest);
    }
    for (const digest of digests) {
      const times = await o.times.timesOf(repo.name, digest);
      const lastPull = times.pulledAt ?? times.pushedAt ?? now;
      found.push({ name, digest, lastPull, ttlMs, size: await sizeOf(repo, digest) });
    }
  }
  return found;
}

/** The manifest's bytes plus what it names (an index: its cached children, each with what it names). */
async function sizeOf(repo: Repository, digest: Digest, depth = 0): Promise<number> {
  const manifest = await repo.manifests.get({ digest }).catch(() => undefined);
  if (manifest === undefined) return 0;
  const doc = JSON.parse(manifest.content.toString('utf8')) as { config?: { size?: unknown }; layers?: { size?: unknown }[]; manifests?: { digest?: unknown }[] };
  let size = manifest.content.length + sizeField(doc.config) + (doc.layers ?? []).reduce((n, l) => n + sizeField(l), 0);
  if (depth === 0) {
    for (const child of doc.manifests ?? []) {
      const d = typeof child.digest === 'string' ? parseDigest(child.digest) : undefined;
      if (d !== undefined) size += await sizeOf(repo, d, 1);
    }
  }
  return size;
}

function sizeField(x: { size?: unknown } | undefined): number {
  return typeof x?.size === 'number' && Number.isFinite(x.size) && x.size > 0 ? x.size : 0;
}

/**
 * Deletes the revision and every tag naming it, and an index's children that no tag names (a pull of
 * one later fetches it again); an image already gone counts as not evicted.
 */
async function remove(o: EvictionOptions, image: Cached): Promise<boolean> {
  const repo = o.local.repository(parseRepoName(image.name));
  try {
    const manifest = await repo.manifests.get({ digest: image.digest });
    const children = (JSON.parse(manifest.content.toString('utf8')) as { manifests?: { digest?: unknown }[] }).manifests ?? [];
    await repo.manifests.delete({ digest: image.digest });
    for (const child of children) {
      const d = typeof child.digest === 'string' ? parseDigest(child.digest) : undefined;
      if (d !== undefined) await repo.manifests.delete({ digest: d }).catch(() => undefined);
    }
    return true;
  } catch (err) {
    if (isRegistryError(err, 'MANIFEST_UNKNOWN')) return false;
    throw err;
  }
}
