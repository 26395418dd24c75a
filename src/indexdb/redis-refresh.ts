/**
 * What one refresh of the Redis index reads from storage (redis-index.ts applies it with the APPLY
 * script of redis-scripts.ts), and the items a `contents` change (a repository delete) stands for.
 *
 * Items are named as the LevelDB index names them (refresh.ts itemKey), so `applied` holds one ticket
 * per tag, revision, layer link, repository and blob. A revision or layer refresh also reads the
 * blob's size, which it writes under the blob's own item (and ticket), so a size read before the blob
 * was written or removed never overwrites one read after.
 */
import type { RedisClient } from '../coordination/redis-client.js';
import { type Digest, parseDigest } from '../storage/digest.js';
import type { IndexSource, RepoName } from '../storage/indexing/index-port.js';
import { isIndexable } from './keys.js';
import { type HeldItems, type ItemChange, contentsItems, itemKey, storedTag } from './refresh.js';
import type { IndexKeys } from './redis-scripts.js';

export type { ItemChange };

/** The APPLY script's op and its arguments for what storage holds of `change`'s item now. @throws storage's error */
export async function readItem(source: IndexSource, change: ItemChange): Promise<(string | number)[]> {
  const sizeOf = async (d: Digest): Promise<string | number> => (await source.blob(d))?.size ?? '';
  if (change.kind === 'blob') return ['blob', change.digest, await sizeOf(change.digest)];
  const repo = change.repo;
  const blobItem = (d: Digest): string => itemKey({ kind: 'blob', digest: d });
  switch (change.kind) {
    case 'repository':
      // A name the index cannot hold: the walk decides (the catalog was distrusted at the rebuild).
      if (!isIndexable(repo)) return ['none'];
      return ['repo', repo, (await source.repositoryExists(repo)) ? 1 : 0];
    case 'tag': {
      if (!isIndexable(repo) || !isIndexable(change.tag)) return ['distrust', repo, 0, 0];
      const exists = (await source.tagTarget(repo, change.tag)) !== undefined || (await source.tagExists(repo, change.tag));
      return ['tag', repo, change.tag, exists ? 1 : 0];
    }
    case 'revision': {
      if (!isIndexable(repo)) return ['distrust', repo, 1, 0];
      const d = change.digest;
      const facts = (await source.revisionExists(repo, d)) ? await source.revisionFacts(d) : undefined;
      const ref = facts?.referrer;
      return ['revision', repo, d, facts ? 1 : 0, ref?.subject ?? '', ref ? JSON.stringify(ref.descriptor) : '', blobItem(d), await sizeOf(d)];
    }
    case 'layer': {
      if (!isIndexable(repo)) return ['distrust', repo, 1, 0];
      const d = change.digest;
      return ['layer', repo, d, (await source.layerExists(repo, d)) ? 1 : 0, blobItem(d), await sizeOf(d)];
    }
  }
}

/**
 * The items a `contents` change of `repo` may have touched: every tag, revision and layer link the
 * index holds for it and every one storage holds now (as refresh.ts itemsOf does for LevelDB).
 * @throws Redis's or storage's error
 */
export async function itemsOf(client: RedisClient, k: IndexKeys, source: IndexSource, repo: RepoName): Promise<ItemChange[]> {
  const held: HeldItems = { tags: new Set(), revisions: new Set(), layers: new Set() };
  const strings = (reply: unknown): string[] => (Array.isArray(reply) ? reply.map(String) : []);
  const digests = (reply: unknown): Digest[] => strings(reply).flatMap((v) => parseDigest(v) ?? []);
  if (isIndexable(repo)) {
    for (const tag of strings(await client.call('ZRANGE', k.tags(repo), 0, -1))) held.tags.add(storedTag(tag));
    for (const d of digests(await client.call('SMEMBERS', k.revisions(repo)))) held.revisions.add(d);
    for (const d of digests(await client.call('HKEYS', k.subjects(repo)))) held.revisions.add(d);
    for (const d of digests(await client.call('SMEMBERS', k.layers(repo)))) held.layers.add(d);
  }
  return contentsItems(source, repo, held);
}
