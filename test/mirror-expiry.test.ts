/**
 * Expiry of the mirror's cache (issue #13): an image last pulled longer ago than its upstream's `ttl`
 * is evicted, and one over `budget` goes least recently pulled first, by a step of the collector's run
 * before its mark, so that the same run frees the bytes, keeping every blob a kept image still names;
 * a later pull fetches again. The offline `berth garbage-collect` evicts the same way.
 */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { runBerthCli } from './helpers/berth-cli.js';
import { layerLink, v2 } from './helpers/layout.js';
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
  /** One collector run (`POST /debug/gc`): its report. */
  const collect = async (s: Serving, dryRun = false): Promise<{ evicted?: number; swept: number }> => {
    const res = await raw(s.debug?.url ?? '', 'POST', `/debug/gc${dryRun ? '?dryrun=true' : ''}`);
    expect(res.status, res.body.toString()).toBe(200);
    return res.json() as { evicted?: number; swept: number };
  };

  it('evicts an image its ttl after its last pull in a collector run, which frees its blobs; the next pull fetches again', async () => {
    await pull(byTtl, 'older', older);
    expect(await tagged(byTtl, 'older')).toBe(true);
    // Nothing evicts between runs: only a run does.
    expect((await collect(byTtl)).evicted).toBe(0);
    await sleep(2_100); // the ttl (2 s) passes
    expect(await tagged(byTtl, 'older')).toBe(true);
    expect((await collect(byTtl, true)).evicted).toBe(1); // a dry run evicts nothing
    expect(await tagged(byTtl, 'older')).toBe(true);
    const run = await collect(byTtl);
    expect(run.evicted).toBe(1);
    expect(run.swept).toBeGreaterThanOrEqual(3); // the manifest, its config and both layers
    expect(await tagged(byTtl, 'older')).toBe(false);
    expect(await cachedOffline(byTtl, 'older', `manifest:${older.manifest.digest}`)).toBe(false);
    expect(await cachedOffline(byTtl, 'older', older.layers[1]!.digest)).toBe(false);
    const before = proxy.count('GET', `/blobs/${older.layers[1]!.digest}`);
    await pull(byTtl, 'older', older);
    expect(proxy.count('GET', `/blobs/${older.layers[1]!.digest}`)).toBe(before + 1);
  });

  it('never breaks a pull racing eviction passes and collections', async () => {
    // ttl 2s: pulls 2.5 s apart race collector runs that evict the image (and free its blobs) before,
    // between or in the middle of their blob reads.
    const before = proxy.count('GET', `/manifests/`);
    for (let round = 0; round < 3; round++) {
      await sleep(2_500);
      await Promise.all([collect(byTtl), pull(byTtl, 'older', older)]);
    }
    await sleep(2_500);
    expect((await collect(byTtl)).evicted).toBe(1);
    await Promise.all([pull(byTtl, 'older', older), collect(byTtl), pull(byTtl, 'older', older)]);
    // The image was evicted and fetched again along the way.
    expect(proxy.count('GET', `/manifests/`)).toBeGreaterThan(before);
  }, 60_000);

  /**
   * Waits until every blob of `img` is linked into `repo` in the cache: a pull is answered before its
   * blobs' cache writes commit, and a write that lands after a collection's sweep is the next one's.
   */
  const linked = async (name: string, repo: string, img: Image): Promise<void> => {
    const links = [img.config, ...img.layers].map((b) => join(v2(join(dir, name, 'root')), layerLink(`docker.io/library/${repo}`, b.digest)));
    for (let i = 0; ; i++) {
      const present = await Promise.all(links.map((l) => stat(l).then(() => true, () => false)));
      if (present.every(Boolean)) return;
      if (i >= 200) throw new Error(`the blobs of ${repo} were not cached within 10 s`);
      await sleep(50);
    }
  };

  it('over budget, evicts the least recently pulled image, keeping the blob it shares with the kept one', async () => {
    await pull(byBudget, 'older', older);
    await pull(byBudget, 'newer', newer);
    await linked('budget', 'older', older);
    await linked('budget', 'newer', newer);
    expect(await tagged(byBudget, 'older')).toBe(true);
    expect((await collect(byBudget)).evicted).toBe(1);
    expect(await tagged(byBudget, 'older')).toBe(false);
    expect(await tagged(byBudget, 'newer')).toBe(true);
    expect(await cachedOffline(byBudget, 'newer', `manifest:${newer.manifest.digest}`)).toBe(true);
    expect(await cachedOffline(byBudget, 'newer', shared.digest)).toBe(true);
    expect(await cachedOffline(byBudget, 'older', older.layers[1]!.digest)).toBe(false);
  });
});

describeWithTool('docker-registry', registry2Available(), "pull times in the index's push and pull times", () => {
  it('keeps an image pulled within its ttl across a restart, and evicts it once the ttl after that pull passed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-mirror-times-'));
    const upstream = await startRegistry2({ root: join(dir, 'upstream') });
    const image = imageOf(530, [blob(randomBytesSeeded(2048, 531))]);
    const lines = ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(upstream.url)}, ttl: 3s}`];
    const getManifest = async (s: Serving): Promise<void> => {
      expect((await raw(s.running.url, 'GET', '/v2/docker.io/library/kept/manifests/1', { headers: { Accept: ACCEPT_ALL } })).status).toBe(200);
    };
    const collect = async (s: Serving): Promise<number | undefined> => {
      const res = await raw(s.debug?.url ?? '', 'POST', '/debug/gc');
      expect(res.status, res.body.toString()).toBe(200);
      return (res.json() as { evicted?: number }).evicted;
    };
    try {
      await pushImageToRegistry2(upstream.url, 'library/kept', '1', image);
      const first = await serveMirror(join(dir, 'mirror'), lines, [], { debug: true });
      const cachedAt = Date.now();
      try {
        await getManifest(first); // cached (and pulled)
        await sleep(2_000);
        await getManifest(first); // pulled again: its ttl now runs from here
      } finally {
        await first.stop();
      }
      const pulledAt = cachedAt + 2_000;
      const second = await serveMirror(join(dir, 'mirror'), lines, [], { debug: true });
      try {
        await sleep(Math.max(0, cachedAt + 3_500 - Date.now())); // past the ttl after caching, within it after the last pull
        expect(await collect(second)).toBe(0);
        await sleep(Math.max(0, pulledAt + 3_500 - Date.now()));
        expect(await collect(second)).toBe(1);
      } finally {
        await second.stop();
      }
      // Nothing of Berth's former pull-times file.
      await expect(stat(join(dir, 'mirror', 'root', 'berth', 'mirror-pulls.json'))).rejects.toThrow(/ENOENT/);
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describeWithTool('docker-registry', registry2Available(), 'eviction by the offline garbage-collect', () => {
  it('evicts an image past its ttl and frees its blobs in one run; a dry run evicts nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-mirror-offline-gc-'));
    const upstream = await startRegistry2({ root: join(dir, 'upstream') });
    const image = imageOf(520, [blob(randomBytesSeeded(2048, 521))]);
    const layerData = join(dir, 'mirror', 'root', 'docker', 'registry', 'v2', 'blobs', 'sha256', image.layers[0]!.digest.slice(7, 9), image.layers[0]!.digest.slice(7), 'data');
    try {
      await pushImageToRegistry2(upstream.url, 'library/gone', '1', image);
      const berth = await serveMirror(join(dir, 'mirror'), ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(upstream.url)}, ttl: 1s}`]);
      try {
        expect((await raw(berth.running.url, 'GET', '/v2/docker.io/library/gone/manifests/1', { headers: { Accept: ACCEPT_ALL } })).status).toBe(200);
        for (const b of [image.config, ...image.layers]) expect((await raw(berth.running.url, 'GET', `/v2/docker.io/library/gone/blobs/${b.digest}`)).status).toBe(200);
      } finally {
        await berth.stop(); // saves the pull times
      }
      await sleep(1_100); // the ttl passes
      const config = join(dir, 'mirror', (await readdir(join(dir, 'mirror'))).find((f) => f.startsWith('config-')) ?? '');
      const dry = await runBerthCli(['garbage-collect', '--dry-run', config], { env: { REGISTRY_LOG_LEVEL: 'info' } });
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stderr).toMatch(/mirror would evict/);
      await stat(layerData);
      const run = await runBerthCli(['garbage-collect', config], { env: { REGISTRY_LOG_LEVEL: 'info' } });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/mirror evicted/);
      expect(run.stdout).toMatch(/blob eligible for deletion: /);
      await expect(stat(layerData)).rejects.toThrow(/ENOENT/);
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
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

describeWithTool('docker-registry', registry2Available(), "registry:2's expiring blob entries", () => {
  it("acts on a registry:2 mirror root's expired blob entries: a blob no cached image of the repository names is unlinked, one an image names is kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-mirror-sched-blobs-'));
    const upstream = await startRegistry2({ root: join(dir, 'upstream') });
    const root = join(dir, 'mirror', 'root');
    const layer = blob(randomBytesSeeded(2048, 521));
    const image = imageOf(520, [layer]);
    // Pulled by digest into library/blobs, where no cached image names it; another repository's image
    // does, so the collector alone would keep its bytes and the link with them.
    const loose = blob(randomBytesSeeded(2048, 522));
    const keeper = imageOf(524, [loose]);
    const linkOf = (d: string, repo = 'blobs'): string => join(root, 'docker/registry/v2/repositories/library', repo, '_layers', 'sha256', d.slice('sha256:'.length), 'link');
    const dataOf = (d: string): string => join(root, 'docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data');
    const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);
    try {
      await pushImageToRegistry2(upstream.url, 'library/blobs', '1', image);
      await pushImageToRegistry2(upstream.url, 'library/blobs', 'other', imageOf(523, [loose]));
      await pushImageToRegistry2(upstream.url, 'library/keeper', '1', keeper);
      // registry:2 as the mirror caches the image and the loose blob (by digest), and schedules each.
      const r2 = await startRegistry2({ root, proxyRemoteUrl: upstream.url });
      try {
        expect((await raw(r2.url, 'GET', '/v2/library/blobs/manifests/1', { headers: { Accept: ACCEPT_ALL } })).status).toBe(200);
        for (const b of [image.config, layer, loose]) expect((await raw(r2.url, 'GET', `/v2/library/blobs/blobs/${b.digest}`)).status).toBe(200);
        expect((await raw(r2.url, 'GET', '/v2/library/keeper/manifests/1', { headers: { Accept: ACCEPT_ALL } })).status).toBe(200);
        for (const b of [keeper.config, loose]) expect((await raw(r2.url, 'GET', `/v2/library/keeper/blobs/${b.digest}`)).status).toBe(200);
        await until('registry:2 saved its scheduler state', async () => Object.keys(await readState(root)).length >= 7);
      } finally {
        await r2.close();
      }
      // Both blob entries expired a minute ago; the manifest's entry has a day to go.
      const state = await readState(root);
      const past = new Date(Date.now() - 60_000).toISOString();
      for (const d of [layer.digest, loose.digest]) {
        const key = `library/blobs@${d}`;
        expect(state[key]?.EntryType).toBe(0);
        state[key] = { Key: key, ExpiryData: past, EntryType: 0 };
      }
      await writeFile(join(root, 'scheduler-state.json'), JSON.stringify(state));
      expect(await exists(linkOf(loose.digest))).toBe(true);

      const berth = await serveMirror(join(dir, 'mirror'), [`remoteurl: ${JSON.stringify(upstream.url)}`, 'ttl: 24h'], [], { debug: true });
      try {
        const res = await raw(berth.debug?.url ?? '', 'POST', '/debug/gc');
        expect(res.status, res.body.toString()).toBe(200);
      } finally {
        await berth.stop();
      }
      // The loose blob: unlinked from library/blobs (its bytes stay for library/keeper's image); the image's layer: kept.
      expect(await exists(linkOf(loose.digest))).toBe(false);
      expect(await exists(linkOf(loose.digest, 'keeper'))).toBe(true);
      expect(await exists(dataOf(loose.digest))).toBe(true);
      expect(await exists(linkOf(layer.digest))).toBe(true);
      expect(await exists(dataOf(layer.digest))).toBe(true);
      const after = await readState(root);
      expect(after[`library/blobs@${loose.digest}`]).toBeUndefined();
      expect(after[`library/blobs@${layer.digest}`]).toBeUndefined();
      expect(after[`library/blobs@${image.manifest.digest}`]?.EntryType).toBe(1);
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** registry:2's scheduler-state.json under `root` ({} while absent). */
async function readState(root: string): Promise<Record<string, { Key: string; ExpiryData: string; EntryType: number }>> {
  try {
    return JSON.parse(await readFile(join(root, 'scheduler-state.json'), 'utf8')) as Record<string, { Key: string; ExpiryData: string; EntryType: number }>;
  } catch {
    return {};
  }
}
