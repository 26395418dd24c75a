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
import type { TagDetail } from './management-face.js';
import { type RepoName, type Tag, parseTag } from '../reference.js';


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
