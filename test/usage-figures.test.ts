/**
 * The management API's usage figures against a hand computation (issue #16), on a real Berth with
 * its index: two repositories share one image, one of them holds a second image of its own; the
 * bytes, counts and last push and pull are checked against what was pushed and pulled.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage } from '../src/gc/run.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { ACCEPT_ALL, type Image, makeImage, manifestBlob, pushBlob, pushImage, raw } from './helpers/oci.js';
import { type UsageJson, bytesOf } from './helpers/usage.js';

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
    // A page of usages gives the same times (read for the whole page at once).
    const page = await raw(berth.url, 'GET', '/berth/v1/usage?prefix=usage/');
    const { repositories } = page.json() as { repositories: UsageJson[] };
    expect(repositories).toEqual([await usage('usage/a'), await usage('usage/b')]);
  });
});

/** The figures the index keeps (the times come from elsewhere). */
const figuresOf = (u: UsageJson): Omit<UsageJson, 'lastPush' | 'lastPull'> => {
  const { lastPush: _push, lastPull: _pull, ...figures } = u;
  return figures;
};

/** `img` again under another manifest (an annotation more): same config and layers, another digest. */
function twinOf(img: Image): Image {
  const doc = JSON.parse(img.manifest.bytes.toString('utf8')) as Record<string, unknown>;
  return { ...img, manifest: manifestBlob({ ...doc, annotations: { twin: 'yes' } }) };
}

describe('usage figures through tag and repository deletes, the collector, and a rebuild', () => {
  const base = makeImage(7201, { layerCount: 2 });
  const twin = twinOf(base);
  const old = makeImage(7202);
  const fresh = makeImage(7203);
  const m = (img: Image): number => img.manifest.size;
  const servers: TestBerth[] = [];
  const roots: string[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });
  const start = async (opts: Parameters<typeof startBerth>[0]): Promise<TestBerth> => {
    const s = await startBerth(opts);
    servers.push(s);
    return s;
  };
  const usageOf = async (s: TestBerth, name: string): Promise<UsageJson> => {
    const res = await raw(s.url, 'GET', `/berth/v1/repositories/${name}/usage`);
    expect(res.status, res.body.toString()).toBe(200);
    return res.json() as UsageJson;
  };
  const page = async (s: TestBerth): Promise<UsageJson[]> => {
    const res = await raw(s.url, 'GET', '/berth/v1/usage?prefix=fig/');
    expect(res.status, res.body.toString()).toBe(200);
    return (res.json() as { repositories: UsageJson[] }).repositories;
  };

  /** Each step of the story, with the figures it must leave (checked when `check` is given). */
  async function story(s: TestBerth, check?: (step: string) => Promise<void>): Promise<void> {
    // fig/x: two manifests over one config and two layers (each blob linked once however many
    // manifests name it), and base's manifest also uploaded as a blob: a layer link and a revision
    // of one digest, counted once. fig/y holds base too; fig/z moves its tag from `old` to `fresh`.
    await pushImage(s.url, 'fig/x', 'v1', base);
    await pushImage(s.url, 'fig/x', 'v2', twin);
    await pushBlob(s.url, 'fig/x', base.manifest);
    await pushImage(s.url, 'fig/y', 'v1', base);
    await pushImage(s.url, 'fig/z', 'latest', old);
    await pushImage(s.url, 'fig/z', 'latest', fresh);
    await check?.('pushed');
    const del = await raw(s.url, 'DELETE', '/v2/fig/x/manifests/v2');
    expect(del.status).toBe(202);
    await check?.('tag deleted');
    await collectGarbage(s.registry, { graceMs: 0, deleteUntagged: true, dryRun: false });
    await check?.('collected');
    const gone = await raw(s.url, 'DELETE', '/berth/v1/repositories/fig/y');
    expect(gone.status).toBe(202);
    if (s.index) expect(s.index.state).toBe('ready'); // a repository delete is taken in item by item, not by a rebuild
    await check?.('repository deleted');
  }

  it('match a hand computation after every step, and a rebuild (live or from a tree written without the index) gives the same', async () => {
    const live = await start({ index: true });
    await story(live, async (step) => {
      const names = step === 'repository deleted' ? ['fig/x'] : ['fig/x', 'fig/y', 'fig/z'];
      const [x, y, z] = await Promise.all(names.map((name) => usageOf(live, name)));
      const all = bytesOf(base) + m(twin);
      switch (step) {
        case 'pushed':
        case 'tag deleted':
          expect(x).toMatchObject({ logicalBytes: all, sharedBytes: bytesOf(base), exclusiveBytes: m(twin), tags: step === 'pushed' ? 2 : 1, manifests: 2 });
          expect(y).toMatchObject({ logicalBytes: bytesOf(base), sharedBytes: bytesOf(base), exclusiveBytes: 0, tags: 1, manifests: 1 });
          expect(z).toMatchObject({ logicalBytes: bytesOf(old) + bytesOf(fresh), sharedBytes: 0, tags: 1, manifests: 2 });
          break;
        case 'collected':
          // The untagged twin (x) and old (z) are gone, with the blobs only they named.
          expect(x).toMatchObject({ logicalBytes: bytesOf(base), sharedBytes: bytesOf(base), exclusiveBytes: 0, tags: 1, manifests: 1 });
          expect(y).toMatchObject({ logicalBytes: bytesOf(base), sharedBytes: bytesOf(base), exclusiveBytes: 0 });
          expect(z).toMatchObject({ logicalBytes: bytesOf(fresh), exclusiveBytes: bytesOf(fresh), tags: 1, manifests: 1 });
          break;
        case 'repository deleted':
          expect(x).toMatchObject({ logicalBytes: bytesOf(base), sharedBytes: 0, exclusiveBytes: bytesOf(base) });
          expect((await raw(live.url, 'GET', '/berth/v1/repositories/fig/y/usage')).status).toBe(404);
          break;
      }
    });
    const figures = (await page(live)).map(figuresOf);
    expect(figures.map((f) => f.name)).toEqual(['fig/x', 'fig/z']);

    // The same tree read again by a rebuild.
    await live.index?.rebuild();
    expect((await page(live)).map(figuresOf)).toEqual(figures);

    // The same story told to a Berth without an index (no figures: 503), then an indexed start on its root.
    const root = await mkdtemp(join(tmpdir(), 'berth-usage-'));
    roots.push(root);
    const blind = await startBerth({ root });
    await story(blind);
    expect((await raw(blind.url, 'GET', '/berth/v1/usage')).status).toBe(503);
    await blind.close();
    const later = await start({ root, index: true });
    expect((await page(later)).map(figuresOf)).toEqual(figures);
  }, 120_000);
});
