/**
 * What the rebuild walk (rebuild.ts) and the refresh of one item (refresh.ts) share: the database type,
 * how blob descriptors are written, and the record of what the index must leave to storage.
 */
import type { Level } from 'level';
import type { RevisionFacts } from '../storage/indexing/index-port.js';
import { blobKey } from './keys.js';

/** The database: string keys, JSON values. */
export type IndexLevel = Level<string, unknown>;

/** What the index must not answer for until its next rebuild, and so leaves to storage. */
export interface Distrust {
  /** Repositories whose tags and referrers come from storage. */
  readonly repos: Set<string>;
  /** True when the catalog comes from storage. */
  catalog: boolean;
  /**
   * True when the usage tables may miss a link (a repository's links could not be read, or a name
   * cannot be indexed): usage figures are then not answered at all, since one repository's missing
   * links would make another's shared bytes wrong.
   */
  usage: boolean;
}

export const newDistrust = (): Distrust => ({ repos: new Set(), catalog: false, usage: false });

/** Puts the blob descriptors a manifest gives (hints: nothing is answered from them); answers how many. */
export async function putBlobHints(facts: RevisionFacts, put: (key: string, value: unknown) => Promise<void>): Promise<number> {
  for (const b of facts.blobs) await put(blobKey(b.digest), { size: b.size, ...(b.mediaType !== undefined && { mediaType: b.mediaType }) });
  return facts.blobs.length;
}

/** A blob descriptor entry: size, and media type when a manifest gave one. */
export function isBlobHint(v: unknown): v is { size: number; mediaType?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { size?: unknown }).size === 'number';
}
