/**
 * The mirror's cache against a real upstream (docker-registry 2.8 behind the recording proxy): tags
 * revalidated by HEAD, stale tags served with a Warning when the upstream fails, one upstream GET for
 * many concurrent cold readers (Range included), and a fetch its client abandons still cached.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { tagLinks, v2 as v2Tree } from './helpers/layout.js';
import { ACCEPT_ALL, MT, errorCode, makeImage, onLinux, platformIndex, putManifest, raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';
import { bigImage, pushImageToRegistry2, serveMirror } from './helpers/mirror.js';

describeWithTool('docker-registry', registry2Available(), 'the mirror cache', () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let always: Serving; // revalidate: 0s, every tag read asks upstream
  let hourly: Serving; // revalidate: 1h
  const v1 = makeImage(201, { docker: true });
  const v2 = makeImage(202, { docker: true });
  const big = bigImage(203, 8 * 1024 * 1024);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-cache-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    await pushImageToRegistry2(upstream.url, 'library/app', 'latest', v1);
    await pushImageToRegistry2(upstream.url, 'library/big', '1', big);
    const line = (revalidate: string): string[] => ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}, revalidate: ${revalidate}}`];
    always = await serveMirror(join(dir), line('0s'), []);
    hourly = await serveMirror(await mkdtemp(join(dir, 'h-')), line('1h'), []);
  });
  afterAll(async () => {
    await always?.stop();
    await hourly?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** Waits until the tag's links are in the mirror's storage under `root`. */
  const cachedTag = async (root: string, repo: string, name: string, digest: string): Promise<void> => {
    const links = tagLinks(repo, name, digest).map((l) => join(v2Tree(root), l));
    for (let i = 0; ; i++) {
      if ((await Promise.all(links.map((l) => stat(l).then(() => true, () => false)))).every(Boolean)) return;
      if (i >= 200) throw new Error(`${repo}:${name} was not cached within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const tag = (s: Serving, repo = 'library/app', ref = 'latest') =>
    raw(s.running.url, 'GET', `/v2/docker.io/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL } });

  it('revalidates a tag by HEAD, serves the cache while the digest is unchanged, and the new digest once it changes', async () => {
    expect((await tag(always)).header('Docker-Content-Digest')).toBe(v1.manifest.digest);
    expect((await tag(hourly)).header('Docker-Content-Digest')).toBe(v1.manifest.digest);
    // A fetched manifest is answered before its cache write ends, and a read meanwhile shares that
    // fetch (no HEAD): wait for the tag to be written before counting.
    await cachedTag(join(dir, 'root'), 'docker.io/library/app', 'latest', v1.manifest.digest);
    const gets = proxy.count('GET', '/manifests/');
    const heads = proxy.count('HEAD', '/manifests/latest');
    expect((await tag(always)).header('Docker-Content-Digest')).toBe(v1.manifest.digest);
    expect(proxy.count('HEAD', '/manifests/latest')).toBe(heads + 1);
    expect(proxy.count('GET', '/manifests/')).toBe(gets); // unchanged: served from the cache

    await pushImageToRegistry2(upstream.url, 'library/app', 'latest', v2);
    const changed = await tag(always);
    expect(changed.header('Docker-Content-Digest')).toBe(v2.manifest.digest);
    expect(changed.body.equals(v2.manifest.bytes)).toBe(true);
    // Within its hour, the other mirror still serves what it cached, without asking.
    const before = proxy.requests.length;
    expect((await tag(hourly)).header('Docker-Content-Digest')).toBe(v1.manifest.digest);
    expect(proxy.requests.length).toBe(before);
  });

  it('honours Accept: an index for clients that take one, the linux/amd64 manifest for those that do not', async () => {
    const amd64 = makeImage(204, { docker: true });
    const arm64 = makeImage(205, { docker: true });
    for (const [i, img] of [amd64, arm64].entries()) await pushImageToRegistry2(upstream.url, 'library/multi', `p${i}`, img);
    const list = platformIndex(MT.dockerList, [onLinux('amd64', amd64), onLinux('arm64', arm64)]);
    expect((await putManifest(upstream.url, 'library/multi', 'latest', list, MT.dockerList)).status).toBe(201);
    for (const s of [always, hourly]) {
      const index = await tag(s, 'library/multi');
      expect(index.header('Content-Type')).toBe(MT.dockerList);
      expect(index.header('Docker-Content-Digest')).toBe(list.digest);
      const single = await raw(s.running.url, 'GET', '/v2/docker.io/library/multi/manifests/latest', { headers: { Accept: MT.dockerManifest } });
      expect(single.status).toBe(200);
      expect(single.header('Content-Type')).toBe(MT.dockerManifest);
      expect(single.header('Docker-Content-Digest')).toBe(amd64.manifest.digest);
      const child = await raw(s.running.url, 'GET', `/v2/docker.io/library/multi/manifests/${arm64.manifest.digest}`, { headers: { Accept: ACCEPT_ALL } });
      expect(child.body.equals(arm64.manifest.bytes)).toBe(true);
    }
  });

  it.each([
    ['down', (p: UpstreamProxy) => void (p.down = true)],
    ['answering 503', (p: UpstreamProxy) => void (p.status = 503)],
    ['answering 429', (p: UpstreamProxy) => void (p.status = 429)],
  ])('serves a cached tag with a Warning while the upstream is %s; a tag never cached fails', async (_name, spoil) => {
    expect((await tag(always)).status).toBe(200);
    spoil(proxy);
    try {
      const stale = await tag(always);
      expect(stale.status).toBe(200);
      expect(stale.header('Docker-Content-Digest')).toBe(v2.manifest.digest);
      expect(stale.header('Warning')).toMatch(/^110 berth "Response is Stale/);
      const never = await tag(always, 'library/app', 'never-cached');
      expect(never.status).toBe(proxy.status === 429 ? 429 : 503);
      expect(errorCode(never)).toBe(proxy.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE');
    } finally {
      proxy.down = false;
      proxy.status = undefined;
    }
  });

  it('serves a cached tag with a Warning when the upstream is too slow to answer (15 s)', async () => {
    expect((await tag(always)).status).toBe(200);
    let release = (): void => undefined;
    proxy.hold = new Promise<void>((resolve) => (release = resolve));
    try {
      const began = Date.now();
      const stale = await tag(always);
      expect(stale.status).toBe(200);
      expect(stale.header('Warning')).toMatch(/^110 berth "Response is Stale: upstream docker\.io failed: no answer from .* within 15000 ms/);
      expect(Date.now() - began).toBeGreaterThanOrEqual(14_000);
    } finally {
      proxy.hold = undefined;
      release();
    }
  }, 60_000);

  it('fetches a blob once for twelve concurrent cold readers, Range requests included, and caches it', async () => {
    const layer = big.layers[0]!;
    const path = `/v2/docker.io/library/big/blobs/${layer.digest}`;
    let release = (): void => undefined;
    proxy.hold = new Promise<void>((resolve) => (release = resolve));
    const full = Array.from({ length: 11 }, () => raw(always.running.url, 'GET', path));
    const ranged = raw(always.running.url, 'GET', path, { headers: { Range: 'bytes=1000000-1999999' } });
    await proxy.arrived('GET', `/blobs/${layer.digest}`);
    proxy.hold = undefined;
    release();
    const answers = await Promise.all(full);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.equals(layer.bytes)).toBe(true);
    }
    const part = await ranged;
    expect(part.status).toBe(206);
    expect(part.body.equals(layer.bytes.subarray(1_000_000, 2_000_000))).toBe(true);
    expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(1);
    const again = await raw(always.running.url, 'GET', path);
    expect(again.body.equals(layer.bytes)).toBe(true);
    expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(1);
  });

  it('completes into the cache a fetch whose only client went away', async () => {
    const layer = big.layers[0]!;
    const path = `/v2/docker.io/library/big/blobs/${layer.digest}`;
    // The hourly mirror has not seen this blob: its client reads the first bytes, then hangs up.
    await new Promise<void>((resolve, reject) => {
      const url = new URL(hourly.running.url);
      const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end();
    });
    const before = proxy.count('GET', `/blobs/${layer.digest}`);
    const again = await raw(hourly.running.url, 'GET', path);
    expect(again.status).toBe(200);
    expect(again.body.equals(layer.bytes)).toBe(true);
    // The abandoned fetch went on (the second reader joined it or read the cache): no second GET.
    expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(before);
  });
});

