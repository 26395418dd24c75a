/**
 * The pull-through cache (issue #13) against a real upstream: Debian's docker-registry 2.8.2 behind a
 * recording proxy (test/helpers/upstream-proxy.ts), which counts what the mirror asks and can be made to
 * fail. Berth runs as `berth serve` does, in process, with a `proxy` section.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { pushImageToRegistry2, serveMirror } from './helpers/mirror.js';
import { ACCEPT_ALL, MT, errorCode, makeImage, pushImage, putManifest, raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool, sleep } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';

describeWithTool('docker-registry', registry2Available(), 'a mirror of docker-registry 2.8', () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let berth: Serving;
  let url: string;
  const alpine = makeImage(101, { docker: true, layerCount: 3 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    await pushImageToRegistry2(upstream.url, 'library/alpine', '3', alpine);
    berth = await serveMirror(dir, [
      'upstreams:',
      `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}, default: true, hosts: [docker.io], revalidate: 1h}`,
    ]);
    url = berth.running.url;
  });
  afterAll(async () => {
    await berth?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('pulls an image through the prefix, caches it, and serves it again without the upstream', async () => {
    const m = await raw(url, 'GET', '/v2/docker.io/library/alpine/manifests/3', { headers: { Accept: ACCEPT_ALL } });
    expect(m.status).toBe(200);
    expect(m.header('Docker-Content-Digest')).toBe(alpine.manifest.digest);
    expect(m.header('Content-Type')).toBe(MT.dockerManifest);
    expect(m.body.equals(alpine.manifest.bytes)).toBe(true);
    for (const b of [alpine.config, ...alpine.layers]) {
      const got = await raw(url, 'GET', `/v2/docker.io/library/alpine/blobs/${b.digest}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(b.bytes)).toBe(true);
    }
    // Cached: the catalog lists it under the prefixed name, and nothing more is asked upstream.
    const catalog = await raw(url, 'GET', '/v2/_catalog');
    expect(catalog.json()).toEqual({ repositories: ['docker.io/library/alpine'] });
    const asked = proxy.requests.length;
    proxy.down = true;
    try {
      const again = await raw(url, 'GET', `/v2/docker.io/library/alpine/manifests/${alpine.manifest.digest}`);
      expect(again.status).toBe(200);
      for (const b of alpine.layers) {
        const got = await raw(url, 'GET', `/v2/docker.io/library/alpine/blobs/${b.digest}`);
        expect(got.body.equals(b.bytes)).toBe(true);
      }
    } finally {
      proxy.down = false;
    }
    expect(proxy.requests.length).toBe(asked);
    for (const b of [alpine.config, ...alpine.layers]) expect(proxy.count('GET', `/blobs/${b.digest}`)).toBe(1);
  });

  it("routes containerd's ?ns= and un-prefixed names that are not local to the default upstream", async () => {
    const ns = await raw(url, 'GET', `/v2/library/alpine/manifests/3?ns=docker.io`, { headers: { Accept: ACCEPT_ALL } });
    expect(ns.status).toBe(200);
    expect(ns.header('Docker-Content-Digest')).toBe(alpine.manifest.digest);
    const plain = await raw(url, 'GET', `/v2/library/alpine/blobs/${alpine.config.digest}`);
    expect(plain.status).toBe(200);
    expect(plain.body.equals(alpine.config.bytes)).toBe(true);
  });

  it('refuses pushes, uploads and deletes under the prefix with 405 UNSUPPORTED, and keeps local names writable', async () => {
    const img = makeImage(102);
    const post = await raw(url, 'POST', '/v2/docker.io/library/alpine/blobs/uploads/');
    expect(post.status).toBe(405);
    expect(errorCode(post)).toBe('UNSUPPORTED');
    const put = await putManifest(url, 'docker.io/library/alpine', 'mine', img.manifest, img.mediaType);
    expect(put.status).toBe(405);
    const del = await raw(url, 'DELETE', `/v2/docker.io/library/alpine/manifests/${alpine.manifest.digest}`);
    expect(del.status).toBe(405);
    expect(errorCode(del)).toBe('UNSUPPORTED');
    // An un-prefixed push is an ordinary repository, and pulls of it stay local afterwards.
    await pushImage(url, 'team/app', 'v1', img);
    const local = await raw(url, 'GET', '/v2/team/app/manifests/v1', { headers: { Accept: ACCEPT_ALL } });
    expect(local.status).toBe(200);
    expect(local.header('Docker-Content-Digest')).toBe(img.manifest.digest);
    expect(proxy.count('HEAD', '/v2/team/app/')).toBe(0);
    expect(proxy.count('GET', '/v2/team/app/')).toBe(0);
  });

  it.each([
    ['/v2/docker.io/../x/manifests/1'], ['/v2/docker.io/%2e%2e/x/manifests/1'], ['/v2/library/%2e%2e/manifests/1?ns=docker.io'],
  ])('refuses %s, a name escaping the prefix, as NAME_INVALID without asking upstream', async (path) => {
    const before = proxy.requests.length;
    const res = await raw(url, 'GET', path, { headers: { Accept: ACCEPT_ALL } });
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('NAME_INVALID');
    expect(proxy.requests.length).toBe(before);
  });

  it('answers a name the upstream does not have with the spec code of its 404', async () => {
    const res = await raw(url, 'GET', '/v2/docker.io/library/nothing/manifests/1', { headers: { Accept: ACCEPT_ALL } });
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
    const blob = await raw(url, 'GET', `/v2/docker.io/library/nothing/blobs/sha256:${'0'.repeat(64)}`);
    expect(blob.status).toBe(404);
    expect(errorCode(blob)).toBe('BLOB_UNKNOWN');
  });
});

describeWithTool('docker-registry', registry2Available(), "registry:2's proxy mode (proxy.remoteurl)", () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let berth: Serving;
  const image = makeImage(111, { docker: true });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-remoteurl-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    await pushImageToRegistry2(upstream.url, 'library/redis', '7', image);
    berth = await serveMirror(dir, [`remoteurl: ${JSON.stringify(proxy.url)}`, 'ttl: 0'], [], { debug: true });
  });
  afterAll(async () => {
    await berth?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('mirrors every name as is, refuses every push, and counts hits, misses and upstream bytes', async () => {
    const url = berth.running.url;
    const m = await raw(url, 'GET', '/v2/library/redis/manifests/7', { headers: { Accept: ACCEPT_ALL } });
    expect(m.status).toBe(200);
    expect(m.header('Docker-Content-Digest')).toBe(image.manifest.digest);
    for (const b of [image.config, ...image.layers]) {
      expect((await raw(url, 'GET', `/v2/library/redis/blobs/${b.digest}`)).body.equals(b.bytes)).toBe(true);
    }
    const catalog = await raw(url, 'GET', '/v2/_catalog');
    expect(catalog.json()).toEqual({ repositories: ['library/redis'] });
    const push = await raw(url, 'POST', '/v2/mine/app/blobs/uploads/');
    expect(push.status).toBe(405);
    expect(errorCode(push)).toBe('UNSUPPORTED');

    const debug = berth.debug?.url ?? '';
    const host = new URL(proxy.url).host;
    let text = '';
    const sample = (series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    // A fetch is counted once its cache write is over, just after its client got the last byte: scrape until it is.
    const fetches = `berth_mirror_upstream_fetch_seconds_count{upstream="${host}",kind="blob"}`;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(20)) {
      text = (await raw(debug, 'GET', '/metrics')).body.toString();
      if (sample(fetches) === 1 + image.layers.length) break;
    }
    // Cached now: a read is a hit.
    expect((await raw(url, 'GET', `/v2/library/redis/blobs/${image.config.digest}`)).status).toBe(200);
    text = (await raw(debug, 'GET', '/metrics')).body.toString();
    expect(sample(`berth_mirror_requests_total{upstream="${host}",result="hit"}`)).toBe(1);
    expect(sample(`berth_mirror_requests_total{upstream="${host}",result="miss"}`)).toBe(1 + 1 + image.layers.length);
    const bytes = image.manifest.size + image.config.size + image.layers.reduce((n, l) => n + l.size, 0);
    expect(sample(`berth_mirror_upstream_bytes_total{upstream="${host}"}`)).toBe(bytes);
    expect(sample(`berth_mirror_upstream_fetch_seconds_count{upstream="${host}",kind="blob"}`)).toBe(1 + image.layers.length);
  });
});
