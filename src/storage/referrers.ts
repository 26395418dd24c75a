/**
 * The referrers of a manifest (OCI v1.1): manifests of the same repository whose `subject` names it.
 * Found by reading every revision's description, which the manifest cache keeps after the first look.
 * (The LevelDB index of issue #5 will answer this without the scan.)
 */
import type { Digest } from './digest.js';
import type { CallOptions } from './driver/driver.js';
import type { Descriptor } from './manifest-format.js';
import type { ManifestStore } from './manifests.js';

/** A referrer as the referrers API lists it. */
export type ReferrerDescriptor = Pick<Descriptor, 'mediaType' | 'digest' | 'size' | 'artifactType' | 'annotations'>;

export async function listReferrers(
  manifests: ManifestStore,
  subject: Digest,
  filter: { artifactType?: string | undefined },
  o?: CallOptions,
): Promise<ReferrerDescriptor[]> {
  const found: ReferrerDescriptor[] = [];
  for await (const d of manifests.revisions(o)) {
    const summary = await manifests.describe(d, o);
    const info = summary?.info;
    if (!summary || !info || info.subject?.digest !== subject) continue;
    if (filter.artifactType !== undefined && info.artifactType !== filter.artifactType) continue;
    found.push({
      mediaType: info.mediaType,
      digest: d,
      size: summary.size,
      ...(info.artifactType !== undefined && { artifactType: info.artifactType }),
      ...(info.annotations && { annotations: info.annotations }),
    });
  }
  return found.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}
