/**
 * The Content Management workflow (spec "Content Management", end-9, end-10): deleting a tag, a
 * manifest by digest (with every tag that named it) and a blob, each 202 and then 404; the 404s of
 * deleting what is not there. With deletion disabled by the settings, the same deletes must be refused
 * with 400 or 405 (UNSUPPORTED) and change nothing. The checks of the other mode are reported as SKIP.
 */
import { type CheckHandle, type CheckRunner, CheckSkipped } from './check.js';
import type { Response } from './client.js';
import { type Blob, type Image, imageOf, neverPushedDigest, seededBlob } from './content.js';
import { expectError, expectStatus, summarize } from './expect.js';
import { type SuiteContext, blobPath, getBlob, getManifest, manifestPath, pushImage, pushManifest, uploadBlob } from './ops.js';

const TAGS = { deleted: 'mgmt-deleted', kept: 'mgmt-kept', ofDeleted: 'mgmt-of-deleted-manifest' } as const;

interface Content {
  readonly tagged: Image;
  readonly byDigest: Image;
  readonly blob: Blob;
}

/** Runs the Content Management workflow's checks. */
export async function runManagement(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const content: Content = {
    tagged: imageOf('management/tagged'),
    byDigest: imageOf('management/by-digest'),
    blob: seededBlob('management/blob', 2222),
  };
  const setup = await runner.check('setup push two images under three tags and a lone blob', async () => {
    await pushImage(ctx, repo, TAGS.deleted, content.tagged);
    await pushManifest(ctx, repo, TAGS.kept, content.tagged.manifest);
    await pushImage(ctx, repo, TAGS.ofDeleted, content.byDigest);
    await uploadBlob(ctx, repo, content.blob);
  });
  const enabled = ctx.settings.deleteEnabled;
  await deletions(ctx, runner, content, { needs: [setup], skip: enabled ? undefined : 'deletion is disabled by the settings' });
  await refusals(ctx, runner, content, { needs: [setup], skip: enabled ? 'deletion is enabled by the settings' : undefined });
}

interface When {
  readonly needs: CheckHandle[];
  readonly skip: string | undefined;
}

async function deletions(ctx: SuiteContext, runner: CheckRunner, c: Content, when: When): Promise<void> {
  const repo = ctx.settings.namespace;
  const del = (path: string): Promise<Response> => ctx.client.request('DELETE', path);
  const tag = await runner.check('DELETE tag answers 202', async () => {
    const res = await del(manifestPath(repo, TAGS.deleted));
    // "a registry MAY implement tag deletion, while others MAY allow deletion only by manifest"
    if (res.status === 400 || res.status === 405) throw new CheckSkipped(`the registry does not delete tags (${summarize(res)}), which the spec allows`);
    expectStatus(res, 202);
  }, when);
  await runner.check('GET a deleted tag answers 404 while another tag of its manifest still answers 200', async () => {
    expectStatus(await getManifest(ctx, 'GET', repo, TAGS.deleted), 404);
    expectStatus(await getManifest(ctx, 'GET', repo, TAGS.kept), 200);
  }, { ...when, needs: [tag] });
  const digest = c.byDigest.manifest.digest;
  const manifest = await runner.check('DELETE manifest by digest answers 202', async () => expectStatus(await del(manifestPath(repo, digest)), 202), when);
  await runner.check('GET a deleted manifest answers 404 by digest and by the tag that named it', async () => {
    expectError(await getManifest(ctx, 'GET', repo, digest), [404], ['MANIFEST_UNKNOWN']);
    expectError(await getManifest(ctx, 'GET', repo, TAGS.ofDeleted), [404], ['MANIFEST_UNKNOWN']);
  }, { ...when, needs: [manifest] });
  const unknown = neverPushedDigest('management');
  await runner.check('DELETE an unknown manifest answers 404 MANIFEST_UNKNOWN', async () => {
    expectError(await del(manifestPath(repo, unknown)), [404], ['MANIFEST_UNKNOWN']);
  }, when);
  await runner.check('DELETE manifest in a repository that does not exist answers 404', async () => {
    expectError(await del(manifestPath(`${repo}/never-pushed`, unknown)), [404], ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  }, { ...when, needs: [] });
  const blob = await runner.check('DELETE blob answers 202', async () => expectStatus(await del(blobPath(repo, c.blob.digest)), 202), when);
  await runner.check('GET a deleted blob answers 404 BLOB_UNKNOWN', async () => {
    expectError(await getBlob(ctx, 'GET', repo, c.blob.digest), [404], ['BLOB_UNKNOWN']);
  }, { ...when, needs: [blob] });
  await runner.check('DELETE an unknown blob answers 404 BLOB_UNKNOWN', async () => {
    expectError(await del(blobPath(repo, unknown)), [404], ['BLOB_UNKNOWN']);
  }, { ...when, needs: [] });
}

async function refusals(ctx: SuiteContext, runner: CheckRunner, c: Content, when: When): Promise<void> {
  const repo = ctx.settings.namespace;
  const cases = [
    ['DELETE tag', manifestPath(repo, TAGS.deleted), () => getManifest(ctx, 'GET', repo, TAGS.deleted)],
    ['DELETE manifest by digest', manifestPath(repo, c.byDigest.manifest.digest), () => getManifest(ctx, 'GET', repo, c.byDigest.manifest.digest)],
    ['DELETE blob', blobPath(repo, c.blob.digest), () => getBlob(ctx, 'GET', repo, c.blob.digest)],
  ] as const;
  for (const [what, path, stillThere] of cases) {
    await runner.check(`${what} is refused with 400 or 405 UNSUPPORTED while deletion is disabled, and changes nothing`, async () => {
      expectError(await ctx.client.request('DELETE', path), [400, 405], ['UNSUPPORTED']);
      expectStatus(await stillThere(), 200);
    }, when);
  }
}
