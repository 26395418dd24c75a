/**
 * Quotas (`storage.quotas`, issue #16) against a real Berth over HTTP: the storage limit refused at
 * an upload's completion, at a monolithic POST that declares too much, at any POST once the usage is
 * over (a limit lowered under an existing root), at a mount from outside the glob and at a manifest
 * PUT; what the glob already holds costs nothing (a re-push, a mount, the same blob in another
 * repository); the repository-count limit; every matching quota applies; the figures reported.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { QuotaReading, QuotaSpec } from '../src/storage/registry.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, layerLink, uploadsDir, v2 } from './helpers/layout.js';
import { type Blob, blob, errorCode, locationPath, makeImage, pushBlob, pushImage, putManifest, randomBytesSeeded, raw } from './helpers/oci.js';

const KIB = 1024;
const open: TestBerth[] = [];
const teardowns: (() => Promise<void>)[] = [];
const onTeardown = (fn: () => Promise<void>): void => void teardowns.push(fn);
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  for (const fn of teardowns.splice(0)) await fn();
});

async function berthWith(quotas: readonly QuotaSpec[], more: { root?: string; index?: boolean; observeQuota?: (r: QuotaReading) => void } = {}): Promise<TestBerth> {
  const berth = await startBerth({ quotas, ...more });
  open.push(berth);
  return berth;
}

const exists = async (path: string): Promise<boolean> => (await stat(path).catch(() => undefined)) !== undefined;
const sessionsOf = async (berth: TestBerth, repo: string): Promise<string[]> => readdir(join(v2(berth.root), uploadsDir(repo))).catch(() => []);

/** POST then PUT with the whole body (a client that does not declare its size up front). */
async function postThenPut(base: string, repo: string, b: Blob) {
  const post = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/`);
  if (post.status !== 202) return post;
  const location = locationPath(post);
  return raw(base, 'PUT', `${location}&digest=${encodeURIComponent(b.digest)}`, {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: b.bytes,
  });
}

const message = (res: { body: Buffer }): string => (res.body.toString('utf8').match(/"message":"([^"]*)"/)?.[1] ?? '');

// With the LevelDB index (its figures, when it gives them) and without (the walk of storage).
describe.each([false, true])('with index %s', (index) => {
  describe('storage quota', () => {
    it('refuses the upload that would take the glob over at its completion, naming quota, usage and limit, and keeps nothing of it', async () => {
      const berth = await berthWith([{ repositories: ['team/**'], storageBytes: 10 * KIB }], { index });
      const a = blob(randomBytesSeeded(6 * KIB, 1));
      const b = blob(randomBytesSeeded(6 * KIB, 2));
      await pushBlob(berth.url, 'team/a', a);
      const refused = await postThenPut(berth.url, 'team/b', b);
      expect(refused.status).toBe(403);
      expect(errorCode(refused)).toBe('DENIED');
      expect(message(refused)).toBe('quota exceeded: storage of team/** would be 12 KiB, limit 10 KiB (storage.quotas[0])');
      expect(await exists(join(v2(berth.root), blobData(b.digest)))).toBe(false);
      expect(await sessionsOf(berth, 'team/b')).toEqual([]);
      // Outside the glob the same blob is welcome.
      await pushBlob(berth.url, 'other/b', b);
    });

    it('of two uploads racing for the last room, one is taken and the other refused', async () => {
      const berth = await berthWith([{ repositories: ['team/**'], storageBytes: 10 * KIB }], { index });
      for (let round = 0; round < 3; round += 1) {
        const blobs = [blob(randomBytesSeeded(6 * KIB, 100 + 2 * round)), blob(randomBytesSeeded(6 * KIB, 101 + 2 * round))];
        const repos = [`team/race${round}a`, `team/race${round}b`];
        // Both sessions are open before either completes, so both completions are checked against the same usage.
        const posts = await Promise.all(repos.map((r) => raw(berth.url, 'POST', `/v2/${r}/blobs/uploads/`)));
        const puts = await Promise.all(posts.map((post, i) =>
          raw(berth.url, 'PUT', `${locationPath(post)}&digest=${encodeURIComponent(blobs[i]?.digest ?? '')}`, {
            headers: { 'Content-Type': 'application/octet-stream' },
            body: blobs[i]?.bytes,
          })));
        expect(puts.map((p) => p.status).sort()).toEqual([201, 403]);
        const loser = blobs[puts.findIndex((p) => p.status === 403)];
        expect(await exists(join(v2(berth.root), blobData(loser?.digest ?? '')))).toBe(false);
        // Free the room for the next round.
        const winner = puts.findIndex((p) => p.status === 201);
        expect((await raw(berth.url, 'DELETE', `/v2/${repos[winner] ?? ''}/blobs/${blobs[winner]?.digest ?? ''}`)).status).toBe(202);
      }
    });

    it('lets through what the glob already holds: the same blob in another repository, a mount, a re-push', async () => {
      const berth = await berthWith([{ repositories: ['team/**'], storageBytes: 10 * KIB }], { index });
      const img = makeImage(7, { layerCount: 1 });
      const big = blob(randomBytesSeeded(7 * KIB, 3));
      await pushBlob(berth.url, 'team/a', big);
      await pushBlob(berth.url, 'team/b', big); // linked by team/a already: costs nothing
      const mount = await raw(berth.url, 'POST', `/v2/team/c/blobs/uploads/?mount=${big.digest}&from=team/a`);
      expect(mount.status).toBe(201);
      // Small enough for what is left: an image, then the same image again (nothing new to count).
      await pushImage(berth.url, 'team/a', 'v1', img);
      await pushImage(berth.url, 'team/a', 'v1', img);
      await pushImage(berth.url, 'team/b', 'v1', img);
      // A mount from outside the glob brings new bytes and is refused.
      const outside = blob(randomBytesSeeded(2 * KIB, 4));
      await pushBlob(berth.url, 'other/x', outside);
      const refused = await raw(berth.url, 'POST', `/v2/team/c/blobs/uploads/?mount=${outside.digest}&from=other/x`);
      expect(refused.status).toBe(403);
      expect(message(refused)).toMatch(/^quota exceeded: storage of team\/\*\* would be 1\d\.\d+ KiB, limit 10 KiB \(storage\.quotas\[0\]\)$/);
      expect(await exists(join(v2(berth.root), layerLink('team/c', outside.digest)))).toBe(false);
    });

    it('refuses a monolithic POST whose declared size would not fit, and a manifest whose own bytes would not', async () => {
      const berth = await berthWith([{ repositories: ['team/*'], storageBytes: 4 * KIB }], { index });
      const tooBig = blob(randomBytesSeeded(5 * KIB, 5));
      const res = await raw(berth.url, 'POST', `/v2/team/a/blobs/uploads/?digest=${tooBig.digest}`, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(tooBig.size) },
        body: tooBig.bytes,
      });
      expect(res.status).toBe(403);
      expect(message(res)).toBe('quota exceeded: storage of team/* would be 5 KiB, limit 4 KiB (storage.quotas[0])');
      expect(await exists(join(v2(berth.root), blobData(tooBig.digest)))).toBe(false);
      expect(await sessionsOf(berth, 'team/a')).toEqual([]);
      // Blobs that fit, then a manifest that does not: refused at its PUT, nothing of it stored.
      const img = makeImage(8, { layerCount: 1 });
      const filler = blob(randomBytesSeeded(4 * KIB - img.config.size - (img.layers[0]?.size ?? 0) - 10, 6));
      for (const b of [img.config, ...img.layers, filler]) await pushBlob(berth.url, 'team/a', b);
      const put = await putManifest(berth.url, 'team/a', 'v1', img.manifest, img.mediaType);
      expect(put.status).toBe(403);
      expect(message(put)).toMatch(/^quota exceeded: storage of team\/\* would be 4\.\d+ KiB, limit 4 KiB/);
      expect((await raw(berth.url, 'HEAD', '/v2/team/a/manifests/v1')).status).toBe(404);
      expect(await exists(join(v2(berth.root), blobData(img.manifest.digest)))).toBe(false);
    });

    it('refuses any upload start once the usage is over (a limit lowered under an existing root), and still takes a re-push', async () => {
      const root = await mkdtemp(join(tmpdir(), 'berth-quota-lowered-'));
      const img = makeImage(9, { layerCount: 1 });
      const big = blob(randomBytesSeeded(8 * KIB, 7));
      const unlimited = await startBerth({ root });
      await pushImage(unlimited.url, 'team/a', 'v1', img);
      await pushBlob(unlimited.url, 'team/a', big);
      await unlimited.close();
      onTeardown(() => rm(root, { recursive: true, force: true }));
      const lowered = await berthWith([{ repositories: ['team/**'], storageBytes: 4 * KIB }], { root, index });
      const refused = await raw(lowered.url, 'POST', '/v2/team/b/blobs/uploads/');
      expect(refused.status).toBe(403);
      expect(message(refused)).toMatch(/^quota exceeded: storage of team\/\*\* is 9\.\d+ KiB, limit 4 KiB \(storage\.quotas\[0\]\)$/);
      expect(await sessionsOf(lowered, 'team/b')).toEqual([]);
      // What is there already costs nothing: the same manifest again is accepted.
      const again = await putManifest(lowered.url, 'team/a', 'v1', img.manifest, img.mediaType);
      expect(again.status).toBe(201);
    });
  });

  describe('repository-count quota', () => {
    it('refuses a new repository once the glob holds its limit, at POST and at a mount, and takes more in existing ones', async () => {
      const berth = await berthWith([{ repositories: ['solo/*'], maxrepositories: 2 }], { index });
      await pushImage(berth.url, 'solo/a', 'v1', makeImage(10));
      await pushImage(berth.url, 'solo/b', 'v1', makeImage(11));
      const refused = await raw(berth.url, 'POST', '/v2/solo/c/blobs/uploads/');
      expect(refused.status).toBe(403);
      expect(errorCode(refused)).toBe('DENIED');
      expect(message(refused)).toBe('quota exceeded: solo/* would hold 3 repositories, limit 2 (storage.quotas[0])');
      const img = makeImage(10);
      const mount = await raw(berth.url, 'POST', `/v2/solo/c/blobs/uploads/?mount=${img.config.digest}&from=solo/a`);
      expect(mount.status).toBe(403);
      expect((await raw(berth.url, 'GET', '/v2/_catalog')).json()).toEqual({ repositories: ['solo/a', 'solo/b'] });
      await pushImage(berth.url, 'solo/a', 'v2', makeImage(12));
      // Not in the glob: `*` is one level.
      await pushImage(berth.url, 'solo/a/deeper', 'v1', makeImage(13));
    });

    it('applies every quota whose glob matches', async () => {
      const berth = await berthWith([
        { repositories: ['**'], maxrepositories: 3 },
        { repositories: ['team/**'], storageBytes: 3 * KIB },
      ], { index });
      await pushBlob(berth.url, 'team/a', blob(randomBytesSeeded(2 * KIB, 20)));
      const second = await postThenPut(berth.url, 'team/a', blob(randomBytesSeeded(2 * KIB, 21)));
      expect(message(second)).toContain('(storage.quotas[1])');
      await pushBlob(berth.url, 'x', blob('x'));
      await pushBlob(berth.url, 'y', blob('y'));
      const fourth = await raw(berth.url, 'POST', '/v2/z/blobs/uploads/');
      expect(message(fourth)).toBe('quota exceeded: ** would hold 4 repositories, limit 3 (storage.quotas[0])');
    });
  });
});

describe('quota figures', () => {
  it('reports usage against each limit as checks compute it', async () => {
    const readings: QuotaReading[] = [];
    const berth = await berthWith([{ repositories: ['team/**'], storageBytes: 10 * KIB, maxrepositories: 4 }], { observeQuota: (r) => readings.push(r), index: true });
    const a = blob(randomBytesSeeded(9 * KIB, 30));
    await pushBlob(berth.url, 'team/a', a);
    expect(readings.at(-2)).toEqual({ quota: 'team/**', kind: 'storage', used: a.size, limit: 10 * KIB });
    expect(readings.at(-1)).toEqual({ quota: 'team/**', kind: 'repositories', used: 1, limit: 4 });
  });
});
