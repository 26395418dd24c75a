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
import { describeWithTool } from './helpers/tools.js';
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

  it('answers a name the upstream does not have with the spec code of its 404', async () => {
    const res = await raw(url, 'GET', '/v2/docker.io/library/nothing/manifests/1', { headers: { Accept: ACCEPT_ALL } });
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
    const blob = await raw(url, 'GET', `/v2/docker.io/library/nothing/blobs/sha256:${'0'.repeat(64)}`);
    expect(blob.status).toBe(404);
    expect(errorCode(blob)).toBe('BLOB_UNKNOWN');
  });
});
