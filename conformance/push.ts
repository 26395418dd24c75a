/**
 * The Push workflow, blob half (spec "Pushing blobs", end-4a, end-4b, end-5, end-6, end-11, end-13):
 * POST then PUT, single POST with `?digest=`, chunked PATCHes with Content-Range (in order, out of
 * order: 416, then the status GET and the final chunk in the closing PUT), a streamed PATCH, cancel,
 * the errors of a wrong or malformed digest and of a session that is gone, and cross-repository
 * mounts. The manifest half is push-manifests.ts.
 *
 * Every Location is used as the registry gave it (absolute or relative, query and all); `?digest=` is
 * appended to it, never assembled by hand.
 */
import { type CheckRunner, CheckSkipped } from './check.js';
import type { Response } from './client.js';
import { type Blob, neverPushedDigest, seededBlob } from './content.js';
import { expectBody, expectError, expectHeader, expectStatus, fail } from './expect.js';
import {
  type SuiteContext, cancelQuietly, getBlob, getFollowing, locationOf, need, startUpload, uploadBlob, uploadsPath, withQuery,
} from './ops.js';
import { runManifestPushes } from './push-manifests.js';

const OCTETS = { 'Content-Type': 'application/octet-stream' };

/** Runs the Push workflow's checks. */
export async function runPush(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  await postThenPut(ctx, runner);
  await singlePost(ctx, runner);
  await chunked(ctx, runner);
  await outOfOrder(ctx, runner);
  await streamed(ctx, runner);
  await sessionErrors(ctx, runner);
  await cancelledSession(ctx, runner);
  await mounts(ctx, runner);
  await runManifestPushes(ctx, runner);
}

/** PUTs the closing request of a session: `?digest=` appended to its Location, with an optional last chunk. */
function closeSession(ctx: SuiteContext, location: string, blob: Blob, chunk?: { start: number; bytes: Buffer }): Promise<Response> {
  const headers: Record<string, string> =
    chunk === undefined ? {} : { ...OCTETS, 'Content-Range': `${chunk.start}-${chunk.start + chunk.bytes.length - 1}` };
  return ctx.client.request('PUT', withQuery(location, 'digest', blob.digest), chunk === undefined ? { headers } : { headers, body: chunk.bytes });
}

/** The blob is served by `repo` byte for byte. */
async function expectServed(ctx: SuiteContext, repo: string, blob: Blob): Promise<void> {
  const res = await getBlob(ctx, 'GET', repo, blob.digest);
  expectStatus(res, 200);
  expectBody(res, blob.bytes);
}

async function postThenPut(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/post-then-put', 3000);
  let session: string | undefined;
  let created: string | undefined;
  const post = await runner.check('POST upload answers 202 with a Location', async () => {
    const res = await ctx.client.request('POST', uploadsPath(repo), { headers: { 'Content-Length': '0' } });
    expectStatus(res, 202);
    session = locationOf(ctx, res);
  });
  await runner.check('two upload sessions answer distinct Locations', async () => {
    const [a, b] = [await startUpload(ctx, repo), await startUpload(ctx, repo)];
    await cancelQuietly(ctx, a);
    await cancelQuietly(ctx, b);
    if (a === b) fail('two Locations', `the same twice, ${a}`);
  }, { needs: [post] });
  const put = await runner.check('PUT ?digest= with the whole blob answers 201 with a Location', async () => {
    const res = await ctx.client.request('PUT', withQuery(need(session, 'the session'), 'digest', blob.digest), { headers: OCTETS, body: blob.bytes });
    expectStatus(res, 201);
    created = locationOf(ctx, res);
    ctx.pushed.blob(repo, blob.digest);
  }, { needs: [post] });
  await runner.check('the Location the closing PUT answered serves the blob', async () => {
    const res = await getFollowing(ctx, 'GET', need(created, 'the blob Location'));
    expectStatus(res, 200);
    expectBody(res, blob.bytes);
  }, { needs: [put] });
  await runner.check('GET status of a finished upload session answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    expectError(await ctx.client.request('GET', need(session, 'the session')), [404], ['BLOB_UPLOAD_UNKNOWN']);
  }, { needs: [put] });
}

async function singlePost(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/single-post', 2000);
  await runner.check('POST ?digest= with the whole blob answers 201 with a Location (or 202, then the PUT completes it)', async () => {
    const res = await ctx.client.request('POST', withQuery(uploadsPath(repo), 'digest', blob.digest), { headers: OCTETS, body: blob.bytes });
    expectStatus(res, 201, 202);
    const location = locationOf(ctx, res);
    if (res.status === 202) expectStatus(await closeSession(ctx, location, blob, { start: 0, bytes: blob.bytes }), 201);
    ctx.pushed.blob(repo, blob.digest);
    await expectServed(ctx, repo, blob);
  });
}

/** Splits `blob` in three chunks of `size` (the last shorter). */
function thirds(blob: Blob, size: number): [Buffer, Buffer, Buffer] {
  return [blob.bytes.subarray(0, size), blob.bytes.subarray(size, 2 * size), blob.bytes.subarray(2 * size)];
}

function patchChunk(ctx: SuiteContext, location: string, start: number, bytes: Buffer): Promise<Response> {
  const headers = { ...OCTETS, 'Content-Range': `${start}-${start + bytes.length - 1}` };
  return ctx.client.request('PATCH', location, { headers, body: bytes });
}

async function chunked(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  let location: string | undefined;
  let size = 1024;
  const post = await runner.check('chunked POST with Content-Length 0 answers 202 with a Location', async () => {
    const res = await ctx.client.request('POST', uploadsPath(repo), { headers: { 'Content-Length': '0' } });
    expectStatus(res, 202);
    location = locationOf(ctx, res);
    size = Math.max(size, Number(res.header('OCI-Chunk-Min-Length') ?? 0) || 0);
  });
  const blob = seededBlob('push/chunked', 2 * size + 500);
  const [first, second, last] = thirds(blob, size);
  const step = async (method: 'PATCH' | 'GET', start: number, bytes: Buffer): Promise<void> => {
    const at = need(location, 'the session');
    const res = method === 'GET' ? await ctx.client.request('GET', at) : await patchChunk(ctx, at, start, bytes);
    expectStatus(res, method === 'GET' ? 204 : 202);
    expectHeader(res, 'Range', `0-${start + bytes.length - 1}`);
    location = locationOf(ctx, res);
  };
  const one = await runner.check('PATCH of the first chunk with Content-Range answers 202 with Location and Range', () => step('PATCH', 0, first), { needs: [post] });
  const two = await runner.check('PATCH of the next chunk answers 202 with Location and the grown Range', () => step('PATCH', size, second), { needs: [one] });
  await runner.check('GET upload status answers 204 with Location and Range', () => step('GET', size, second), { needs: [two] });
  const put = await runner.check('closing PUT ?digest= with the final chunk answers 201 with a Location', async () => {
    const res = await closeSession(ctx, need(location, 'the session'), blob, { start: 2 * size, bytes: last });
    expectStatus(res, 201);
    locationOf(ctx, res);
    ctx.pushed.blob(repo, blob.digest);
  }, { needs: [two] });
  await runner.check('the chunked blob reads back byte for byte', () => expectServed(ctx, repo, blob), { needs: [put] });
}

/** An out-of-order chunk (416) on a session of its own, the status after it, and the session resumed. */
async function outOfOrder(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/out-of-order', 3000);
  const [first, rest] = [blob.bytes.subarray(0, 1000), blob.bytes.subarray(1000)];
  let location: string | undefined;
  const refused = await runner.check('PATCH of an out-of-order chunk answers 416', async () => {
    const res = await patchChunk(ctx, await startUpload(ctx, repo), 0, first);
    expectStatus(res, 202);
    location = locationOf(ctx, res);
    const wrong = await patchChunk(ctx, location, 1100, rest.subarray(100));
    if (wrong.status !== 416) await cancelQuietly(ctx, wrong.header('Location') === undefined ? location : locationOf(ctx, wrong));
    expectStatus(wrong, 416);
  });
  const status = await runner.check('GET upload status after a 416 answers 204 with the Range unchanged', async () => {
    const res = await ctx.client.request('GET', need(location, 'the session'));
    expectStatus(res, 204);
    expectHeader(res, 'Range', `0-${first.length - 1}`);
    location = locationOf(ctx, res);
  }, { needs: [refused] });
  await runner.check('after a 416 the session resumes at its Range and a closing PUT answers 201', async () => {
    expectStatus(await closeSession(ctx, need(location, 'the session'), blob, { start: first.length, bytes: rest }), 201);
    ctx.pushed.blob(repo, blob.digest);
    await expectServed(ctx, repo, blob);
  }, { needs: [status] });
}

async function streamed(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/streamed', 5000);
  let location: string | undefined;
  const patch = await runner.check('streamed PATCH without Content-Range answers 202 with Location and Range', async () => {
    const start = await startUpload(ctx, repo);
    const pieces = [blob.bytes.subarray(0, 1000), blob.bytes.subarray(1000, 3500), blob.bytes.subarray(3500)];
    const res = await ctx.client.request('PATCH', start, { headers: OCTETS, body: pieces });
    expectStatus(res, 202);
    expectHeader(res, 'Range', `0-${blob.size - 1}`);
    location = locationOf(ctx, res);
  });
  const put = await runner.check('closing PUT ?digest= with no body after the last PATCH answers 201', async () => {
    expectStatus(await closeSession(ctx, need(location, 'the session'), blob), 201);
    ctx.pushed.blob(repo, blob.digest);
  }, { needs: [patch] });
  await runner.check('the streamed blob reads back byte for byte', () => expectServed(ctx, repo, blob), { needs: [put] });
}

async function sessionErrors(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/errors', 1200);
  const refused = async (digest: string): Promise<void> => {
    const location = await startUpload(ctx, repo);
    const res = await ctx.client.request('PUT', withQuery(location, 'digest', digest), { headers: OCTETS, body: blob.bytes });
    await cancelQuietly(ctx, location);
    expectError(res, [400], ['DIGEST_INVALID']);
  };
  await runner.check('POST ?digest= that does not match the content answers 400 DIGEST_INVALID (unless single POST is not supported)', async () => {
    const res = await ctx.client.request('POST', withQuery(uploadsPath(repo), 'digest', neverPushedDigest('push/errors')), { headers: OCTETS, body: blob.bytes });
    if (res.status === 202) {
      await cancelQuietly(ctx, locationOf(ctx, res));
      throw new CheckSkipped('the registry answers a single POST with an upload session (202), as the spec allows, so it never sees the digest');
    }
    expectError(res, [400], ['DIGEST_INVALID']);
  });
  await runner.check('PUT ?digest= that does not match the content answers 400 DIGEST_INVALID', () => refused(neverPushedDigest('push/errors')));
  await runner.check('PUT ?digest= with a malformed digest answers 400 DIGEST_INVALID', () => refused('sha256:not-a-digest'));
  await runner.check('POST upload to an invalid repository name answers 400 or 404 NAME_INVALID', async () => {
    const res = await ctx.client.request('POST', uploadsPath(`${repo}/UPPERCASE`), { headers: { 'Content-Length': '0' } });
    expectError(res, [400, 404], ['NAME_INVALID']);
  });
}

/** A cancelled session (DELETE, from the registry API the spec grew out of) is gone for GET, PATCH and PUT. */
async function cancelledSession(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const repo = ctx.settings.namespace;
  const blob = seededBlob('push/cancelled', 1200);
  let session: string | undefined;
  const cancel = await runner.check('DELETE of an upload session answers 204', async () => {
    const location = await startUpload(ctx, repo);
    expectStatus(await ctx.client.request('DELETE', location), 204);
    session = location;
  });
  const gone = [
    ['GET status of a cancelled upload session answers 404 BLOB_UPLOAD_UNKNOWN', 'GET', undefined],
    ['PATCH to a cancelled upload session answers 404 BLOB_UPLOAD_UNKNOWN', 'PATCH', blob.bytes],
    ['PUT to a cancelled upload session answers 404 BLOB_UPLOAD_UNKNOWN', 'PUT', blob.bytes],
  ] as const;
  for (const [name, method, body] of gone) {
    await runner.check(name, async () => {
      const target = method === 'PUT' ? withQuery(need(session, 'the cancelled session'), 'digest', blob.digest) : need(session, 'the cancelled session');
      const res = await ctx.client.request(method, target, body === undefined ? {} : { headers: OCTETS, body });
      expectError(res, [404], ['BLOB_UPLOAD_UNKNOWN']);
    }, { needs: [cancel] });
  }
}

async function mounts(ctx: SuiteContext, runner: CheckRunner): Promise<void> {
  const { namespace: from, otherNamespace: to, autoMount } = ctx.settings;
  const [explicit, automatic] = [seededBlob('push/mount/from', 1800), seededBlob('push/mount/auto', 1700)];
  const setup = await runner.check('setup push two blobs to mount into the other repository', async () => {
    for (const b of [explicit, automatic]) await uploadBlob(ctx, from, b);
  });
  const mount = async (blob: Blob, query: string): Promise<void> => {
    const res = await ctx.client.request('POST', `${uploadsPath(to)}?mount=${blob.digest}${query}`, { headers: { 'Content-Length': '0' } });
    if (res.status === 202) await cancelQuietly(ctx, locationOf(ctx, res));
    expectStatus(res, 201);
    locationOf(ctx, res);
    ctx.pushed.blob(to, blob.digest);
    await expectServed(ctx, to, blob);
  };
  await runner.check('POST ?mount=&from= of a blob the source holds answers 201 with a Location', () => mount(explicit, `&from=${from}`), { needs: [setup] });
  await runner.check('POST ?mount=&from= of a blob the source lacks answers 202 with a Location', async () => {
    const res = await ctx.client.request('POST', `${uploadsPath(to)}?mount=${neverPushedDigest('push/mount')}&from=${from}`, {
      headers: { 'Content-Length': '0' },
    });
    expectStatus(res, 202);
    await cancelQuietly(ctx, locationOf(ctx, res));
  });
  await runner.check('POST ?mount= without from of a blob the registry holds answers 201 with a Location', () => mount(automatic, ''), {
    needs: [setup],
    skip: autoMount ? undefined : 'automatic cross-mount (mount without from) is not expected by the settings',
  });
}
