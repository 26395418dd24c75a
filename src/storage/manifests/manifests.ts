/**
 * Manifests of one repository. The bytes live in the global blob store exactly as pushed; the
 * repository holds a revision link per manifest and tags that name revisions.
 *
 * A PUT is accepted only when everything it refers to is already in the repository (blobs linked,
 * index children present as revisions); a `subject` need not exist (OCI v1.1).
 */
import { digestInvalid, isRegistryError, isTooLarge, manifestBlobUnknown, manifestUnknown, tooLarge, unsupported } from '../../errors.js';
import type { BlobStore } from '../blobs/blobs.js';
import { type Digest, DIGEST_ALGORITHMS, digestAlgorithm, digestOf } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import type { LinkGate } from '../maintenance/link-gate.js';
import type { ManifestTimes } from '../indexing/manifest-times.js';
import type { LinkedBlobStore } from '../blobs/linked-blobs.js';
import { readLink, writeLink } from '../blobs/links.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { type ManifestInfo, MAX_MANIFEST_BYTES, describeStored, parseManifest } from './manifest-format.js';
import type { ManifestCache } from './manifest-cache.js';
import { paths, revisionDigestOf } from '../paths.js';
import type { Reference, RepoName, Tag } from '../reference.js';
import type { TagStore } from './tags.js';
import { type ImmutableTags, NO_IMMUTABLE_TAGS, immutableTagDenied } from './immutable-tags.js';
import type { Quotas } from '../quotas/quota-port.js';
import type { TagLanes } from './tag-lanes.js';

/** A manifest as stored: its digest, media type and exact bytes. */
export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly content: Buffer;
  /**
   * Set by a mirror (src/mirror/) serving a cached manifest it could not revalidate with its upstream:
   * the text of a `Warning` header saying it may be stale. Storage never sets it.
   */
  readonly stale?: string;
}

/** Options of a manifest read. */
export interface ManifestGetOptions extends CallOptions {
  /** The media types the client accepts (its `Accept`); storage ignores them, a mirror asks its upstream for them. */
  readonly accept?: string | undefined;
  /** A client's GET (not HEAD): noted as a pull of the revision (manifest-times.ts). */
  readonly pull?: boolean;
}

/** Options of a manifest write. */
export interface ManifestPutOptions extends CallOptions {
  /**
   * Store without checking that what the manifest names is present: a mirror caches a manifest before
   * the blobs it names, which it fetches when they are asked for.
   */
  readonly unchecked?: boolean;
}

/** What a manifest PUT stored: its digest, and its subject when it has one. */
export interface PutManifestResult {
  readonly digest: Digest;
  readonly subject?: Digest;
}

/** The manifests of one repository. */
export interface ManifestStore {
  /** @throws RegistryError MANIFEST_UNKNOWN */
  get(ref: Reference, o?: ManifestGetOptions): Promise<StoredManifest>;
  /**
   * Stores a manifest under a tag or its digest. @throws MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN,
   * DIGEST_INVALID (body does not match the digest in the URL), MANIFEST_INVALID (413, over 4 MiB)
   */
  put(ref: Reference, content: Buffer, contentType: string | undefined, o?: ManifestPutOptions): Promise<PutManifestResult>;
  /**
   * By digest: the revision and every tag naming it; by tag: that tag only. Answers the tags removed.
   * @throws MANIFEST_UNKNOWN, UNSUPPORTED
   */
  delete(ref: Reference, o?: CallOptions): Promise<{ readonly untagged: readonly string[] }>;
  /**
   * Deletes `tag` only while it names `d`, with no write of that tag in between (tag-lanes.ts):
   * answers false, deleting nothing, when it names another manifest or nothing.
   * @throws UNSUPPORTED, DENIED (an immutable tag)
   */
  deleteTagIf(tag: Tag, d: Digest, o?: CallOptions): Promise<boolean>;
  /** Every manifest revision of the repository, in no particular order. */
  revisions(o?: CallOptions): AsyncIterable<Digest>;
  /** What a stored manifest says of itself (cached: manifests never change). */
  describe(d: Digest, o?: CallOptions): Promise<{ mediaType: string; size: number; info?: ManifestInfo } | undefined>;
}

/** What a manifest store needs from its repository and registry. */
export interface ManifestStoreOptions {
  readonly driver: StorageDriver;
  readonly name: RepoName;
  readonly blobs: BlobStore;
  readonly linked: LinkedBlobStore;
  readonly tags: TagStore;
  readonly cache: ManifestCache;
  readonly gate: LinkGate;
  readonly times: ManifestTimes;
  readonly immutable: ImmutableTags;
  readonly quotas: Quotas;
  /** Orders the writes of each tag (shared by every registry over this storage in the process). */
  readonly lanes: TagLanes;
  readonly deleteEnabled: boolean;
}


/** The manifest store of one repository. */
export function createManifestStore(opts: ManifestStoreOptions): ManifestStore {
  const { driver, name, blobs, tags, cache } = opts;

  const hasRevision = async (d: Digest, o?: CallOptions): Promise<boolean> =>
    (await readLink(driver, paths.revisionLink(name, d), o)) === d;

  const resolve = async (ref: Reference, o?: CallOptions): Promise<Digest> => {
    const d = 'tag' in ref ? await tags.resolve(ref.tag, o) : ref.digest;
    if (d === undefined || !(await hasRevision(d, o))) throw manifestUnknown('tag' in ref ? ref.tag : ref.digest);
    return d;
  };

  const store: ManifestStore = {
    async get(ref, o) {
      const d = await resolve(ref, o);
      // The revision link was just read, so the manifest is in this repository; its bytes never change
      // under their digest, so cached ones are as good as the blob's (and save a stat and a read).
      let content = cache.content(d);
      if (content === undefined) {
        // A revision whose bytes are gone (a damaged or half-copied root) is as good as unknown.
        content = await blobs.readSmall(d, MAX_MANIFEST_BYTES, o).catch((err: unknown) => {
          throw isRegistryError(err, 'BLOB_UNKNOWN') ? manifestUnknown(d) : err;
        });
        cache.keepContent(d, content);
      }
      const { mediaType } = cache.remember(d, content, describeStored);
      if (o?.pull === true) opts.times.pulled(name, d);
      return { digest: d, mediaType, content };
    },

    async put(ref, content, contentType, o) {
      if (content.length > MAX_MANIFEST_BYTES) throw tooLarge(MAX_MANIFEST_BYTES, 'MANIFEST_INVALID');
      const info = parseManifest(content, contentType);
      const d = manifestDigest(ref, content);
      const named = [d, ...info.blobs.map((b) => b.digest), ...info.children.map((c) => c.digest)];
      // Inside the gate, so the collector cannot delete what this manifest names while it is stored.
      // The quotas count the manifest's own bytes (what it names is linked, so counted, already).
      const store = (): Promise<void> => opts.quotas.admitLink(name, d, content.length, () => opts.gate.link(named, async () => {
        if (o?.unchecked !== true) await checkReferences(opts, info, o);
        await blobs.putSmall(d, content, o);
        // Links after the bytes, the tag after the revision: a reader never follows a link to nothing.
        await writeLink(driver, paths.revisionLink(name, d), d, o);
        if ('tag' in ref) await tags.tag(ref.tag, d, o);
      }), o);
      if ('tag' in ref) {
        await opts.lanes.run(name, ref.tag, async () => {
          await refuseMove(opts, ref.tag, d, o);
          await store();
        });
      } else await store();
      cache.remember(d, content, describeStored);
      cache.keepContent(d, content);
      await opts.times.pushed(name, d);
      return { digest: d, ...(info.subject && { subject: info.subject.digest }) };
    },

    async delete(ref, o) {
      if (!opts.deleteEnabled) throw unsupported('deletion is disabled (storage.delete.enabled)');
      if ('tag' in ref) {
        const { tag } = ref;
        return opts.lanes.run(name, tag, async () => {
          await refuseDelete(opts, ref, o);
          if (!(await tags.untag(tag, o))) throw manifestUnknown(tag);
          return { untagged: [tag] };
        });
      }
      await refuseDelete(opts, ref, o);
      if (!(await hasRevision(ref.digest, o))) throw manifestUnknown(ref.digest);
      const untagged = await tags.untagDigest(ref.digest, o);
      await deleteIfExists(driver, paths.revisionDir(name, ref.digest), o);
      return { untagged };
    },

    async deleteTagIf(tag, d, o) {
      if (!opts.deleteEnabled) throw unsupported('deletion is disabled (storage.delete.enabled)');
      return opts.lanes.run(name, tag, async () => {
        if ((await tags.resolve(tag, o)) !== d) return false;
        await refuseDelete(opts, { tag }, o);
        return tags.untag(tag, o);
      });
    },

    revisions: (o) => listRevisions(driver, name, o),

    async describe(d, o) {
      const known = cache.get(d);
      if (known) return known;
      try {
        return cache.remember(d, await blobs.readSmall(d, MAX_MANIFEST_BYTES, o), describeStored);
      } catch (err) {
        // A missing or oversized revision describes nothing; anything else is a real failure.
        if (isRegistryError(err, 'BLOB_UNKNOWN') || isTooLarge(err)) return undefined;
        throw err;
      }
    },
  };
  return store;
}

/** Refuses to point an immutable tag that is set at another manifest (immutable-tags.ts). */
async function refuseMove(opts: ManifestStoreOptions, tag: Tag, d: Digest, o?: CallOptions): Promise<void> {
  const rule = opts.immutable.ruleFor(opts.name, tag);
  if (rule === undefined) return;
  const current = await opts.tags.resolve(tag, o);
  if (current !== undefined && current !== d) throw immutableTagDenied(opts.name, tag, rule, `moved from ${current} to another manifest`);
}

/** Refuses to delete an immutable tag, or a manifest one points to. */
async function refuseDelete(opts: ManifestStoreOptions, ref: Reference, o?: CallOptions): Promise<void> {
  if ('tag' in ref) {
    const rule = opts.immutable.ruleFor(opts.name, ref.tag);
    if (rule !== undefined && (await opts.tags.resolve(ref.tag, o)) !== undefined) throw immutableTagDenied(opts.name, ref.tag, rule, 'deleted');
    return;
  }
  if (opts.immutable === NO_IMMUTABLE_TAGS) return;
  for (const tag of (await opts.tags.all(o)) ?? []) {
    const rule = opts.immutable.ruleFor(opts.name, tag);
    if (rule !== undefined && (await opts.tags.resolve(tag, o)) === ref.digest) {
      throw immutableTagDenied(opts.name, tag, rule, `deleted with its manifest ${ref.digest}`);
    }
  }
}

/** The manifest's digest: the URL's digest (checked against the body), or sha256 of the body for a tag. */
function manifestDigest(ref: Reference, content: Buffer): Digest {
  if ('tag' in ref) return digestOf(content);
  const actual = digestOf(content, digestAlgorithm(ref.digest));
  if (actual !== ref.digest) throw digestInvalid('manifest body does not match the digest in the URL', { expected: ref.digest, actual });
  return ref.digest;
}

async function checkReferences(opts: ManifestStoreOptions, info: ManifestInfo, o?: CallOptions): Promise<void> {
  for (const blob of info.blobs) {
    if ((await opts.linked.stat(blob.digest, o)) === undefined) throw manifestBlobUnknown(blob.digest);
  }
  for (const child of info.children) {
    const present = (await readLink(opts.driver, paths.revisionLink(opts.name, child.digest), o)) === child.digest;
    if (!present || (await opts.blobs.stat(child.digest, o)) === undefined) throw manifestBlobUnknown(child.digest);
  }
}

/** Every manifest revision of repository `name` (the folders under `_manifests/revisions`), in no particular order. */
export async function* listRevisions(driver: StorageDriver, name: RepoName, o?: CallOptions): AsyncGenerator<Digest> {
  for (const alg of DIGEST_ALGORITHMS) {
    const dirs = (await unlessNotFound(() => driver.list(paths.revisionsOf(name, alg), o))) ?? [];
    for (const dir of dirs) {
      const d = revisionDigestOf(dir);
      if (d !== undefined) yield d;
    }
  }
}
