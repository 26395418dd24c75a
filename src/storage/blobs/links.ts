/**
 * Link files: tiny files that hold a digest and tie a repository to global content
 * (`_layers/…/link`, `_manifests/revisions/…/link`, tag `current/link` and `index/…/link`).
 */
import { type Digest, parseDigest } from '../digest.js';
import { type CallOptions, type StorageDriver, isDriverError } from '../driver/driver.js';
import { linkContent } from '../paths.js';

/** Writes a link atomically (the driver's putContent replaces in one step). */
export async function writeLink(driver: StorageDriver, path: string, d: Digest, o?: CallOptions): Promise<void> {
  await driver.putContent(path, linkContent(d), o);
}

/**
 * The digest a link holds, or undefined when the link is missing, empty or holds something that is
 * not a digest (registry:2 treats a broken link as absent too).
 */
export async function readLink(driver: StorageDriver, path: string, o?: CallOptions): Promise<Digest | undefined> {
  try {
    const text = (await driver.getContent(path, o)).toString('utf8').trim();
    return parseDigest(text);
  } catch (err) {
    if (isDriverError(err, 'PATH_NOT_FOUND')) return undefined;
    throw err;
  }
}
