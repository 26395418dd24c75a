/**
 * A repository delete (`DELETE /berth/v1/repositories/<name>`) on a registry with the LevelDB index:
 * the index takes the delete in item by item (src/indexdb/refresh.ts itemsOf) instead of rebuilding,
 * so it is still ready when the delete is answered (`berth_index_ready` 1, the same generation) and
 * every answer is right at once: the catalog, the deleted repository's tags and referrers (404), a
 * nested repository left alone, and the usage figures (which only the index answers: 503 while it
 * rebuilds), where what the deleted repository shared with another becomes that one's own.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../src/metrics/metrics.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { MT, artifactManifest, descriptor, emptyConfig, errorCode, makeImage, pushBlob, pushImage, putManifest, raw } from './helpers/oci.js';
import { type UsageJson, bytesOf } from './helpers/usage.js';

describe('repository delete with the index', () => {
  let berth: TestBerth;
  const metrics = new Registry();
  const shared = makeImage(8101, { layerCount: 3 });
  const own = makeImage(8102);
  const nested = makeImage(8103);
  const signature = artifactManifest('application/vnd.example.signature', [], descriptor(MT.ociManifest, shared.manifest));

  beforeAll(async () => {
    berth = await startBerth({ index: true });
    if (berth.index === undefined) throw new Error('the index did not open');
    createMetrics(metrics).observeIndex(berth.index);
    await pushImage(berth.url, 'gone/app', 'v1', shared);
    await pushImage(berth.url, 'gone/app', 'v2', own);
    await pushBlob(berth.url, 'gone/app', emptyConfig());
    expect((await putManifest(berth.url, 'gone/app', signature.digest, signature, MT.ociManifest)).status).toBe(201);
    await pushImage(berth.url, 'gone/app/nested', 'n1', nested);
    await pushImage(berth.url, 'kept/app', 'v1', shared);
  }, 60_000);
  afterAll(async () => {
    await berth?.close();
  });

  const json = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const res = await raw(berth.url, 'GET', path);
    return { status: res.status, body: res.json() as T };
  };
  const indexReady = async (): Promise<string | undefined> =>
    (await metrics.metrics()).split('\n').find((line) => line.startsWith('berth_index_ready '));

  it('answers the catalog, tags, referrers and usage right at once, from an index that never stopped being ready', async () => {
    expect(await indexReady()).toBe('berth_index_ready 1');
    const before = await berth.index?.generation();
    expect((await json<{ manifests: unknown[] }>(`/v2/gone/app/referrers/${shared.manifest.digest}`)).body.manifests).toHaveLength(1);
    const keptBefore = await json<UsageJson>('/berth/v1/repositories/kept/app/usage');
    expect(keptBefore.body).toMatchObject({ logicalBytes: bytesOf(shared), sharedBytes: bytesOf(shared), exclusiveBytes: 0 });

    const deleted = await raw(berth.url, 'DELETE', '/berth/v1/repositories/gone/app');
    expect(deleted.status).toBe(202);
    // No rebuild: still ready, still the generation of the start's rebuild.
    expect(berth.index?.state).toBe('ready');
    expect(await indexReady()).toBe('berth_index_ready 1');

    const catalog = await json<{ repositories: string[] }>('/v2/_catalog');
    expect(catalog.body.repositories).toEqual(['gone/app/nested', 'kept/app']);
    const tags = await raw(berth.url, 'GET', '/v2/gone/app/tags/list');
    expect(tags.status).toBe(404);
    expect(errorCode(tags)).toBe('NAME_UNKNOWN');
    const referrers = await json<{ manifests: unknown[] }>(`/v2/gone/app/referrers/${shared.manifest.digest}`);
    expect(referrers.body.manifests ?? []).toEqual([]);
    expect((await json<{ tags: string[] }>('/v2/gone/app/nested/tags/list')).body.tags).toEqual(['n1']);

    // Usage: only the index answers it, so a 200 here is the index answering.
    expect((await raw(berth.url, 'GET', '/berth/v1/repositories/gone/app/usage')).status).toBe(404);
    const page = await json<{ repositories: UsageJson[] }>('/berth/v1/usage');
    expect(page.status).toBe(200);
    expect(page.body.repositories.map((r) => r.name)).toEqual(['gone/app/nested', 'kept/app']);
    const kept = page.body.repositories.find((r) => r.name === 'kept/app');
    expect(kept).toMatchObject({ logicalBytes: bytesOf(shared), sharedBytes: 0, exclusiveBytes: bytesOf(shared), tags: 1, manifests: 1 });
    expect(page.body.repositories.find((r) => r.name === 'gone/app/nested')).toMatchObject({ logicalBytes: bytesOf(nested), tags: 1 });

    expect((await berth.index?.generation())?.generation).toBe(before?.generation);
    // What the incremental delete left is what a rebuild from storage gives.
    await berth.index?.rebuild();
    expect((await json<{ repositories: UsageJson[] }>('/berth/v1/usage')).body.repositories).toEqual(page.body.repositories);
    expect((await json<{ repositories: string[] }>('/v2/_catalog')).body.repositories).toEqual(catalog.body.repositories);
    expect(berth.errors).toEqual([]);
  });
});
