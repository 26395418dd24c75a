/**
 * Storage's management face (what `/berth/v1/` and `berth usage` use): repository delete and the usage
 * figures the index keeps. Types only; registry.ts builds it (management.ts) and re-exports these.
 */
import type { Digest } from '../digest.js';
import type { CallOptions } from '../driver/driver.js';
import type { RepoName, Tag } from '../reference.js';


/**
 * What one repository costs. Bytes count each distinct blob the repository links once (layers,
 * configs and manifests): `logicalBytes` all of them, `sharedBytes` those another repository links too,
 * `exclusiveBytes` the rest (what deleting the repository would free at the next collection).
 */
export interface RepoUsage {
  readonly name: RepoName;
  readonly logicalBytes: number;
  readonly sharedBytes: number;
  readonly exclusiveBytes: number;
  readonly tags: number;
  /** Manifest revisions (images, indexes and their children, artifacts). */
  readonly manifests: number;
  /** The last manifest push and pull (times interface), undefined when not known. */
  readonly lastPush: Date | undefined;
  readonly lastPull: Date | undefined;
}

/** A page of usage figures: repositories whose names start with `prefix`, after `after`, at most `limit`. */
export interface UsageQuery {
  readonly prefix?: string | undefined;
  readonly after?: string | undefined;
  readonly limit?: number | undefined;
  /** Only repositories this answers true for (the caller's grant); the page is filled from those. */
  readonly include?: ((name: string) => boolean) | undefined;
}

/** What a repository delete removed (for notifications and the answer). */
export interface DeletedRepository {
  readonly name: RepoName;
  /** The manifest revisions it linked. */
  readonly manifests: readonly Digest[];
  /** The tags it had. */
  readonly tags: readonly Tag[];
}

export interface RegistryManagement {
  /**
   * The usage of one repository, from the index.
   * @throws NAME_UNKNOWN when it is not a repository; UNAVAILABLE while the index cannot answer
   */
  usage(name: RepoName, o?: CallOptions): Promise<RepoUsage>;
  /** Usage of a page of repositories, sorted by name. @throws UNAVAILABLE while the index cannot answer */
  usages(query: UsageQuery, o?: CallOptions): Promise<RepoUsage[]>;
  /**
   * Removes every link of the repository (tags, revisions, layers, uploads): it leaves the catalog at
   * once; blob bytes are freed by the next collection.
   * @throws NAME_UNKNOWN when it is not a repository; UNSUPPORTED when deletes are disabled
   */
  deleteRepository(name: RepoName, o?: CallOptions): Promise<DeletedRepository>;
  /**
   * A page of the repository's tags (code-unit order, after `range.after`, at most `range.limit`) with
   * the digest, media type and size of what each names and when it was last pushed (tag-details.ts).
   * @throws NAME_UNKNOWN when it is not a repository
   */
  tagDetails(name: RepoName, range: { readonly after?: string | undefined; readonly limit?: number | undefined }, o?: CallOptions): Promise<TagDetail[]>;
  /**
   * The same details of the named tags that exist (their current link is there), in code-unit order:
   * a page of the web UI in its own order.
   * @throws NAME_UNKNOWN when it is not a repository
   */
  namedTagDetails(name: RepoName, tags: readonly Tag[], o?: CallOptions): Promise<TagDetail[]>;
  /**
   * A page of the repository's tags in version or push-time order, newest first (tag-order.ts), with
   * the same details: what the web UI shows first, without sending every tag to the browser.
   * @throws NAME_UNKNOWN when it is not a repository
   */
  sortedTagDetails(name: RepoName, query: SortedTagQuery, o?: CallOptions): Promise<SortedTagPage>;
}

/** A page of tags in an order other than code-unit order. */
export interface SortedTagQuery {
  readonly order: 'version' | 'pushed';
  /** The last tag of the page before (its place in the order; it need not exist any more). */
  readonly after?: string | undefined;
  /**
   * With order `pushed` and `after`: the push time `after` was sorted by on the page before (null: it
   * had none). Undefined: the tag's push time now.
   */
  readonly afterPushed?: Date | null | undefined;
  readonly limit: number;
}

export interface SortedTagPage {
  readonly tags: TagDetail[];
  /** How many tags the repository has. */
  readonly total: number;
  /** Where the next page starts (the last entry of this one and its sort key), when there are more. */
  readonly next: { readonly tag: string; readonly pushed: Date | null } | undefined;
}

/** One tag of a page. Fields are undefined when the tag's link is broken or its manifest is gone. */
export interface TagDetail {
  readonly tag: string;
  readonly digest: Digest | undefined;
  readonly mediaType: string | undefined;
  /** The manifest's size in bytes. */
  readonly size: number | undefined;
  /** When the tag last moved (its current link's modification time). */
  readonly pushed: Date | undefined;
}
