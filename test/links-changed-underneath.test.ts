/**
 * Link files changed on disk by someone else (another process, registry:2, an rsync) while Berth is
 * reading the very same links (issue #19): a read asked for after the change must see it.
 *
 * The filesystem driver keeps small files (links) and checks them with a stat per read, and
 * concurrent reads of one link share a stat (src/storage/driver/filesystem-shared-stat.ts). Sharing is
 * safe only with a stat that started after the read was asked for: a stat already in flight when the
 * file changed may have looked at the old inode. So each case here starts a read of a kept link, lets
 * its stat reach the disk while Berth's callbacks cannot run (the test holds the thread), changes the
 * link and asks again in the same tick: a read that took the in-flight stat answers the old manifest.
 * Then the same over HTTP, as a client right after the change would ask. (On a local filesystem, as
 * here, the driver now stats at once, blocking, and shares nothing; the shared stats of other
 * filesystems are checked in src/storage/driver/filesystem-shared-stat.test.ts.)
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { revisionLink, tagLinks, v2 } from './helpers/layout.js';
import { ACCEPT_ALL, makeImage, pushImage, putManifest, raw } from './helpers/oci.js';
import type { CacheManifests, StoredManifest } from '../src/storage/registry.js';
import { parseReference, parseRepoName } from '../src/storage/reference.js';

const REPO = 'changed/underneath';
const TAGS = Array.from({ length: 10 }, (_, i) => `t${i}`);
const a = makeImage(1);
const b = makeImage(2);
/** Manifests pushed by digest only, whose revisions are removed underneath. */
const REMOVED = Array.from({ length: 10 }, (_, i) => makeImage(3 + i));
let berth: TestBerth;
let manifests: CacheManifests;

/**
 * Replaces a file as registry:2 and rsync do: a temporary file beside it, renamed over it. Blocking
 * calls, so that no callback of Berth's (a stat that ended before the rename) runs in between.
 */
function replaceFile(full: string, content: string): void {
  const tmp = `${full}.other-process`;
  writeFileSync(tmp, content);
  renameSync(tmp, full);
}

const get = (ref: string): Promise<{ status: number; digest: string | undefined }> =>
  raw(berth.url, 'GET', `/v2/${REPO}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL } })
    .then((res) => ({ status: res.status, digest: res.header('Docker-Content-Digest') }));

/**
 * Starts a storage read of `ref` and returns once its stats have been asked for and have had time to
 * reach the disk, with none of their callbacks run yet (the thread was held since: no I/O callback
 * runs while a test's synchronous code or its microtasks do). The read's own answer is not checked:
 * it may see the change or not.
 */
async function readInFlight(ref: string): Promise<{ readonly read: Promise<StoredManifest> }> {
  const read = manifests.get(parseReference(ref));
  read.catch(() => undefined); // its answer is not checked (a removed revision rejects)
  for (let i = 0; i < 100; i++) await null; // microtasks only: the read reaches its first stat
  const until = performance.now() + 20;
  while (performance.now() < until); // the thread pool runs the stat meanwhile; its callback waits
  return { read };
}

beforeAll(async () => {
  berth = await startBerth();
  manifests = berth.registry.repository(parseRepoName(REPO)).manifests;
  await pushImage(berth.url, REPO, TAGS[0] ?? '', a);
  for (const tag of TAGS) expect((await putManifest(berth.url, REPO, tag, a.manifest, a.mediaType)).status).toBe(201);
  await pushImage(berth.url, REPO, b.manifest.digest, b);
  for (const img of REMOVED) await pushImage(berth.url, REPO, img.manifest.digest, img);
  // The driver keeps only links left alone for 2 s; each is read once after that, so it is kept.
  await new Promise((r) => setTimeout(r, 2100));
  for (const ref of [...TAGS, ...REMOVED.map((img) => img.manifest.digest)]) expect((await get(ref)).status).toBe(200);
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

describe('links changed on disk while the same links are being read', () => {
  it('a read asked for after a tag was rewritten underneath answers the new manifest', async () => {
    for (const tag of TAGS) {
      const before = await readInFlight(tag);
      const [link] = tagLinks(REPO, tag, b.manifest.digest);
      replaceFile(join(v2(berth.root), link ?? ''), b.manifest.digest);
      const after = manifests.get(parseReference(tag));
      expect((await after).digest, `tag ${tag} read right after its link was rewritten`).toBe(b.manifest.digest);
      await before.read;
      expect(await get(tag), `GET ${tag} after its link was rewritten`).toEqual({ status: 200, digest: b.manifest.digest });
    }
  });

  it('a read asked for after a revision was removed underneath answers MANIFEST_UNKNOWN', async () => {
    for (const { manifest } of REMOVED) {
      const before = await readInFlight(manifest.digest);
      rmSync(dirname(join(v2(berth.root), revisionLink(REPO, manifest.digest))), { recursive: true });
      const after = manifests.get(parseReference(manifest.digest));
      await expect(after, `${manifest.digest} read right after its revision was removed`).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
      await before.read.catch(() => undefined);
      expect((await get(manifest.digest)).status, `GET ${manifest.digest} after its revision was removed`).toBe(404);
    }
    // Put back as another process would: the link file is new, so it is read (and right) again.
    const { digest } = REMOVED[0]?.manifest ?? b.manifest;
    const link = join(v2(berth.root), revisionLink(REPO, digest));
    mkdirSync(dirname(link), { recursive: true });
    replaceFile(link, digest);
    expect(await get(digest)).toEqual({ status: 200, digest });
  });
});
