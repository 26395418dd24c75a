/**
 * Tags of one repository: `_manifests/tags/<tag>/current/link` names the tag's manifest, and
 * `index/<alg>/<hex>/link` records every manifest it ever named (registry:2 keeps that history).
 */
import type { Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import { readLink, writeLink } from '../blobs/links.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { paths, tagsOfListing } from '../paths.js';
import type { RepoName, Tag } from '../reference.js';
import { compareStrings } from '../listing.js';

/** The tags of one repository. */
export interface TagStore {
  /** The manifest the tag names, or undefined when the tag does not exist. */
  resolve(tag: Tag, o?: CallOptions): Promise<Digest | undefined>;
  /** Points the tag at `d`, recording `d` in the tag's index first. */
  tag(tag: Tag, d: Digest, o?: CallOptions): Promise<void>;
  /** Removes the tag's folder. Answers false when there was no such tag. */
  untag(tag: Tag, o?: CallOptions): Promise<boolean>;
  /** Every tag name, sorted, or undefined when the repository has no tags folder. */
  all(o?: CallOptions): Promise<Tag[] | undefined>;
  /** Removes every tag whose current link names `d`; answers the tags removed. */
  untagDigest(d: Digest, o?: CallOptions): Promise<Tag[]>;
}

/** The tag store of repository `name`. */
export function createTagStore(driver: StorageDriver, name: RepoName): TagStore {
  const store: TagStore = {
    resolve: (tag, o) => readLink(driver, paths.tagCurrentLink(name, tag), o),
    async tag(tag, d, o) {
      // Two writes: a crash between them leaves an unfinished tag, which the collector removes (`during`
      // records the pair as one write in progress, as putContent records each).
      const write = async (): Promise<void> => {
        await writeLink(driver, paths.tagIndexLink(name, tag, d), d, o);
        await writeLink(driver, paths.tagCurrentLink(name, tag), d, o);
      };
      await (driver.during ? driver.during(write) : write());
    },
    untag: (tag, o) => deleteIfExists(driver, paths.tag(name, tag), o),
    all: (o) => listTags(driver, name, o),
    async untagDigest(d, o) {
      const removed: Tag[] = [];
      for (const tag of (await store.all(o)) ?? []) {
        if ((await store.resolve(tag, o)) === d && (await store.untag(tag, o))) removed.push(tag);
      }
      return removed;
    },
  };
  return store;
}

/**
 * The tags of repository `name` (the folders under `_manifests/tags`), sorted in code-unit order, or
 * undefined when the repository has no tags folder. The one reader of a tag listing: the tag store,
 * the inventory and the index source all list tags through it.
 */
export async function listTags(driver: StorageDriver, name: RepoName, o?: CallOptions): Promise<Tag[] | undefined> {
  const children = await unlessNotFound(() => driver.list(paths.tags(name), o));
  return children && tagsOfListing(children).sort(compareStrings);
}
