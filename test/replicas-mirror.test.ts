/**
 * The mirror with replicas (issues #13 and #18): three `berth serve` processes over one S3 bucket
 * (Ceph RGW) and one Redis mirror a registry:2 upstream behind a counting proxy.
 *
 * - Concurrent cold pulls through every replica fetch the manifest and each blob from the upstream
 *   once: the replica that takes an upstream fetch's lease in Redis fetches, the others wait for what
 *   it stores and serve that.
 * - A tag revalidated by one replica is fresh on the others for `revalidate`: pulls by tag through the
 *   other replicas send no HEAD upstream.
 * - The size of a blob not cached that one replica's HEAD upstream told is known to the others for
 *   `revalidate`: HEADs of it through the other replicas send no HEAD upstream.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deleteBucket, describeWithS3 } from './helpers/ceph.js';
import { pushImageToRegistry2 } from './helpers/mirror.js';
import { ACCEPT_ALL, makeImage, raw } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { type Registry2, startRegistry2 } from './helpers/registry2.js';
import { type Cluster, bucketStorage, startCluster } from './helpers/replicas.js';
import { describeWithTools } from './helpers/tools.js';
import { type UpstreamProxy, startUpstreamProxy } from './helpers/upstream-proxy.js';

const TOOLS = { 'redis-server': 'redis-server', 'docker-registry': 'docker-registry' };

describeWithS3('the mirror with replicas', (s3) => {
  describeWithTools(TOOLS, 'three replicas over one bucket and one Redis mirror one upstream', () => {
    let work = '';
    let redis: TestRedis;
    let upstream: Registry2;
    let proxy: UpstreamProxy;
    let cluster: Cluster;
    const bucket = `berth-mirror-${randomBytes(4).toString('hex')}`;
    const image = makeImage(1_813, { layerCount: 3 });
    const other = makeImage(1_814, { layerCount: 1 });

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-replicas-mirror-'));
      upstream = await startRegistry2({ root: join(work, 'upstream') });
      proxy = await startUpstreamProxy(upstream.url);
      await pushImageToRegistry2(upstream.url, 'library/app', '1', image);
      await pushImageToRegistry2(upstream.url, 'library/other', '1', other);
      redis = await startRedis();
      // Blobs through the replicas, not redirects to the bucket: the test reads them as a client would.
      const storage = await bucketStorage(s3, bucket, ['  redirect:', '    disable: true']);
      const mirror = ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${proxy.url}`, '      revalidate: 1h'];
      cluster = await startCluster({ n: 3, dir: work, storage, redisAddr: redis.addr, graceperiod: '1h', extraYaml: mirror, together: true });
    }, 180_000);

    afterAll(async () => {
      await cluster?.close();
      await redis?.stop();
      await proxy?.close();
      await upstream?.close();
      await deleteBucket(s3, bucket).catch(() => undefined);
      if (work !== '') await rm(work, { recursive: true, force: true });
    }, 60_000);

    /** A pull through replica `i`: the manifest by tag, then every blob, each checked. */
    const pull = async (i: number): Promise<void> => {
      const m = await raw(cluster.url(i), 'GET', '/v2/docker.io/library/app/manifests/1', { headers: { Accept: ACCEPT_ALL } });
      expect(m.status).toBe(200);
      expect(m.header('Docker-Content-Digest')).toBe(image.manifest.digest);
      await Promise.all([image.config, ...image.layers].map(async (b) => {
        const res = await raw(cluster.url(i), 'GET', `/v2/docker.io/library/app/blobs/${b.digest}`);
        expect(res.status).toBe(200);
        expect(res.body.equals(b.bytes)).toBe(true);
      }));
    };

    it('concurrent cold pulls through every replica fetch the manifest and each blob from the upstream once', async () => {
      // Every replica's first request waits upstream until all three pulls have started.
      let release = (): void => undefined;
      proxy.hold = new Promise<void>((resolve) => (release = resolve));
      const pulls = [0, 1, 2, 0, 1, 2].map((i) => pull(i));
      await proxy.arrived('GET', '/manifests/1');
      proxy.hold = undefined;
      release();
      await Promise.all(pulls);
      expect(proxy.count('GET', '/manifests/')).toBe(1);
      for (const b of [image.config, ...image.layers]) expect(proxy.count('GET', `/blobs/${b.digest}`)).toBe(1);
    }, 120_000);

    it('a tag revalidated by one replica is fresh on the others: no HEAD upstream within revalidate', async () => {
      const heads = proxy.count('HEAD', '/manifests/');
      const gets = proxy.count('GET', '/manifests/');
      for (const i of [0, 1, 2]) await pull(i);
      expect(proxy.count('HEAD', '/manifests/')).toBe(heads);
      expect(proxy.count('GET', '/manifests/')).toBe(gets);
    }, 60_000);

    it('a blob size one replica\'s HEAD upstream told is known to the others: one HEAD upstream for HEADs through all three', async () => {
      const layer = other.layers[0];
      if (layer === undefined) throw new Error('the image has no layer');
      for (const i of [0, 1, 2]) {
        const res = await raw(cluster.url(i), 'HEAD', `/v2/docker.io/library/other/blobs/${layer.digest}`);
        expect(res.status).toBe(200);
        expect(res.header('Content-Length')).toBe(String(layer.bytes.length));
      }
      expect(proxy.count('HEAD', `/blobs/${layer.digest}`)).toBe(1);
      expect(proxy.count('GET', `/blobs/${layer.digest}`)).toBe(0);
    }, 60_000);
  });
});
