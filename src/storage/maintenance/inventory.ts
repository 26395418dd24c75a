/**
 * The inventory of the storage tree, for tools that look at all of it: the garbage collector and the
 * integrity check (`src/gc/`). It lists what the layout holds (repositories, manifest revisions, tags,
 * layer links, global blobs), reads what a stored manifest refers to, verifies blob digests, and makes
 * the few deletions those tools need. It never decides what may be deleted: that is the caller's job,
 * and the caller must order every blob deletion against linking through `Registry.linkGate`.
 *
 * Everything is streamed: listings are async iterables over driver walks and listings; nothing holds
 * more than one directory's names at a time (and the sorted repository names). Names read from the
 * tree are trusted as they are: they came from the tree's own directory names, so they cannot leave it.
 */
import { isRegistryError, isTooLarge } from '../../errors.js';
import type { BlobStore } from '../blobs/blobs.js';
import { isRepository, repositoryDirs } from '../catalog.js';
import { type Digest, type DigestAlgorithm, DIGEST_ALGORITHMS, Digester, digestAlgorithm, parseDigest } from '../digest.js';
import { type CallOptions, type FileInfo, type LeftoverOptions, type StorageDriver, type WriterRecord, isDriverError } from '../driver/driver.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { MAX_MANIFEST_BYTES, describeStored, parseManifest } from '../manifests/manifest-format.js';
import { blobDataDigestOf, layerDigestOf, linkDigestOf, parsePath, paths, revisionDigestOf } from '../paths.js';
import type { RepoName, Tag } from '../reference.js';
import { compareStrings } from '../listing.js';
import { listTags } from '../manifests/tags.js';

export type { WriterRecord } from '../driver/driver.js';

/** A link file in a repository (`_layers/…/link` or `_manifests/revisions/…/link`). */
export interface LinkEntry {
  /** The digest the link's directory names. */
  readonly digest: Digest;
  /** When the link file was last written, in ms since the epoch (0 from `contents` without `times`). */
  readonly modTime: number;
  /** Its driver path, for messages and for `linkTarget`. */
  readonly path: string;
}

/** What a link file holds: a digest, or why it holds none. */
export type LinkTarget =
  | { readonly digest: Digest }
  | { readonly problem: 'missing' | 'empty' | 'invalid'; readonly text?: string };

/** A tag and what its `current/link` holds. */
export interface TagEntry {
  readonly tag: Tag;
  /** Driver path of the tag's `current/link`. */
  readonly path: string;
  readonly target: LinkTarget;
}

/** A blob's `data` file in the global store. */
export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
  /** When `data` was last written, in ms since the epoch. */
  readonly modTime: number;
}

/** A temporary file a write cut short left behind (Inventory.leftovers). */
export interface Leftover {
  readonly path: string;
  /** When it was last written, in ms since the epoch. */
  readonly modTime: number;
}

/** A repository's revision and layer links (Inventory.contents). */
export interface RepositoryContents {
  readonly revisions: readonly LinkEntry[];
  readonly layers: readonly LinkEntry[];
}

/** What a stored manifest refers to, or why that cannot be known. */
export type ManifestReferences =
  | {
      readonly ok: true;
      readonly mediaType: string;
      /** Config and layers the registry holds (foreign layers with `urls` left out). */
      readonly blobs: readonly Digest[];
      /** Manifests an index lists. */
      readonly children: readonly Digest[];
      readonly subject?: Digest;
    }
  | { readonly ok: false; readonly problem: string };

/** The outcome of hashing a blob's data. */
export type BlobVerification =
  | { readonly ok: true; readonly size: number }
  | { readonly ok: false; readonly problem: 'missing' }
  | { readonly ok: false; readonly problem: 'mismatch'; readonly actual: Digest; readonly size: number };

/** Enumeration and repair of the whole tree, for the collector and the integrity check. */
export interface Inventory {
  /** Every repository name (a directory holding `_layers` or `_manifests`), sorted. */
  repositories(o?: CallOptions): AsyncIterable<RepoName>;
  /** The repository's manifest revision links, in no particular order. */
  revisions(name: RepoName, o?: CallOptions): AsyncIterable<LinkEntry>;
  /** The repository's layer links (`_layers`), in no particular order. */
  layers(name: RepoName, o?: CallOptions): AsyncIterable<LinkEntry>;
  /**
   * The repository's revisions and layer links, from one listing of `_manifests/revisions` and
   * `_layers` and of each `<alg>` folder in them, and a stat of each revision's link (the `<hex>`
   * folders are not listed). `times`: each link's modification time too (a stat per layer link as well;
   * a folder whose link is missing is left out, as it is being written or removed); otherwise times
   * are 0 and every layer folder is answered, with or without its link.
   */
  contents(name: RepoName, o?: CallOptions & { readonly times?: boolean }): Promise<RepositoryContents>;
  /** The repository's tags, sorted, with what each `current/link` holds. */
  tags(name: RepoName, o?: CallOptions): AsyncIterable<TagEntry>;
  /** What the link file of `entry` holds. */
  linkTarget(entry: Pick<LinkEntry, 'path'>, o?: CallOptions): Promise<LinkTarget>;
  /** Every blob in the global store (each `blobs/<alg>/<hex2>/<hex>/data`), in no particular order. */
  blobs(o?: CallOptions): AsyncIterable<StoredBlob>;
  /**
   * The digest of every blob folder in the global store (`blobs/<alg>/<hex2>/<hex>`), from one listing
   * of each `<hex2>` folder, in no particular order: what `blobs` answers without opening each folder
   * (a folder without `data` is answered too; `statBlob` tells).
   */
  blobDigests(o?: CallOptions): AsyncIterable<Digest>;
  /** The blob's data file, or undefined when there is none. */
  statBlob(d: Digest, o?: CallOptions): Promise<StoredBlob | undefined>;
  /**
   * What the manifest stored as blob `d` refers to. A missing, oversized or unparsable manifest is
   * answered as `{ ok: false, problem }`, never thrown. @throws only driver failures
   */
  references(d: Digest, o?: CallOptions): Promise<ManifestReferences>;
  /** Hashes the blob's data in its digest's algorithm (streamed) and compares. */
  verifyBlob(d: Digest, o?: CallOptions): Promise<BlobVerification>;
  /**
   * Removes the repository's revision link for `d` and the entries for `d` in every tag's index (as
   * registry:2's garbage-collect --delete-untagged does). Answers false when there was no revision link.
   */
  deleteRevision(name: RepoName, d: Digest, o?: CallOptions): Promise<boolean>;
  /**
   * Removes the blob's directory (`blobs/<alg>/<hex2>/<hex>`); answers its driver path, or undefined
   * when it was already gone. The caller must hold `linkGate.sweep(d, …)`.
   */
  deleteBlob(d: Digest, o?: CallOptions): Promise<string | undefined>;
  /** Removes the repository's layer link for `d`. Answers false when there was none. */
  deleteLayerLink(name: RepoName, d: Digest, o?: CallOptions): Promise<boolean>;
  /** Removes the tag's folder. Answers false when there was none. */
  deleteTag(name: RepoName, tag: Tag, o?: CallOptions): Promise<boolean>;
  /**
   * What writes cut short by a crash left in the registry tree: the driver's temporary files (none for
   * drivers without `leftovers`), with when each was last written.
   */
  leftovers(o?: LeftoverOptions): AsyncIterable<Leftover>;
  /**
   * The records of the processes writing through the tree (StorageDriver.writers), or undefined when
   * the driver keeps none (then only a look through the whole tree can say what crashes left).
   */
  writers(o?: CallOptions): Promise<readonly WriterRecord[] | undefined>;
  /** Removes a record `writers` judged `gone`. */
  forgetWriter(name: string, o?: CallOptions): Promise<void>;
  /** Whether a collection has looked through the whole tree for crash leftovers and left none (paths.leftoversScanned). */
  leftoversScanned(o?: CallOptions): Promise<boolean>;
  /** Records that it has, now. */
  recordLeftoversScanned(o?: CallOptions): Promise<void>;
  /** Removes one path `leftovers` answered. Answers false when it was already gone. */
  deleteLeftover(path: string, o?: CallOptions): Promise<boolean>;
  /**
   * The repository's tags that have no `current/link` (a tag write cut short between its index link
   * and its current link), sorted, with the newest time anything in the tag's folder was written.
   */
  unfinishedTags(name: RepoName, o?: CallOptions): AsyncIterable<{ readonly tag: Tag; readonly modTime: number }>;
  /** The tag, when it has no `current/link`, with the newest time anything in its folder was written; else undefined. */
  unfinishedTag(name: RepoName, tag: Tag, o?: CallOptions): Promise<{ readonly tag: Tag; readonly modTime: number } | undefined>;
  /**
   * Moves the blob's data out of the registry tree, to Berth's quarantine beside it, and answers where
   * it went (driver path). @throws PathNotFoundError when the blob has no data
   */
  quarantineBlob(d: Digest, o?: CallOptions): Promise<string>;
}


/** An inventory over `driver` (pass the registry's observed driver so the index hears its deletions). */
export function createInventory(driver: StorageDriver, blobs: BlobStore): Inventory {
  const linkTarget = async (entry: Pick<LinkEntry, 'path'>, o?: CallOptions): Promise<LinkTarget> => {
    const raw = await unlessNotFound(() => driver.getContent(entry.path, o));
    if (raw === undefined) return { problem: 'missing' };
    const text = raw.toString('utf8').trim();
    if (text === '') return { problem: 'empty' };
    const d = parseDigest(text);
    return d === undefined ? { problem: 'invalid', text: text.slice(0, 200) } : { digest: d };
  };

  const inventory: Inventory = {
    async *repositories(o) {
      const names: RepoName[] = [];
      for await (const dir of repositoryDirs(driver, o)) if (isRepository(dir.children)) names.push(dir.name);
      yield* names.sort(compareStrings);
    },
    revisions: (name, o) => linksUnder(driver, (alg) => paths.revisionsOf(name, alg), o),
    contents: (name, o) => contentsOf(driver, name, o),
    layers: (name, o) => linksUnder(driver, (alg) => paths.layersOf(name, alg), o),
    async *tags(name, o) {
      for (const tag of (await listTags(driver, name, o)) ?? []) {
        const path = paths.tagCurrentLink(name, tag);
        yield { tag, path, target: await linkTarget({ path }, o) };
      }
    },
    linkTarget,
    async *blobs(o) {
      for await (const info of walkIfExists(driver, paths.blobsRoot, o)) {
        const d = info.isDir ? undefined : blobDataDigestOf(info.path);
        if (d !== undefined) yield { digest: d, size: info.size, modTime: info.modTime.getTime() };
      }
    },
    async *blobDigests(o) {
      for (const folder of await algorithmFolders(driver, paths.blobsRoot, o)) {
        for (const prefix of (await unlessNotFound(() => driver.list(folder, o))) ?? []) {
          for (const dir of (await unlessNotFound(() => driver.list(prefix, o))) ?? []) {
            const at = parsePath(dir);
            if (at.kind === 'blob' && at.digest !== undefined && at.rest.length === 0) yield at.digest;
          }
        }
      }
    },
    async statBlob(d, o) {
      const info = await unlessNotFound(() => driver.stat(paths.blobData(d), o));
      return info === undefined || info.isDir ? undefined : { digest: d, size: info.size, modTime: info.modTime.getTime() };
    },
    async references(d, o) {
      let body: Buffer;
      try {
        body = await blobs.readSmall(d, MAX_MANIFEST_BYTES, o);
      } catch (err) {
        if (isRegistryError(err, 'BLOB_UNKNOWN')) return { ok: false, problem: 'the manifest blob is missing' };
        if (isTooLarge(err)) return { ok: false, problem: `larger than ${MAX_MANIFEST_BYTES} bytes` };
        throw err;
      }
      return referencesOf(body);
    },
    async verifyBlob(d, o) {
      const reader = await unlessNotFound(() => driver.reader(paths.blobData(d), 0, o));
      if (reader === undefined) return { ok: false, problem: 'missing' };
      const digester = Digester.create(digestAlgorithm(d));
      for await (const chunk of reader as AsyncIterable<Buffer>) digester.update(chunk);
      const actual = digester.digest();
      return actual === d ? { ok: true, size: digester.size } : { ok: false, problem: 'mismatch', actual, size: digester.size };
    },
    async deleteRevision(name, d, o) {
      for (const tag of (await listTags(driver, name, o)) ?? []) await deleteIfExists(driver, paths.tagIndexEntry(name, tag, d), o);
      return deleteIfExists(driver, paths.revisionDir(name, d), o);
    },
    async deleteBlob(d, o) {
      const dir = paths.blobDir(d);
      return (await deleteIfExists(driver, dir, o)) ? dir : undefined;
    },
    deleteLayerLink: (name, d, o) => deleteIfExists(driver, paths.layerLinkDir(name, d), o),
    async *leftovers(o) {
      if (driver.leftovers === undefined) return;
      try {
        for await (const f of driver.leftovers(paths.root, o)) yield { path: f.path, modTime: f.modTime.getTime() };
      } catch (err) {
        if (!isDriverError(err, 'PATH_NOT_FOUND')) throw err; // an empty root has no tree yet
      }
    },
    deleteLeftover: (path, o) => deleteIfExists(driver, path, o),
    writers: async (o) => (driver.writers ? driver.writers(o) : undefined),
    async forgetWriter(name, o) {
      await driver.forgetWriter?.(name, o);
    },
    leftoversScanned: async (o) => (await unlessNotFound(() => driver.stat(paths.leftoversScanned, o))) !== undefined,
    async recordLeftoversScanned(o) {
      await driver.putContent(paths.leftoversScanned, Buffer.from(`${new Date().toISOString()}\n`), o);
    },
    async *unfinishedTags(name, o) {
      for (const tag of (await listTags(driver, name, o)) ?? []) {
        const unfinished = await inventory.unfinishedTag(name, tag, o);
        if (unfinished !== undefined) yield unfinished;
      }
    },
    async unfinishedTag(name, tag, o) {
      const current = paths.tagCurrentLink(name, tag);
      const finished = driver.exists ? await driver.exists(current, o) : (await unlessNotFound(() => driver.stat(current, o))) !== undefined;
      if (finished) return undefined;
      let modTime = (await unlessNotFound(() => driver.stat(paths.tag(name, tag), o)))?.modTime.getTime() ?? 0;
      for await (const f of walkIfExists(driver, paths.tag(name, tag), o)) modTime = Math.max(modTime, f.modTime.getTime());
      return { tag, modTime };
    },
    deleteTag: (name, tag, o) => deleteIfExists(driver, paths.tag(name, tag), o),
    async quarantineBlob(d, o) {
      const to = paths.quarantineData(d);
      await driver.move(paths.blobData(d), to, o);
      await deleteIfExists(driver, paths.blobDir(d), o);
      return to;
    },
  };
  return inventory;
}

/**
 * Inventory.contents: one listing of each `<alg>` folder of `_manifests/revisions` and `_layers`. A
 * driver with `exists` is asked whether each algorithm's folder is there (most repositories have no
 * `sha512`) and lists the first algorithm's without asking; otherwise `_manifests/revisions` and
 * `_layers` are listed for their folders (an algorithm's missing folder is not asked for: a failed
 * call costs more than a listing). Without `times`, a revision's link is looked for with `exists`.
 */
async function contentsOf(driver: StorageDriver, name: RepoName, o?: CallOptions & { readonly times?: boolean }): Promise<RepositoryContents> {
  const times = o?.times === true;
  const exists = driver.exists?.bind(driver);
  /** When the link file is there: its modification time (0 without `times`); else undefined. */
  const linkTime = async (path: string): Promise<number | undefined> => {
    if (!times && exists !== undefined) return (await exists(path, o)) ? 0 : undefined;
    const info = await unlessNotFound(() => driver.stat(path, o));
    return info === undefined ? undefined : times ? info.modTime.getTime() : 0;
  };
  const linksIn = async (top: string, digestOf: (dir: string) => Digest | undefined, stat: boolean): Promise<LinkEntry[]> => {
    const found: LinkEntry[] = [];
    for (const folder of await algorithmFolders(driver, top, o)) {
      for (const dir of (await unlessNotFound(() => driver.list(folder, o))) ?? []) {
        const digest = digestOf(dir);
        if (digest === undefined) continue;
        const path = under(dir, 'link');
        const modTime = stat ? await linkTime(path) : 0;
        if (modTime !== undefined) found.push({ digest, modTime, path });
      }
    }
    return found;
  };
  // registry:2 deletes a manifest or a layer link by removing the link file, not its folder: a revision
  // folder without a link is no revision (a stat each). A layer folder without one is answered: what
  // the layer links are for (marking all of a repository's blobs when one of its manifests cannot be
  // read, removing the links of blobs the sweep deleted) does no harm with one too many.
  return {
    revisions: await linksIn(paths.revisions(name), revisionDigestOf, true),
    layers: await linksIn(paths.layers(name), layerDigestOf, times),
  };
}

/**
 * The `<alg>` folders in `top` (driver paths) of the digest algorithms Berth knows, in DIGEST_ALGORITHMS
 * order; none when `top` is missing. With `exists`, the first algorithm's folder is answered without
 * asking (a missing one lists as empty) and each other one when it is there; otherwise `top` is listed.
 */
async function algorithmFolders(driver: StorageDriver, top: string, o?: CallOptions): Promise<string[]> {
  const exists = driver.exists?.bind(driver);
  if (exists !== undefined) {
    const [first, ...others] = DIGEST_ALGORITHMS.map((alg) => under(top, alg));
    const there: string[] = first === undefined ? [] : [first];
    for (const folder of others) if (await exists(folder, o)) there.push(folder);
    return there;
  }
  const known = new Set<string>(DIGEST_ALGORITHMS);
  const listed = (await unlessNotFound(() => driver.list(top, o))) ?? [];
  return listed.filter((p) => known.has(p.slice(p.lastIndexOf('/') + 1)))
    .sort((a, b) => DIGEST_ALGORITHMS.indexOf(baseOf(a)) - DIGEST_ALGORITHMS.indexOf(baseOf(b)));
}

function baseOf(path: string): DigestAlgorithm {
  return path.slice(path.lastIndexOf('/') + 1) as DigestAlgorithm;
}

/** References of a stored manifest body (exported for tests). */
export function referencesOf(body: Buffer): ManifestReferences {
  const { mediaType, info } = describeStored(body);
  if (info) {
    return {
      ok: true,
      mediaType,
      blobs: info.blobs.map((b) => b.digest),
      children: info.children.map((c) => c.digest),
      ...(info.subject && { subject: info.subject.digest }),
    };
  }
  return schema1References(body) ?? { ok: false, problem: `does not parse (${whyUnparsable(body)})` };
}

/**
 * Docker schema 1 manifests (which Berth refuses to store, but a registry:2 tree copied in may hold):
 * their layers are `fsLayers[].blobSum`, as registry:2's garbage collector reads them.
 */
function schema1References(body: Buffer): ManifestReferences | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || (doc as Record<string, unknown>)['schemaVersion'] !== 1) return undefined;
  const layers = (doc as Record<string, unknown>)['fsLayers'];
  if (!Array.isArray(layers)) return undefined;
  const sums = layers.map((l: unknown) =>
    typeof l === 'object' && l !== null ? parseDigest(String((l as Record<string, unknown>)['blobSum'])) : undefined,
  );
  const digests = sums.filter((s): s is Digest => s !== undefined);
  if (digests.length < sums.length) return undefined;
  const mediaType = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
  return { ok: true, mediaType, blobs: [...new Set(digests)], children: [] };
}

function whyUnparsable(body: Buffer): string {
  try {
    parseManifest(body);
    return 'unknown reason';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Link files `<root(alg)>/<hex>/link` for every algorithm, with the digest their directory names. */
async function* linksUnder(
  driver: StorageDriver,
  root: (alg: DigestAlgorithm) => string,
  o?: CallOptions,
): AsyncGenerator<LinkEntry> {
  for (const alg of DIGEST_ALGORITHMS) {
    for await (const info of walkIfExists(driver, root(alg), o)) {
      const d = info.isDir ? undefined : linkDigestOf(info.path);
      if (d !== undefined) yield { digest: d, modTime: info.modTime.getTime(), path: info.path };
    }
  }
}

/**
 * driver.walk, but an absent root is an empty walk. A path that goes missing once the walk has begun
 * is an error, not an end: a listing cut short could make the collector miss a reference.
 */
async function* walkIfExists(driver: StorageDriver, root: string, o?: CallOptions): AsyncGenerator<FileInfo> {
  let started = false;
  try {
    for await (const info of driver.walk(root, o)) {
      started = true;
      yield info;
    }
  } catch (err) {
    if (!started && isDriverError(err, 'PATH_NOT_FOUND')) return;
    throw err;
  }
}

/** The driver path of `name` in directory `dir` (never the root here). */
function under(dir: string, name: string): string {
  return `${dir}/${name}`;
}
