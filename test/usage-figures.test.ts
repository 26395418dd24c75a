/**
 * The management API's usage figures against a hand computation (issue #16), on a real Berth with
 * its index: two repositories share one image, one of them holds a second image of its own; the
 * bytes, counts and last push and pull are checked against what was pushed and pulled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { ACCEPT_ALL, type Image, makeImage, pushImage, raw } from './helpers/oci.js';

interface UsageJson {
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
const bytesOf = (img: Image): number => [img.config, ...img.layers, img.manifest].reduce((sum, b) => sum + b.size, 0);

describe('usage figures', () => {
  let berth: TestBerth;
  const shared = makeImage(7101, { layerCount: 3 });
  const own = makeImage(7102);

  beforeAll(async () => {
    berth = await startBerth({ index: true });
    await pushImage(berth.url, 'usage/a', 'v1', shared);
    await pushImage(berth.url, 'usage/b', 'v1', shared);
    await pushImage(berth.url, 'usage/b', 'v2', own);
    await pushImage(berth.url, 'usage/b', 'also-v2', own);
  }, 60_000);
  afterAll(async () => {
    await berth?.close();
  });

  const usage = async (name: string): Promise<UsageJson> => {
    const res = await raw(berth.url, 'GET', `/berth/v1/repositories/${name}/usage`);
    expect(res.status).toBe(200);
    return res.json() as UsageJson;
  };

  it('counts each distinct blob once, splits shared from exclusive, and counts tags and revisions', async () => {
    const a = await usage('usage/a');
    expect(a).toMatchObject({ logicalBytes: bytesOf(shared), sharedBytes: bytesOf(shared), exclusiveBytes: 0, tags: 1, manifests: 1 });
    const b = await usage('usage/b');
    expect(b).toMatchObject({
      logicalBytes: bytesOf(shared) + bytesOf(own),
      sharedBytes: bytesOf(shared),
      exclusiveBytes: bytesOf(own),
      tags: 3,
      manifests: 2,
    });
    const page = await raw(berth.url, 'GET', '/berth/v1/usage?prefix=usage/');
    expect(page.status).toBe(200);
    const { repositories } = page.json() as { repositories: UsageJson[] };
    expect(repositories.map((r) => [r.name, r.exclusiveBytes])).toEqual([['usage/a', 0], ['usage/b', bytesOf(own)]]);
  });

  it('gives the last push and the last pull (a GET, not a HEAD)', async () => {
    const before = await usage('usage/b');
    expect(before.lastPush).not.toBeNull();
    expect(before.lastPull).toBeNull();
    const pushedAt = Date.parse(before.lastPush ?? '');
    const head = await raw(berth.url, 'HEAD', '/v2/usage/b/manifests/v2', { headers: { Accept: ACCEPT_ALL } });
    expect(head.status).toBe(200);
    expect((await usage('usage/b')).lastPull).toBeNull();
    const get = await raw(berth.url, 'GET', '/v2/usage/b/manifests/v2', { headers: { Accept: ACCEPT_ALL } });
    expect(get.status).toBe(200);
    const after = await usage('usage/b');
    expect(Date.parse(after.lastPull ?? '')).toBeGreaterThanOrEqual(pushedAt);
    expect(after.lastPush).toBe(before.lastPush);
    // The other repository was never pulled.
    expect((await usage('usage/a')).lastPull).toBeNull();
  });
});
