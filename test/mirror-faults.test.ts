/**
 * Faults of the upstream while the mirror fetches (issue #13 "Bad input and faults"): it dies mid-blob,
 * sends wrong bytes, a wrong Content-Length, a redirect loop, a manifest over 4 MiB, or a token realm
 * that is not http(s). Each time the client gets a clear error (or its connection cut, once a blob's
 * headers went), nothing partial is cached, and the next pull fetches again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { ACCEPT_ALL, type Image, errorCode, makeImage, raw } from './helpers/oci.js';
import { bigImage, pushImageToRegistry2, serveMirror } from './helpers/mirror.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';
import { type Fault, type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';

/** A GET whose body may end early: what arrived, and whether the response completed. */
function download(base: string, path: string): Promise<{ status: number; bytes: Buffer; complete: boolean }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks), complete: false }));
      res.on('aborted', () => undefined);
    });
    // Cut before any answer (the mirror learnt of the fault before its headers went).
    req.on('error', () => resolve({ status: 0, bytes: Buffer.alloc(0), complete: false }));
    req.end();
  });
}

describeWithTool('docker-registry', registry2Available(), 'upstream faults while mirroring', () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let berth: Serving;
  let url: string;
  const images: Image[] = [];
  let seed = 400;
  let image: Image;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-faults-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    for (let i = 0; i < 6; i++) {
      const img = i === 0 ? bigImage(seed++, 4 * 1024 * 1024) : makeImage(seed++, { layerCount: 1 });
      await pushImageToRegistry2(upstream.url, `library/f${i}`, '1', img);
      images.push(img);
    }
    berth = await serveMirror(join(dir, 'mirror'), ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}}`]);
    url = berth.running.url;
  });
  afterEach(() => {
    proxy.down = false;
  });
  afterAll(async () => {
    await berth?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** The blob of image `i` with `fault` on its path: the first pull fails, nothing is cached, the next one succeeds. */
  const faultyBlob = async (i: number, fault: Fault): Promise<{ status: number; bytes: Buffer; complete: boolean }> => {
    image = images[i]!;
    const layer = image.layers[0]!;
    const path = `/v2/docker.io/library/f${i}/blobs/${layer.digest}`;
    proxy.fault(layer.digest, fault);
    const first = await download(url, path);
    proxy.fault(layer.digest, undefined);
    expect(first.complete && first.status === 200 && first.bytes.equals(layer.bytes)).toBe(false);
    // Nothing partial was cached: with the upstream gone, the blob is not served.
    proxy.down = true;
    const meanwhile = await raw(url, 'GET', path);
    expect(meanwhile.status).toBe(503);
    expect(errorCode(meanwhile)).toBe('UNAVAILABLE');
    proxy.down = false;
    const before = proxy.count('GET', `/blobs/${layer.digest}`);
    const next = await raw(url, 'GET', path);
    expect(next.status, next.body.toString()).toBe(200);
    expect(next.body.equals(layer.bytes)).toBe(true);
    expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(before + 1);
    return first;
  };

  it('cuts the connection when the upstream dies mid-blob (or answers 503 when it died before the answer began)', async () => {
    const first = await faultyBlob(0, { kind: 'cut', afterBytes: 1024 * 1024 });
    expect(first.complete).toBe(false);
    expect([200, 503, 0]).toContain(first.status);
    expect(first.bytes.length).toBeLessThan(1024 * 1024);
  });

  it('never serves wrong bytes whole', async () => {
    const first = await faultyBlob(1, { kind: 'flip', atByte: 10 });
    expect(first.complete).toBe(false);
    expect(first.bytes.length).toBeLessThan(image.layers[0]!.size);
  });

  it.each([[2, 10], [3, -10]])('fails a blob sent with a wrong Content-Length (image %i, off by %i)', async (i, delta) => {
    const first = await faultyBlob(i, { kind: 'length', delta });
    expect(first.complete && first.bytes.equals(images[i]!.layers[0]!.bytes)).toBe(false);
  });

  it('answers a redirect loop with a clear error', async () => {
    const first = await faultyBlob(4, { kind: 'redirect-loop' });
    expect(first.status).toBe(503);
    expect(JSON.parse(first.bytes.toString()).errors[0].message).toMatch(/more than 5 redirects/);
  });

  it('refuses a manifest over 4 MiB, and caches nothing of it', async () => {
    proxy.fault('/manifests/huge', { kind: 'huge-manifest', bytes: 4 * 1024 * 1024 + 1 });
    const res = await raw(url, 'GET', '/v2/docker.io/library/f5/manifests/huge', { headers: { Accept: ACCEPT_ALL } });
    proxy.fault('/manifests/huge', undefined);
    expect(res.status).toBe(503);
    expect(errorCode(res)).toBe('UNAVAILABLE');
    expect(JSON.parse(res.body.toString()).errors[0].message).toMatch(/more than 4194304 bytes/);
    const tags = await raw(url, 'GET', '/v2/docker.io/library/f5/manifests/huge', { headers: { Accept: ACCEPT_ALL } });
    expect(tags.status).toBe(404); // the upstream has no such tag; nothing was cached under it
  });

  it('does not follow a token realm that is not http(s)', async () => {
    proxy.fault('/library/f5/manifests/1', { kind: 'challenge', header: 'Bearer realm="file:///etc/passwd",service="x"' });
    const res = await raw(url, 'GET', '/v2/docker.io/library/f5/manifests/1', { headers: { Accept: ACCEPT_ALL } });
    proxy.fault('/library/f5/manifests/1', undefined);
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body.toString()).errors[0].message).toMatch(/not http\(s\); not followed/);
    const ok = await raw(url, 'GET', '/v2/docker.io/library/f5/manifests/1', { headers: { Accept: ACCEPT_ALL } });
    expect(ok.status).toBe(200);
    expect(ok.header('Docker-Content-Digest')).toBe(images[5]!.manifest.digest);
  });
});
