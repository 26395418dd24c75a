/**
 * A blob streamed from the mirror's fetch as it arrives, watched for process warnings: a followed
 * response must not pile listeners onto the response (Node's MaxListenersExceededWarning).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Serving } from '../src/cli/serve.js';
import { raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';
import { bigImage, pushImageToRegistry2, serveMirror } from './helpers/mirror.js';

describeWithTool('docker-registry', registry2Available(), 'streaming a cold blob', () => {
  let dir: string;
  let upstream: Registry2;
  let proxy: UpstreamProxy;
  let mirror: Serving;
  const big = bigImage(301, 24 * 1024 * 1024);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-streaming-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    proxy = await startUpstreamProxy(upstream.url);
    await pushImageToRegistry2(upstream.url, 'library/big', '1', big);
    mirror = await serveMirror(dir, ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(proxy.url)}}`], []);
  });
  afterAll(async () => {
    await mirror?.stop();
    await proxy?.close();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('serves a cold blob as it arrives, whole and without a process warning', async () => {
    const layer = big.layers[0]!;
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const res = await raw(mirror.running.url, 'GET', `/v2/docker.io/library/big/blobs/${layer.digest}`);
      expect(res.status).toBe(200);
      expect(res.body.equals(layer.bytes)).toBe(true);
      expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(1);
      // A warning is emitted on the next tick after the listener that triggers it.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
  }, 60_000);
});
