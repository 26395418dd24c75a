/**
 * The referrers of a manifest (OCI v1.1): manifests of the same repository whose `subject` names it.
 * Found by reading every revision's description, which the manifest cache keeps after the first look.
 * With an index (index-port.ts) the registry asks it first and scans only when it cannot vouch.
 */
import type { Digest } from '../digest.js';
import type { CallOptions } from '../driver/driver.js';
import type { Descriptor } from './manifest-format.js';
import type { ManifestSummary } from './manifest-cache.js';
import type { ManifestStore } from './manifests.js';

/** A referrer as the referrers API lists it. */
export type ReferrerDescriptor = Pick<Descriptor, 'mediaType' | 'digest' | 'size' | 'artifactType' | 'annotations'>;

/** The referrers of `subject` in a repository, sorted by digest, optionally of one artifactType. */
export async function listReferrers(
  manifests: ManifestStore,
  subject: Digest,
  filter: { artifactType?: string | undefined },
  o?: CallOptions,
): Promise<ReferrerDescriptor[]> {
  const found: ReferrerDescriptor[] = [];
  for await (const d of manifests.revisions(o)) {
    const referrer = referrerOf(d, await manifests.describe(d, o));
    if (referrer?.subject !== subject) continue;
    if (filter.artifactType !== undefined && referrer.descriptor.artifactType !== filter.artifactType) continue;
    found.push(referrer.descriptor);
  }
  return sortByDigest(found);
}

/** How manifest `d` lists among the referrers of its subject; undefined when it names no subject. */
export function referrerOf(
  d: Digest,
  summary: ManifestSummary | undefined,
): { subject: Digest; descriptor: ReferrerDescriptor } | undefined {
  const info = summary?.info;
  if (!summary || !info?.subject) return undefined;
  const descriptor: ReferrerDescriptor = {
    mediaType: info.mediaType,
    digest: d,
    size: summary.size,
    ...(info.artifactType !== undefined && { artifactType: info.artifactType }),
    ...(info.annotations && { annotations: info.annotations }),
  };
  return { subject: info.subject.digest, descriptor };
}

/** Referrers in digest order, as the referrers API lists them. */
export function sortByDigest(found: ReferrerDescriptor[]): ReferrerDescriptor[] {
  return found.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}
