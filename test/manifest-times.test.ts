/**
 * Push and pull times over HTTP against a real Berth with its index: a manifest PUT records the push,
 * a GET (not a HEAD) the pull, and a restart on the same root keeps both.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDigest } from '../src/storage/digest.js';
import { parseRepoName } from '../src/storage/reference.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { ACCEPT_ALL, makeImage, pushImage, raw } from './helpers/oci.js';

const REPO = parseRepoName('team/app');

let root: string;
let berth: TestBerth | undefined;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-times-http-'));
});
afterEach(async () => {
  await berth?.close();
  berth = undefined;
  await rm(root, { recursive: true, force: true });
});

describe('manifest push and pull times', () => {
  it('records a PUT and a GET, not a HEAD, and keeps them across a restart', async () => {
    berth = await startBerth({ root, index: true });
    const before = Date.now();
    const image = makeImage(1);
    const put = await pushImage(berth.url, REPO, 'v1', image);
    const d = parseDigest(put.header('Docker-Content-Digest') ?? '');
    if (d === undefined) throw new Error('no digest');
    const afterPush = await berth.registry.times.timesOf(REPO, d);
    expect(afterPush.pushedAt).toBeGreaterThanOrEqual(before);
    expect(afterPush.pulledAt).toBeUndefined();

    const head = await raw(berth.url, 'HEAD', `/v2/${REPO}/manifests/v1`, { headers: { Accept: ACCEPT_ALL } });
    expect(head.status).toBe(200);
    expect((await berth.registry.times.timesOf(REPO, d)).pulledAt).toBeUndefined();

    const get = await raw(berth.url, 'GET', `/v2/${REPO}/manifests/v1`, { headers: { Accept: ACCEPT_ALL } });
    expect(get.status).toBe(200);
    const afterPull = await berth.registry.times.timesOf(REPO, d);
    expect(afterPull.pulledAt).toBeGreaterThanOrEqual(afterPush.pushedAt ?? Infinity);
    expect(await berth.registry.times.repositoryTimes(REPO)).toEqual({ lastPush: afterPush.pushedAt, lastPull: afterPull.pulledAt });

    // The pull is still in memory (batched); closing writes it, and the next start reads both back.
    await berth.close();
    berth = await startBerth({ root, index: true });
    expect(berth.index?.state).toBe('ready');
    expect(await berth.registry.times.timesOf(REPO, d)).toEqual(afterPull);
  });
});
