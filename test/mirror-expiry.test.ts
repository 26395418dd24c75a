/**
 * Expiry of the mirror's cache (issue #13): an image last pulled longer ago than its upstream's `ttl`
 * is evicted, and one over `budget` goes least recently pulled first; the collector then frees the
 * bytes, keeping every blob a kept image still names; a later pull fetches again.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { pushImageToRegistry2, serveMirror } from './helpers/mirror.js';
import { ACCEPT_ALL, MT, type Image, blob, descriptor, manifestBlob, randomBytesSeeded, raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool, sleep } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';

/** An image of `layers` (its config made unique by `seed`). */
function imageOf(seed: number, layers: readonly ReturnType<typeof blob>[]): Image {
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const manifest = manifestBlob({ schemaVersion: 2, mediaType: MT.ociManifest, config: descriptor(MT.ociConfig, config), layers: layers.map((l) => descriptor(MT.ociLayer, l)) });
  return { config, layers: [...layers], manifest, mediaType: MT.ociManifest };
}

const imageSize = (img: Image): number => img.manifest.size + img.config.size + img.layers.reduce((n, l) => n + l.size, 0);

/** Waits (bounded) until the condition holds: expiry is about time passing, so this polls. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) if (await check()) return;
  throw new Error(`timed out waiting until ${what}`);
}

describeWithTool('docker-registry', registry2Available(), 'expiry of the mirror cache', () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let byTtl: Serving;
  let byBudget: Serving;
  const shared = blob(randomBytesSeeded(4096, 501));
  const older = imageOf(502, [shared, blob(randomBytesSeeded(4096, 503))]);
  const newer = imageOf(504, [shared]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-expiry-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    await pushImageToRegistry2(upstream.url, 'library/older', '1', older);
    await pushImageToRegistry2(upstream.url, 'library/newer', '1', newer);
    byTtl = await serveMirror(join(dir, 'ttl'), ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}, ttl: 2s}`], [], { debug: true });
    byBudget = await serveMirror(join(dir, 'budget'), [
      'upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}, ttl: 0}`, `budget: ${imageSize(newer) + 16}`,
    ], [], { debug: true });
  });
  afterAll(async () => {
    await byTtl?.stop();
    await byBudget?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const pull = async (s: Serving, repo: string, img: Image): Promise<void> => {
    const m = await raw(s.running.url, 'GET', `/v2/docker.io/library/${repo}/manifests/1`, { headers: { Accept: ACCEPT_ALL } });
    expect(m.header('Docker-Content-Digest')).toBe(img.manifest.digest);
    for (const b of [img.config, ...img.layers]) expect((await raw(s.running.url, 'GET', `/v2/docker.io/library/${repo}/blobs/${b.digest}`)).body.equals(b.bytes)).toBe(true);
  };
  /** Whether the mirror still serves `digest` of `repo` with the upstream unreachable. */
  const cachedOffline = async (s: Serving, repo: string, what: string): Promise<boolean> => {
    proxy.down = true;
    try {
      const kind = what.startsWith('manifest:') ? 'manifests' : 'blobs';
      return (await raw(s.running.url, 'GET', `/v2/docker.io/library/${repo}/${kind}/${what.replace(/^manifest:/, '')}`, { headers: { Accept: ACCEPT_ALL } })).status === 200;
    } finally {
      proxy.down = false;
    }
  };
  /** Whether the cached tag list of `repo` still has its tag (a tag list is no pull: it moves no pull time). */
  const tagged = async (s: Serving, repo: string): Promise<boolean> => {
    proxy.down = true;
    try {
      const res = await raw(s.running.url, 'GET', `/v2/docker.io/library/${repo}/tags/list`);
      return res.status === 200 && (res.json() as { tags: string[] }).tags.includes('1');
    } finally {
      proxy.down = false;
    }
  };
  const collect = async (s: Serving): Promise<void> => {
    const res = await raw(s.debug?.url ?? '', 'POST', '/debug/gc');
    expect(res.status, res.body.toString()).toBe(200);
  };

  it('evicts an image its ttl after its last pull; the collector frees its blobs; the next pull fetches again', async () => {
    await pull(byTtl, 'older', older);
    expect(await tagged(byTtl, 'older')).toBe(true);
    await until('the image is evicted', async () => !(await tagged(byTtl, 'older')));
    expect(await cachedOffline(byTtl, 'older', `manifest:${older.manifest.digest}`)).toBe(false);
    await collect(byTtl);
    expect(await cachedOffline(byTtl, 'older', older.layers[1]!.digest)).toBe(false);
    const before = proxy.count('GET', `/blobs/${older.layers[1]!.digest}`);
    await pull(byTtl, 'older', older);
    expect(proxy.count('GET', `/blobs/${older.layers[1]!.digest}`)).toBe(before + 1);
  });

  it('never breaks a pull racing eviction passes and collections', async () => {
    // ttl 2s, a pass every second: pulls 2.5 s apart find the image evicted in between, or in the
    // middle of their blob reads, while collections run beside them.
    const before = proxy.count('GET', `/manifests/`);
    for (let round = 0; round < 3; round++) {
      await Promise.all([pull(byTtl, 'older', older), collect(byTtl)]);
      await sleep(2_500);
    }
    await Promise.all([pull(byTtl, 'older', older), collect(byTtl), pull(byTtl, 'older', older)]);
    // The image was evicted and fetched again along the way.
    expect(proxy.count('GET', `/manifests/`)).toBeGreaterThan(before);
  }, 60_000);

  it('over budget, evicts the least recently pulled image, keeping the blob it shares with the kept one', async () => {
    await pull(byBudget, 'older', older);
    await pull(byBudget, 'newer', newer);
    await until('the older image is evicted', async () => !(await tagged(byBudget, 'older')));
    expect(await tagged(byBudget, 'newer')).toBe(true);
    await collect(byBudget);
    expect(await cachedOffline(byBudget, 'newer', `manifest:${newer.manifest.digest}`)).toBe(true);
    expect(await cachedOffline(byBudget, 'newer', shared.digest)).toBe(true);
    expect(await cachedOffline(byBudget, 'older', older.layers[1]!.digest)).toBe(false);
  });
});

describeWithTool('docker-registry', registry2Available(), "registry:2's scheduler-state.json", () => {
  it('is read from a registry:2 mirror root and written back compatibly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-mirror-sched-'));
    const upstream = await startRegistry2({ root: join(dir, 'upstream') });
    const root = join(dir, 'mirror', 'root'); // where serveMirror(join(dir, 'mirror')) keeps its storage
    const image = imageOf(510, [blob(randomBytesSeeded(2048, 511))]);
    try {
      await pushImageToRegistry2(upstream.url, 'library/sched', '1', image);
      // registry:2 as the mirror first: it caches the image and schedules its expiry.
      const r2 = await startRegistry2({ root, proxyRemoteUrl: upstream.url });
      try {
        const m = await raw(r2.url, 'GET', '/v2/library/sched/manifests/1', { headers: { Accept: ACCEPT_ALL } });
        expect(m.status).toBe(200);
        for (const b of [image.config, ...image.layers]) expect((await raw(r2.url, 'GET', `/v2/library/sched/blobs/${b.digest}`)).status).toBe(200);
        await until('registry:2 saved its scheduler state', async () => Object.keys(await readState(root)).length >= 2);
      } finally {
        await r2.close();
      }
      const before = await readState(root);
      const manifestKey = `library/sched@${image.manifest.digest}`;
      expect(before[manifestKey]?.EntryType).toBe(1);
      // Berth takes the root over, serves the cache, and writes the schedule back when it stops.
      const berth = await serveMirror(join(dir, 'mirror'), [`remoteurl: ${JSON.stringify(upstream.url)}`, 'ttl: 24h']);
      const pulledAt = Date.now();
      try {
        const m = await raw(berth.running.url, 'GET', `/v2/library/sched/manifests/${image.manifest.digest}`, { headers: { Accept: ACCEPT_ALL } });
        expect(m.status).toBe(200);
      } finally {
        await berth.stop();
      }
      const after = await readState(root);
      for (const [key, entry] of Object.entries(before)) if (entry.EntryType === 0) expect(after[key]).toEqual(entry);
      const expiry = Date.parse(after[manifestKey]?.ExpiryData ?? '');
      expect(expiry).toBeGreaterThanOrEqual(pulledAt + 24 * 3_600_000 - 1000);
      // registry:2 reads it back and serves the root again.
      const again = await startRegistry2({ root, proxyRemoteUrl: upstream.url });
      try {
        expect((await raw(again.url, 'GET', `/v2/library/sched/manifests/${image.manifest.digest}`, { headers: { Accept: ACCEPT_ALL } })).status).toBe(200);
      } finally {
        await again.close();
      }
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** registry:2's scheduler-state.json under `root` ({} while absent). */
async function readState(root: string): Promise<Record<string, { Key: string; ExpiryData: string; EntryType: number }>> {
  try {
    return JSON.parse(await readFile(join(root, 'scheduler-state.json'), 'utf8')) as Record<string, { Key: string; ExpiryData: string; EntryType: number }>;
  } catch {
    return {};
  }
}
