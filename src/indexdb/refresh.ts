/**
 * Re-reading one changed item from storage and writing its entries: the only way the index changes
 * outside a rebuild. Each function reads first and writes after, and index-db.ts runs at most one of
 * them per item at a time (key-queue.ts), so the entry ends as storage ends (index-port.ts, rule 2).
 *
 * A `contents` change (a repository's `_manifests` or `_layers` folder written or removed: a repository
 * delete) is not one item: `itemsOf` lists the items it may have touched, every tag, revision and layer
 * link the database holds for the repository and every one storage holds now, and index-db.ts
 * refreshes each as if it had been reported alone. An item some other request writes meanwhile is
 * reported by that request too, and its refreshes take turns with this one's in its queue slot, so the
 * entry still ends as storage ends; no full rebuild is needed.
 */
import type { Digest } from '../storage/digest.js';
import type { IndexChange, IndexSource, RepoName, Tag } from '../storage/indexing/index-port.js';
import { type Distrust, type IndexLevel, isBlobHint, putBlobHints } from './entries.js';
import {
  GENERATION_KEY, blobKey, contentsKey, isIndexable, lastField, linkKey, linkKeyFields, linkRange, referrerKey, repoKey, subjectKey, subjectRange, tagKey,
  tagRange, timeKey, timeKeyFields, timeRange,
} from './keys.js';
import { parseDigest } from '../storage/digest.js';
import { linkOps } from './usage.js';

/** The queue key of a change: one per item, so refreshes of one item never overlap. */
export function itemKey(c: IndexChange): string {
  switch (c.kind) {
    case 'repository':
      return repoKey(c.repo);
    case 'tag':
      return tagKey(c.repo, c.tag);
    case 'revision':
      return subjectKey(c.repo, c.digest);
    case 'layer':
      return linkKey(c.repo, c.digest, 'layer');
    case 'blob':
      return blobKey(c.digest);
    case 'contents':
      return contentsKey(c.repo);
    case 'everything':
      return GENERATION_KEY;
  }
}

/** A change that names one item (not `everything` or `contents`). */
export type ItemChange = Exclude<IndexChange, { kind: 'everything' | 'contents' }>;

/** What an index holds of one repository's items (a `contents` change's items are these and storage's). */
export interface HeldItems {
  readonly tags: Set<Tag>;
  readonly revisions: Set<Digest>;
  readonly layers: Set<Digest>;
}

/** The items a `contents` change of `repo` may have touched: what the database holds of it and what storage holds now. */
export async function itemsOf(db: IndexLevel, source: IndexSource, repo: RepoName): Promise<ItemChange[]> {
  const held: HeldItems = { tags: new Set(), revisions: new Set(), layers: new Set() };
  if (isIndexable(repo)) {
    for (const key of await db.keys(tagRange(repo, {})).all()) held.tags.add(storedTag(lastField(key)));
    for (const key of await db.keys(linkRange(repo)).all()) {
      const { second, how } = linkKeyFields(key);
      const d = parseDigest(second);
      if (d !== undefined) (how === 'layer' ? held.layers : held.revisions).add(d);
    }
    for (const key of [...(await db.keys(subjectRange(repo)).all()), ...(await db.keys(timeRange(repo)).all())]) {
      const d = parseDigest(key.startsWith('p') ? timeKeyFields(key).digest : lastField(key));
      if (d !== undefined) held.revisions.add(d);
    }
  }
  return contentsItems(source, repo, held);
}

/** The repository, and each tag, revision and layer link in `held` or in storage now, as changes of their own. */
export async function contentsItems(source: IndexSource, repo: RepoName, held: HeldItems): Promise<ItemChange[]> {
  for (const tag of await source.tagNames(repo)) held.tags.add(tag);
  for await (const d of source.revisions(repo)) held.revisions.add(d);
  for await (const d of source.layers(repo)) held.layers.add(d);
  return [
    { kind: 'repository', repo },
    ...[...held.tags].map((tag): ItemChange => ({ kind: 'tag', repo, tag })),
    ...[...held.revisions].map((digest): ItemChange => ({ kind: 'revision', repo, digest })),
    ...[...held.layers].map((digest): ItemChange => ({ kind: 'layer', repo, digest })),
  ];
}

/** A tag read back from an index, which was written from a Tag the IndexSource gave (as usage.ts storedName). */
export function storedTag(field: string): Tag {
  return field as Tag;
}

/**
 * Re-reads the item `change` names and writes its entries. Answers the blob whose cost (usage.ts) must
 * be recounted after it, if any. Rejects with storage's or LevelDB's error.
 */
export async function refreshItem(db: IndexLevel, source: IndexSource, change: IndexChange, distrust: Distrust): Promise<Digest | undefined> {
  switch (change.kind) {
    case 'repository':
      await refreshRepository(db, source, change.repo, distrust);
      return undefined;
    case 'tag':
      await refreshTag(db, source, change.repo, change.tag, distrust);
      return undefined;
    case 'revision':
      return refreshRevision(db, source, change.repo, change.digest, distrust);
    case 'layer':
      return refreshLayer(db, source, change.repo, change.digest, distrust);
    case 'blob':
      await refreshBlob(db, source, change.digest);
      return change.digest;
    case 'contents':
      return undefined; // not one item: index-db.ts refreshes each of `itemsOf`
    case 'everything':
      return undefined; // only a rebuild can tell; index-db.ts starts one
  }
}

async function refreshRepository(db: IndexLevel, source: IndexSource, repo: RepoName, distrust: Distrust): Promise<void> {
  if (!isIndexable(repo)) {
    distrust.catalog = true;
    return;
  }
  if (await source.repositoryExists(repo)) await db.put(repoKey(repo), 1);
  else await db.del(repoKey(repo));
}

async function refreshTag(db: IndexLevel, source: IndexSource, repo: RepoName, tag: Tag, distrust: Distrust): Promise<void> {
  if (!isIndexable(repo) || !isIndexable(tag)) {
    distrust.repos.add(repo);
    return;
  }
  // A tag lists while its folder exists, whatever its current/link holds (as the walk lists it).
  const target = await source.tagTarget(repo, tag);
  const exists = target !== undefined || (await source.tagExists(repo, tag));
  if (exists) await db.put(tagKey(repo, tag), target ?? '');
  else await db.del(tagKey(repo, tag));
}

type BatchOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

/** Whether `repo` links `d` in `_layers` (usage.ts). */
async function refreshLayer(db: IndexLevel, source: IndexSource, repo: RepoName, d: Digest, distrust: Distrust): Promise<Digest | undefined> {
  if (!isIndexable(repo)) {
    distrust.repos.add(repo);
    distrust.usage = true;
    return undefined;
  }
  await db.batch(linkOps(repo, d, 'layer', await source.layerExists(repo, d)));
  return d;
}

async function refreshRevision(db: IndexLevel, source: IndexSource, repo: RepoName, d: Digest, distrust: Distrust): Promise<Digest | undefined> {
  if (!isIndexable(repo)) {
    distrust.repos.add(repo);
    distrust.usage = true;
    return undefined;
  }
  const facts = (await source.revisionExists(repo, d)) ? await source.revisionFacts(d) : undefined;
  const before = await db.get(subjectKey(repo, d));
  const ops: BatchOp[] = [];
  if (typeof before === 'string' && before !== facts?.referrer?.subject) {
    ops.push({ type: 'del', key: referrerKey(repo, before as Digest, d) }, { type: 'del', key: subjectKey(repo, d) });
  }
  if (facts?.referrer) {
    ops.push({ type: 'put', key: referrerKey(repo, facts.referrer.subject, d), value: facts.referrer.descriptor });
    ops.push({ type: 'put', key: subjectKey(repo, d), value: facts.referrer.subject });
  }
  if (facts) await putBlobHints(facts, async (key, value) => void ops.push({ type: 'put', key, value }));
  // Times (times.ts): dropped with the revision; a revision without an entry gets its link's time.
  if (!facts) ops.push({ type: 'del', key: timeKey(repo, d) });
  else if ((await db.get(timeKey(repo, d))) === undefined) {
    const pushedAt = await source.revisionLinkTime(repo, d);
    if (pushedAt !== undefined) ops.push({ type: 'put', key: timeKey(repo, d), value: { pushedAt } });
  }
  ops.push(...linkOps(repo, d, 'revision', facts !== undefined));
  await db.batch(ops);
  return d;
}

async function refreshBlob(db: IndexLevel, source: IndexSource, d: Digest): Promise<void> {
  const info = await source.blob(d);
  if (!info) return db.del(blobKey(d));
  const known = await db.get(blobKey(d));
  const mediaType = isBlobHint(known) ? known.mediaType : undefined;
  return db.put(blobKey(d), { size: info.size, ...(mediaType !== undefined && { mediaType }) });
}
