/** The management API's usage figures as JSON (`RepoUsage`), and what a pushed image adds to them. */
import type { Image } from './oci.js';

export interface UsageJson {
  readonly name: string;
  readonly logicalBytes: number;
  readonly sharedBytes: number;
  readonly exclusiveBytes: number;
  readonly tags: number;
  readonly manifests: number;
  readonly lastPush: string | null;
  readonly lastPull: string | null;
}

/** The distinct bytes an image's blobs (config, layers, manifest) take. */
export const bytesOf = (img: Image): number => [img.config, ...img.layers, img.manifest].reduce((sum, b) => sum + b.size, 0);
