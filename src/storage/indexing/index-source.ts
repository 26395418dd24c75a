/**
 * The {@link IndexSource} over a driver: what an index reads to build itself and to re-read an item
 * after a change. It reads exactly what the storage walk reads (catalog.ts for repositories, the tags
 * folder for tags, revision folders and their manifests for referrers), so an index built from it gives
 * the walk's answers. Give it the driver storage writes through, unobserved (index-observer.ts).
 */
import { isRegistryError, isTooLarge } from '../../errors.js';
import { createBlobStore } from '../blobs/blobs.js';
import { listRepositories, repositoryExists } from '../catalog.js';
import { type Digest, DIGEST_ALGORITHMS } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import type { BlobDescriptor, IndexSource, RevisionFacts } from './index-port.js';
import { readLink } from '../blobs/links.js';
import { unlessNotFound } from '../driver/not-found.js';
import { createManifestCache } from '../manifests/manifest-cache.js';
import { MAX_MANIFEST_BYTES, describeStored } from '../manifests/manifest-format.js';
import { layerDigestOf, paths } from '../paths.js';
import { listRevisions } from '../manifests/manifests.js';
import { referrerOf } from '../manifests/referrers.js';
import { listTags } from '../manifests/tags.js';
import { linkTime } from './manifest-times.js';


export function createIndexSource(driver: StorageDriver): IndexSource {
  const blobs = createBlobStore(driver);
  const cache = createManifestCache();
  const exists = async (path: string, o?: CallOptions): Promise<boolean> =>
    (await unlessNotFound(() => driver.stat(path, o))) !== undefined;

  const readManifest = async (d: Digest, o?: CallOptions): Promise<Buffer | undefined> => {
    try {
      return await blobs.readSmall(d, MAX_MANIFEST_BYTES, o);
    } catch (err) {
      // As the referrers walk: a missing or oversized manifest describes nothing.
      if (isRegistryError(err, 'BLOB_UNKNOWN') || isTooLarge(err)) return undefined;
      throw err;
    }
  };

  return {
    repositories: (o) => listRepositories(driver, o),
    repositoryExists: (repo, o) => repositoryExists(driver, repo, o),
    tagNames: async (repo, o) => (await listTags(driver, repo, o)) ?? [],
    tagExists: (repo, tag, o) => exists(paths.tag(repo, tag), o),
    tagTarget: (repo, tag, o) => readLink(driver, paths.tagCurrentLink(repo, tag), o),
    revisions: (repo, o) => listRevisions(driver, repo, o),
    revisionExists: (repo, d, o) => exists(paths.revisionDir(repo, d), o),
    revisionLinkTime: (repo, d, o) => linkTime(driver, repo, d, o),
    async *layers(repo, o) {
      for (const alg of DIGEST_ALGORITHMS) {
        for (const dir of (await unlessNotFound(() => driver.list(paths.layersOf(repo, alg), o))) ?? []) {
          const d = layerDigestOf(dir);
          if (d !== undefined) yield d;
        }
      }
    },
    layerExists: (repo, d, o) => exists(paths.layerLinkDir(repo, d), o),
    async revisionFacts(d, o): Promise<RevisionFacts> {
      let summary = cache.get(d);
      if (!summary) {
        const content = await readManifest(d, o);
        if (content === undefined) return { blobs: [] };
        summary = cache.remember(d, content, describeStored);
      }
      const info = summary.info;
      const named: BlobDescriptor[] = [...(info?.blobs ?? []), ...(info?.children ?? [])].map((b) => ({
        digest: b.digest,
        size: b.size,
        mediaType: b.mediaType,
      }));
      const referrer = referrerOf(d, summary);
      return {
        ...(referrer && { referrer }),
        blobs: [{ digest: d, size: summary.size, mediaType: summary.mediaType }, ...named],
      };
    },
    async blob(d, o) {
      const info = await blobs.stat(d, o);
      return info && { size: info.size };
    },
  };
}

