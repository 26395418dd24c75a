/**
 * Blob uploads and blob reads against a real listening Berth: every upload flow of the
 * distribution-spec, and the ways a client can get one wrong.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, layerLink, uploadsDir, v2 } from './helpers/layout.js';
import { blob, errorCode, locationPath, pushBlob, raw, randomBytesSeeded } from './helpers/oci.js';

let berth: TestBerth;
beforeAll(async () => {
  berth = await startBerth();
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

const blobPath = (root: string, digest: string): string => join(v2(root), blobData(digest));
const uploadsPath = (root: string, repo: string): string => join(v2(root), uploadsDir(repo));

async function startSession(repo: string): Promise<string> {
  const res = await raw(berth.url, 'POST', `/v2/${repo}/blobs/uploads/`);
  expect(res.status).toBe(202);
  expect(res.header('Range')).toBe('0-0');
  expect(res.header('Docker-Upload-UUID')).toMatch(/^[0-9a-f-]{36}$/);
  return locationPath(res);
}

function patch(location: string, body: Buffer, range?: string): ReturnType<typeof raw> {
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) };
  if (range !== undefined) headers['Content-Range'] = range;
  return raw(berth.url, 'PATCH', location, { headers, body });
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

describe('monolithic upload', () => {
  it('POST with ?digest= stores the blob, links it, and serves it', async () => {
    const b = blob('monolithic content');
    await pushBlob(berth.url, 'mono/repo', b);
    expect(await readFile(blobPath(berth.root, b.digest))).toEqual(b.bytes);
    const link = join(v2(berth.root), layerLink('mono/repo', b.digest));
    expect(await readFile(link, 'utf8')).toBe(b.digest);
    const get = await raw(berth.url, 'GET', `/v2/mono/repo/blobs/${b.digest}`);
    expect(get.status).toBe(200);
    expect(get.body).toEqual(b.bytes);
    expect(get.header('Docker-Content-Digest')).toBe(b.digest);
    expect(get.header('Content-Length')).toBe(String(b.size));
    expect(get.header('ETag')).toBe(`"${b.digest}"`);
    expect(await readdir(uploadsPath(berth.root, 'mono/repo')).catch(() => [])).toEqual([]);
  });

  it('POST then PUT with the whole body', async () => {
    const b = blob(randomBytesSeeded(70_000, 3));
    const location = await startSession('put/once');
    const res = await raw(berth.url, 'PUT', withDigest(location, b.digest), {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: b.bytes,
    });
    expect(res.status).toBe(201);
    expect(res.header('Location')).toMatch(new RegExp(`/v2/put/once/blobs/${b.digest}$`));
    expect(res.header('Docker-Content-Digest')).toBe(b.digest);
    expect(await readFile(blobPath(berth.root, b.digest))).toEqual(b.bytes);
  });

  it('a digest that does not match the body is DIGEST_INVALID and stores nothing', async () => {
    const b = blob('the real bytes');
    const wrong = blob('other bytes').digest;
    const res = await raw(berth.url, 'POST', `/v2/mono/bad/blobs/uploads/?digest=${wrong}`, { body: b.bytes });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
    expect(existsSync(blobPath(berth.root, wrong))).toBe(false);
    expect(existsSync(blobPath(berth.root, b.digest))).toBe(false);
    expect(await readdir(uploadsPath(berth.root, 'mono/bad')).catch(() => [])).toEqual([]);
  });
});

describe('chunked upload', () => {
  it('PATCH chunks with Content-Range, GET status, then PUT', async () => {
    const data = randomBytesSeeded(300_000, 7);
    const b = blob(data);
    let location = await startSession('chunked/repo');
    const cuts = [0, 100_000, 250_000, 300_000];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [start, end] = [cuts[i]!, cuts[i + 1]!];
      const res = await patch(location, data.subarray(start, end), `${start}-${end - 1}`);
      expect(res.status).toBe(202);
      expect(res.header('Range')).toBe(`0-${end - 1}`);
      location = locationPath(res);
    }
    const status = await raw(berth.url, 'GET', location);
    expect(status.status).toBe(204);
    expect(status.header('Range')).toBe(`0-${data.length - 1}`);
    const put = await raw(berth.url, 'PUT', withDigest(location, b.digest));
    expect(put.status).toBe(201);
    expect(await readFile(blobPath(berth.root, b.digest))).toEqual(data);
  });

  it('streamed PATCH without Content-Range, and the last chunk in the PUT', async () => {
    const data = randomBytesSeeded(200_000, 8);
    const b = blob(data);
    const location = await startSession('streamed/repo');
    const first = await raw(berth.url, 'PATCH', location, { body: data.subarray(0, 150_000) });
    expect(first.status).toBe(202);
    expect(first.header('Range')).toBe('0-149999');
    const put = await raw(berth.url, 'PUT', withDigest(locationPath(first), b.digest), {
      headers: { 'Content-Range': '150000-199999', 'Content-Length': '50000' },
      body: data.subarray(150_000),
    });
    expect(put.status).toBe(201);
    const get = await raw(berth.url, 'GET', `/v2/streamed/repo/blobs/${b.digest}`);
    expect(sha256Of(get.body)).toBe(b.digest);
  });

  it('an out-of-order chunk is 416 with the current Range, and the session stays usable', async () => {
    const data = randomBytesSeeded(30_000, 9);
    const b = blob(data);
    const location = await startSession('order/repo');
    const first = await patch(location, data.subarray(0, 10_000), '0-9999');
    expect(first.status).toBe(202);
    const skipped = await patch(locationPath(first), data.subarray(20_000), '20000-29999');
    expect(skipped.status).toBe(416);
    expect(errorCode(skipped)).toBe('RANGE_INVALID');
    expect(skipped.header('Range')).toBe('0-9999');
    const repeated = await patch(locationPath(first), data.subarray(0, 10_000), '0-9999');
    expect(repeated.status).toBe(416);
    const second = await patch(locationPath(first), data.subarray(10_000), '10000-29999');
    expect(second.status).toBe(202);
    const put = await raw(berth.url, 'PUT', withDigest(locationPath(second), b.digest));
    expect(put.status).toBe(201);
    expect(await readFile(blobPath(berth.root, b.digest))).toEqual(data);
  });

  it('a stale _state offset (a replayed streamed PATCH) is 416, not duplicated data', async () => {
    const location = await startSession('stale/repo');
    const first = await raw(berth.url, 'PATCH', location, { body: Buffer.from('abc') });
    expect(first.status).toBe(202);
    const replay = await raw(berth.url, 'PATCH', location, { body: Buffer.from('abc') });
    expect(replay.status).toBe(416);
    expect(replay.header('Range')).toBe('0-2');
  });

  it('malformed Content-Range, and Content-Range that disagrees with Content-Length, are 416', async () => {
    const location = await startSession('range/repo');
    for (const range of ['abc', '5-2', 'bytes=0-3', '-1-3']) {
      const res = await patch(location, Buffer.from('abcd'), range);
      expect(res.status, range).toBe(416);
      expect(errorCode(res)).toBe('RANGE_INVALID');
    }
    const mismatch = await patch(location, Buffer.from('abcd'), '0-9');
    expect(mismatch.status).toBe(416);
    const status = await raw(berth.url, 'GET', location);
    expect(status.header('Range')).toBe('0-0');
  });

  it('a digest mismatch at PUT is DIGEST_INVALID and publishes nothing', async () => {
    const location = await startSession('mismatch/repo');
    const res = await raw(berth.url, 'PUT', withDigest(location, blob('not this').digest), { body: Buffer.from('this') });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
    expect(existsSync(blobPath(berth.root, blob('this').digest))).toBe(false);
    expect(existsSync(join(v2(berth.root), 'repositories/mismatch/repo/_layers'))).toBe(false);
  });

  it('PUT without a digest, or with a malformed one, is DIGEST_INVALID', async () => {
    const location = await startSession('nodigest/repo');
    expect(errorCode(await raw(berth.url, 'PUT', location))).toBe('DIGEST_INVALID');
    expect(errorCode(await raw(berth.url, 'PUT', withDigest(location, 'sha256:xyz')))).toBe('DIGEST_INVALID');
    expect(errorCode(await raw(berth.url, 'PUT', withDigest(location, `md5:${'a'.repeat(32)}`)))).toBe('DIGEST_INVALID');
  });
});

describe('session state', () => {
  it('DELETE cancels; the session is then unknown', async () => {
    const location = await startSession('cancel/repo');
    expect((await raw(berth.url, 'DELETE', location)).status).toBe(204);
    const again = await raw(berth.url, 'GET', location);
    expect(again.status).toBe(404);
    expect(errorCode(again)).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(errorCode(await raw(berth.url, 'DELETE', location))).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(await readdir(uploadsPath(berth.root, 'cancel/repo'))).toEqual([]);
  });

  it('an unknown upload id, or one that is not a UUID, is BLOB_UPLOAD_UNKNOWN', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '..']) {
      const res = await raw(berth.url, 'PATCH', `/v2/state/repo/blobs/uploads/${id}`, { body: 'x' });
      expect(res.status, id).toBe(404);
      expect(errorCode(res), id).toBe('BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('a forged or foreign _state is BLOB_UPLOAD_INVALID and changes nothing', async () => {
    const location = await startSession('forged/repo');
    const other = await startSession('forged/other');
    const url = new URL(location, 'http://x');
    const id = url.pathname.split('/').pop();
    const forged = `/v2/forged/repo/blobs/uploads/${id}?_state=${encodeURIComponent(Buffer.alloc(60, 7).toString('base64'))}`;
    const res = await raw(berth.url, 'PATCH', forged, { body: 'data' });
    expect(errorCode(res)).toBe('BLOB_UPLOAD_INVALID');
    const otherState = new URL(other, 'http://x').searchParams.get('_state') ?? '';
    const foreign = await raw(berth.url, 'PATCH', `/v2/forged/repo/blobs/uploads/${id}?_state=${encodeURIComponent(otherState)}`, { body: 'data' });
    expect(errorCode(foreign)).toBe('BLOB_UPLOAD_INVALID');
    expect((await raw(berth.url, 'GET', location)).header('Range')).toBe('0-0');
  });

  it('a client that drops mid-chunk leaves nothing visible, and the upload resumes', async () => {
    const data = randomBytesSeeded(400_000, 11);
    const b = blob(data);
    const location = await startSession('drop/repo');
    await sendPartialAndDrop(location, data.subarray(0, 100_000), data.length);
    const status = await waitForStableRange(location);
    const received = status === '0-0' ? 0 : Number(status.split('-')[1]) + 1;
    expect(received).toBeLessThanOrEqual(100_000);
    expect(existsSync(blobPath(berth.root, b.digest))).toBe(false);
    const rest = await patch(location, data.subarray(received), `${received}-${data.length - 1}`);
    expect(rest.status).toBe(202);
    const put = await raw(berth.url, 'PUT', withDigest(locationPath(rest), b.digest));
    expect(put.status).toBe(201);
    expect(await readFile(blobPath(berth.root, b.digest))).toEqual(data);
  });
});

describe('blob reads', () => {
  const b = blob('0123456789');
  beforeAll(async () => pushBlob(berth.url, 'read/repo', b));

  it('serves ranges with 206, and 416 past the end', async () => {
    const part = await raw(berth.url, 'GET', `/v2/read/repo/blobs/${b.digest}`, { headers: { Range: 'bytes=2-5' } });
    expect(part.status).toBe(206);
    expect(part.body.toString()).toBe('2345');
    expect(part.header('Content-Range')).toBe('bytes 2-5/10');
    const suffix = await raw(berth.url, 'GET', `/v2/read/repo/blobs/${b.digest}`, { headers: { Range: 'bytes=-3' } });
    expect(suffix.body.toString()).toBe('789');
    const open = await raw(berth.url, 'GET', `/v2/read/repo/blobs/${b.digest}`, { headers: { Range: 'bytes=7-' } });
    expect(open.body.toString()).toBe('789');
    const beyond = await raw(berth.url, 'GET', `/v2/read/repo/blobs/${b.digest}`, { headers: { Range: 'bytes=10-20' } });
    expect(beyond.status).toBe(416);
    expect(beyond.header('Content-Range')).toBe('bytes */10');
  });

  it('HEAD answers the headers without a body', async () => {
    const head = await raw(berth.url, 'HEAD', `/v2/read/repo/blobs/${b.digest}`);
    expect(head.status).toBe(200);
    expect(head.header('Content-Length')).toBe('10');
    expect(head.header('Docker-Content-Digest')).toBe(b.digest);
    expect(head.body.length).toBe(0);
  });

  it('a blob not linked in the repository is BLOB_UNKNOWN there, though it exists elsewhere', async () => {
    const res = await raw(berth.url, 'GET', `/v2/read/other/blobs/${b.digest}`);
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UNKNOWN');
    expect((await raw(berth.url, 'HEAD', `/v2/read/other/blobs/${b.digest}`)).status).toBe(404);
  });

  it('DELETE removes the link only; the bytes stay for garbage collection', async () => {
    const d = blob('to delete');
    await pushBlob(berth.url, 'read/del', d);
    expect((await raw(berth.url, 'DELETE', `/v2/read/del/blobs/${d.digest}`)).status).toBe(202);
    expect((await raw(berth.url, 'GET', `/v2/read/del/blobs/${d.digest}`)).status).toBe(404);
    expect(existsSync(blobPath(berth.root, d.digest))).toBe(true);
    expect(errorCode(await raw(berth.url, 'DELETE', `/v2/read/del/blobs/${d.digest}`))).toBe('BLOB_UNKNOWN');
  });
});

describe('cross-repository mount', () => {
  const b = blob('shared layer');
  beforeAll(async () => pushBlob(berth.url, 'mount/source', b));

  it('mounts from a repository that has the blob: 201 and a new link', async () => {
    const res = await raw(berth.url, 'POST', `/v2/mount/target/blobs/uploads/?mount=${b.digest}&from=mount/source`);
    expect(res.status).toBe(201);
    expect(res.header('Docker-Content-Digest')).toBe(b.digest);
    expect((await raw(berth.url, 'GET', `/v2/mount/target/blobs/${b.digest}`)).body).toEqual(b.bytes);
  });

  it('falls back to an upload session when `from` lacks the blob', async () => {
    const res = await raw(berth.url, 'POST', `/v2/mount/target2/blobs/uploads/?mount=${blob('nowhere').digest}&from=mount/source`);
    expect(res.status).toBe(202);
    expect(res.header('Location')).toContain('/v2/mount/target2/blobs/uploads/');
  });

  it('mounts automatically without `from` when the registry holds the blob', async () => {
    const res = await raw(berth.url, 'POST', `/v2/mount/auto/blobs/uploads/?mount=${b.digest}`);
    expect(res.status).toBe(201);
    expect((await raw(berth.url, 'HEAD', `/v2/mount/auto/blobs/${b.digest}`)).status).toBe(200);
  });

  it('refuses a malformed mount digest or from name', async () => {
    expect(errorCode(await raw(berth.url, 'POST', '/v2/mount/x/blobs/uploads/?mount=sha256:zz&from=mount/source'))).toBe('DIGEST_INVALID');
    expect(errorCode(await raw(berth.url, 'POST', `/v2/mount/x/blobs/uploads/?mount=${b.digest}&from=../etc`))).toBe('NAME_INVALID');
  });
});

function sha256Of(data: Buffer): string {
  return blob(data).digest;
}

/** Opens a PATCH that promises `total` bytes, sends `part`, then cuts the connection. */
async function sendPartialAndDrop(location: string, part: Buffer, total: number): Promise<void> {
  const url = new URL(berth.url);
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(
        `PATCH ${location} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\n` +
          `Content-Length: ${total}\r\n\r\n`,
      );
      socket.write(part, () => setTimeout(() => socket.destroy(), 100));
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

/** The upload's Range once the server has finished with the dropped request. */
async function waitForStableRange(location: string): Promise<string> {
  let last = '';
  for (let i = 0; i < 50; i++) {
    const res = await raw(berth.url, 'GET', location);
    const range = res.header('Range') ?? '';
    if (range === last) return range;
    last = range;
    await new Promise((r) => setTimeout(r, 50));
  }
  return last;
}
