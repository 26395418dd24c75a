/**
 * A page of a repository's tags with what each names: the manifest's digest, media type and size, and
 * when the tag was last pushed. The index answers the tags and their digests in one range read and the
 * manifests' descriptors from its hints; without an index that can vouch, the tag folders and links are
 * read from storage. The push time is the tag's `current/link` modification time: every push by tag
 * writes that link, so it is when the tag last moved (through Berth or any registry:2 on the same tree).
 */
import { nameUnknown } from '../../errors.js';
import { readLink } from '../blobs/links.js';
import { repositoryExists } from '../catalog.js';
import type { Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import { unlessNotFound } from '../driver/not-found.js';
import { type GuardedIndex, type ListRange, type TagTarget, sliceSorted } from '../indexing/index-port.js';
import { listTags } from '../manifests/tags.js';
import { paths } from '../paths.js';
import type { SortedTagPage, SortedTagQuery, TagDetail } from './management-face.js';
import { type RepoName, type Tag, parseTag } from '../reference.js';
import { type OrderedTag, byPushed, byVersion, firstAfter, sortTags, versionKey } from './tag-order.js';

/** How many tags of a page are looked up at once. */
const PARALLEL = 32;

/** @throws NAME_UNKNOWN when `name` is not a repository */
export async function listTagDetails(
  driver: StorageDriver,
  index: GuardedIndex,
  name: RepoName,
  range: ListRange,
  o?: CallOptions,
): Promise<TagDetail[]> {
  if (!(await repositoryExists(driver, name, o))) throw nameUnknown(name);
  const targets = (await index.tagTargets(name, range)) ?? (await targetsFromStorage(driver, name, range, o));
  const factsOf = factsReader(driver, index, o);
  return mapLimit(targets, PARALLEL, (t) => detailOf(driver, name, t, factsOf, o));
}

/**
 * The details of the named tags of `name` that exist (those whose current link is there), in code-unit
 * order: what a page of the web UI shows, in whatever order it sorts them. The links are read from
 * storage, a few files per tag.
 * @throws NAME_UNKNOWN when `name` is not a repository
 */
export async function namedTagDetails(driver: StorageDriver, index: GuardedIndex, name: RepoName, tags: readonly Tag[], o?: CallOptions): Promise<TagDetail[]> {
  if (!(await repositoryExists(driver, name, o))) throw nameUnknown(name);
  const unique = [...new Set(tags)].sort();
  const targets = await mapLimit(unique, PARALLEL, async (tag) => ({ tag, digest: await readLink(driver, paths.tagCurrentLink(name, tag), o) }));
  const factsOf = factsReader(driver, index, o);
  return mapLimit(targets.filter((t) => t.digest !== undefined), PARALLEL, (t) => detailOf(driver, name, t, factsOf, o));
}

/**
 * A page of the tags of `name` in version or push-time order (tag-order.ts), after `query.after`. The
 * tag names come from the index's memory when it can vouch (else from the tags folder). The push-time
 * order stats every tag's current link (its modification time is the push time). Both orders of a list
 * the index handed out are computed once and kept while the index hands out that same list: it hands
 * out a new one after any write to the repository's tags has been applied, and every push writes the
 * tag's link, so a kept order is as fresh as the listing itself. A list read from the tags folder is
 * sorted afresh on each request.
 * @throws NAME_UNKNOWN when `name` is not a repository
 */
export async function sortedTagDetails(
  driver: StorageDriver,
  index: GuardedIndex,
  name: RepoName,
  query: SortedTagQuery,
  o?: CallOptions,
): Promise<SortedTagPage> {
  const indexed = await index.tags(name, {});
  const names = indexed ?? (await listTags(driver, name, o));
  if (names === undefined && !(await repositoryExists(driver, name, o))) throw nameUnknown(name);
  const all = names ?? [];
  const compare = query.order === 'version' ? byVersion : byPushed;
  const sorted = query.order === 'version'
    ? kept(versionOrders, all, indexed !== undefined, () => sortTags(all, byVersion))
    : await kept(pushedOrders, all, indexed !== undefined, () => pushedOrder(driver, name, all));
  let from = 0;
  if (query.after !== undefined) {
    const after = query.after;
    const afterPushed = query.afterPushed === undefined ? sorted.find((t) => t.tag === after)?.pushed : query.afterPushed?.getTime();
    from = firstAfter(sorted, { tag: after, key: versionKey(after), pushed: afterPushed }, compare);
  }
  const slice = sorted.slice(from, from + query.limit);
  const last = slice.at(-1);
  const more = from + query.limit < sorted.length && last !== undefined;
  const details = await detailsOf(driver, index, name, slice.map((t) => t.tag), o);
  return {
    tags: details,
    total: all.length,
    next: more ? { tag: last.tag, pushed: last.pushed === undefined ? null : new Date(last.pushed) } : undefined,
  };
}

/** Orders computed, by the index's tag list they sort (see sortedTagDetails); a failed computation is not kept. */
const versionOrders = new WeakMap<readonly string[], OrderedTag[]>();
const pushedOrders = new WeakMap<readonly string[], Promise<OrderedTag[]>>();

/** `compute()`, kept under `list` in `memo` when `keep` (the list is the index's), or taken from there. */
function kept<T>(memo: WeakMap<readonly string[], T>, list: readonly string[], keep: boolean, compute: () => T): T {
  let got = memo.get(list);
  if (got === undefined) {
    got = compute();
    if (keep) {
      memo.set(list, got);
      if (got instanceof Promise) got.catch(() => memo.delete(list));
    }
  }
  return got;
}

/**
 * The tags sorted by push time, each stat of a current link made once. Not tied to one request's
 * signal: a kept order may serve other requests after the one that asked for it has gone.
 */
async function pushedOrder(driver: StorageDriver, name: RepoName, tags: readonly string[]): Promise<OrderedTag[]> {
  const times = new Map<string, number>();
  await mapLimit(tags, PARALLEL, async (raw) => {
    const tag = tagOf(raw);
    const link = tag === undefined ? undefined : await unlessNotFound(() => driver.stat(paths.tagCurrentLink(name, tag)));
    if (link !== undefined) times.set(raw, link.modTime.getTime());
  });
  return sortTags(tags, byPushed, times);
}

/** The details of `tags` in the order given (a tag whose link is missing or broken has no digest). */
async function detailsOf(driver: StorageDriver, index: GuardedIndex, name: RepoName, tags: readonly string[], o?: CallOptions): Promise<TagDetail[]> {
  const targets = await mapLimit(tags, PARALLEL, async (tag) => {
    const valid = tagOf(tag);
    return { tag, digest: valid === undefined ? undefined : await readLink(driver, paths.tagCurrentLink(name, valid), o) };
  });
  const factsOf = factsReader(driver, index, o);
  return mapLimit(targets, PARALLEL, (t) => detailOf(driver, name, t, factsOf, o));
}

/**
 * Reads a manifest's facts, each digest once per answer: many tags may name one manifest (a release
 * tagged `1`, `1.2`, `1.2.3` and `latest`).
 */
function factsReader(driver: StorageDriver, index: GuardedIndex, o?: CallOptions): (d: Digest) => Promise<ManifestFacts | undefined> {
  const facts = new Map<Digest, Promise<ManifestFacts | undefined>>();
  return (d) => {
    let got = facts.get(d);
    if (got === undefined) {
      got = manifestFacts(driver, index, d, o);
      facts.set(d, got);
    }
    return got;
  };
}

/** What a tag detail says of the manifest a tag names. */
interface ManifestFacts {
  readonly mediaType: string | undefined;
  readonly size: number | undefined;
}

async function targetsFromStorage(driver: StorageDriver, name: RepoName, range: ListRange, o?: CallOptions): Promise<TagTarget[]> {
  const tags = sliceSorted((await listTags(driver, name, o)) ?? [], range);
  return mapLimit(tags, PARALLEL, async (tag) => {
    const valid = tagOf(tag);
    return { tag, digest: valid === undefined ? undefined : await readLink(driver, paths.tagCurrentLink(name, valid), o) };
  });
}

async function detailOf(
  driver: StorageDriver,
  name: RepoName,
  t: TagTarget,
  factsOf: (d: Digest) => Promise<ManifestFacts | undefined>,
  o?: CallOptions,
): Promise<TagDetail> {
  const tag = tagOf(t.tag);
  const link = tag === undefined ? undefined : await unlessNotFound(() => driver.stat(paths.tagCurrentLink(name, tag), o));
  const base = { tag: t.tag, digest: t.digest, pushed: link?.modTime };
  const facts = t.digest === undefined ? undefined : await factsOf(t.digest);
  return { ...base, mediaType: facts?.mediaType, size: facts?.size };
}

/** The manifest's media type and size: the index's descriptor when it has one, else the stored bytes. */
async function manifestFacts(driver: StorageDriver, index: GuardedIndex, d: Digest, o?: CallOptions): Promise<ManifestFacts | undefined> {
  const hint = await index.descriptorOf(d);
  if (hint?.mediaType !== undefined) return { mediaType: hint.mediaType, size: hint.size };
  return readManifestFacts(driver, d, o);
}

/** The stored manifest's size and media type (its `mediaType` field), when its bytes exist. */
async function readManifestFacts(driver: StorageDriver, d: Digest, o?: CallOptions): Promise<ManifestFacts | undefined> {
  const bytes = await unlessNotFound(() => driver.getContent(paths.blobData(d), o));
  if (bytes === undefined) return undefined;
  let mediaType: string | undefined;
  try {
    const doc: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof doc === 'object' && doc !== null && 'mediaType' in doc && typeof doc.mediaType === 'string') mediaType = doc.mediaType;
  } catch {
    mediaType = undefined;
  }
  return { size: bytes.length, mediaType };
}

/** The tag, when its name is one the grammar allows (a tree copied in could hold others: no link is read for them). */
function tagOf(tag: string): Tag | undefined {
  try {
    return parseTag(tag);
  } catch {
    return undefined;
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
