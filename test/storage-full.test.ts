/**
 * A full disk during uploads, on a real Berth whose root is a small tmpfs (8 MiB): the upload gets the
 * JSON error (507 UNAVAILABLE, "storage is full"), logged once with where it happened; nothing partial
 * becomes visible; pulls keep working; the space of a failed session comes back when it is cancelled or
 * purged. Mounting needs root: when `mount -t tmpfs` is not permitted, a loop device with ext4 is tried;
 * when neither works the test fails under CI=true and is skipped with the reason otherwise.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blob, errorCode, locationPath, makeImage, pushImage, randomBytesSeeded, raw } from './helpers/oci.js';
import { type ToolAvailability, describeWithTool } from './helpers/tools.js';

const SIZE = 8 * 1024 * 1024;

/** Mounts a small filesystem at `dir`: tmpfs, else ext4 on a loop device. Answers how, or why not. */
function mountSmall(dir: string, image: string): ToolAvailability & { how?: string } {
  const reasons: string[] = [];
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', dir], { stdio: 'pipe' });
    return { ok: true, how: 'tmpfs' };
  } catch (err) {
    reasons.push(`tmpfs: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  try {
    execFileSync('truncate', ['-s', String(2 * SIZE), image], { stdio: 'pipe' });
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'pipe' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'pipe' });
    return { ok: true, how: 'ext4 on a loop device' };
  } catch (err) {
    reasons.push(`loop device: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  return { ok: false, reason: `cannot mount a small filesystem (${reasons.join('; ')})` };
}

const work = await mkdtemp(join(tmpdir(), 'berth-full-'));
const mountpoint = join(work, 'root');
execFileSync('mkdir', ['-p', mountpoint]);
const mounted = mountSmall(mountpoint, join(work, 'fs.img'));
if (mounted.ok) console.log(`storage-full test: root on ${mounted.how ?? '?'} of ${SIZE} bytes at ${mountpoint}`);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function used(): Promise<number> {
  const s = await statfs(mountpoint);
  return (s.blocks - s.bfree) * s.bsize;
}

describeWithTool('mount', mounted, 'a full storage during uploads', () => {
  let berth: TestBerth;
  const image = makeImage(5);
  const tooBig = blob(randomBytesSeeded(SIZE + 4 * 1024 * 1024, 9));
  let baseline = 0;

  beforeAll(async () => {
    berth = await startBerth({ root: mountpoint });
    await pushImage(berth.url, 'app', 'v1', image);
    baseline = await used();
  });
  afterAll(async () => {
    await berth?.close();
    if (mounted.ok) execFileSync('umount', [mountpoint]);
  });

  const storageFullLines = (): string[] => berth.errors.filter((l) => l.includes('"msg":"storage full"'));

  async function expectPullsWork(): Promise<void> {
    expect((await raw(berth.url, 'GET', '/v2/app/manifests/v1', { headers: { Accept: image.mediaType } })).status).toBe(200);
    for (const b of [image.config, ...image.layers]) {
      const res = await raw(berth.url, 'GET', `/v2/app/blobs/${b.digest}`);
      expect(res.status).toBe(200);
      expect(res.body.equals(Buffer.from(b.bytes))).toBe(true);
    }
  }

  it('a monolithic upload that fills the disk is 507 UNAVAILABLE as JSON, logged once, leaves nothing behind', async () => {
    const res = await raw(berth.url, 'POST', `/v2/app/blobs/uploads/?digest=${tooBig.digest}`, {
      headers: { 'Content-Type': 'application/octet-stream' }, body: tooBig.bytes,
    });
    expect(res.status).toBe(507);
    expect(res.header('Content-Type')).toMatch(/^application\/json/);
    expect(errorCode(res)).toBe('UNAVAILABLE');
    expect(res.body.toString()).toMatch(/storage is full/);
    expect(storageFullLines()).toHaveLength(1);
    expect(storageFullLines()[0]).toMatch(/"where":"[^"]*_uploads/);
    expect(berth.errors.filter((l) => !l.includes('"msg":"storage full"'))).toEqual([]);
    expect((await raw(berth.url, 'HEAD', `/v2/app/blobs/${tooBig.digest}`)).status).toBe(404);
    await expectPullsWork();
    expect(await used()).toBeLessThanOrEqual(baseline + 64 * 1024); // the session was cancelled
  });

  it('a chunk that fills the disk is 507; the session keeps its bytes until cancelled, then the space is back', async () => {
    const post = await raw(berth.url, 'POST', '/v2/app/blobs/uploads/');
    expect(post.status).toBe(202);
    const patch = await raw(berth.url, 'PATCH', locationPath(post), { headers: { 'Content-Type': 'application/octet-stream' }, body: tooBig.bytes });
    expect(patch.status).toBe(507);
    expect(errorCode(patch)).toBe('UNAVAILABLE');
    expect(storageFullLines()).toHaveLength(2);
    expect(await used()).toBeGreaterThan(baseline + SIZE / 2);
    await expectPullsWork();
    expect((await raw(berth.url, 'DELETE', locationPath(post))).status).toBe(204);
    expect(await used()).toBeLessThanOrEqual(baseline + 64 * 1024);
  });

  it('a session that filled the disk is removed by upload purging, and the space is back', async () => {
    const post = await raw(berth.url, 'POST', '/v2/app/blobs/uploads/');
    const patch = await raw(berth.url, 'PATCH', locationPath(post), { headers: { 'Content-Type': 'application/octet-stream' }, body: tooBig.bytes });
    expect(patch.status).toBe(507);
    expect(await used()).toBeGreaterThan(baseline + SIZE / 2);
    const report = await berth.registry.purgeUploads({ olderThan: new Date(Date.now() + 60_000), dryRun: false });
    expect(report.purged).toHaveLength(1);
    expect(await used()).toBeLessThanOrEqual(baseline + 64 * 1024);
    // And the registry takes pushes again.
    const small = blob('after the disk had room again');
    const put = await raw(berth.url, 'POST', `/v2/app/blobs/uploads/?digest=${small.digest}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: small.bytes });
    expect(put.status).toBe(201);
  });
});

