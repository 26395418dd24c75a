/**
 * Berth on S3 end to end: the real `serve()` (src/cli/serve.ts) from a config file naming
 * `storage.s3`, on the run's Ceph RGW (test/helpers/ceph.ts). Pushes over HTTP (monolithic, and
 * chunked with its PATCHes alternating between two Berths on the same bucket, as between replicas)
 * and with skopeo; pulls through the 307 redirect to a presigned URL, and through Berth itself with
 * `storage.redirect.disable`; and the bucket then holds exactly registry:2's layout under
 * `rootdirectory`, with no upload left behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { createBucket, deleteBucket, describeWithS3, listKeys, s3StorageYaml, testS3Client } from './helpers/ceph.js';
import type { S3TestSettings } from './helpers/ceph.js';
import { readOciLayout, singlePlatformImage, writeImageLayout } from './helpers/images.js';
import { blobData, layerLink, revisionLink, tagLinks } from './helpers/layout.js';
import { type Blob, MT, blob, locationPath, makeImage, pushImage, putManifest, raw, randomBytesSeeded, sha256 } from './helpers/oci.js';
import { containersStore, describeWithTool, freePort, run, toolAvailable } from './helpers/tools.js';

const MiB = 1024 * 1024;
const ROOT = 'registry';

/** A config file for Berth on `bucket` under rootdirectory /registry. */
async function berthConfig(dir: string, s3: S3TestSettings, bucket: string, extra = ''): Promise<string> {
  const file = join(dir, `config-${randomBytes(4).toString('hex')}.yml`);
  await writeFile(file, `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
http:
  addr: 127.0.0.1:${await freePort()}
  secret: s3-end-to-end
storage:
${s3StorageYaml(s3, bucket, { rootdirectory: `/${ROOT}`, options: ['chunksize: 5242880'] }).join('\n')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
${extra}`);
  return file;
}

describeWithS3('Berth on S3 (Ceph RGW), end to end', (s3) => {
  const bucket = `berth-e2e-${randomBytes(4).toString('hex')}`;
  let work = '';
  let a: Serving;
  let b: Serving;
  let direct: Serving;
  const image = makeImage(71);
  const big = blob(randomBytesSeeded(13 * MiB + 123, 7));
  let chunked: { manifest: Blob; mediaType: string };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-s3-e2e-'));
    await createBucket(s3, bucket);
    a = await serve(await berthConfig(work, s3, bucket), {});
    b = await serve(await berthConfig(work, s3, bucket), {});
    direct = await serve(await berthConfig(work, s3, bucket, 'redirect:\n  disable: true\n'.replace(/^/gm, '  ')), {});
  }, 60_000);

  afterAll(async () => {
    for (const s of [a, b, direct]) await s?.stop();
    await deleteBucket(s3, bucket).catch(() => undefined);
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('takes a monolithic push, and a chunked one whose PATCHes alternate between two Berths', async () => {
    await pushImage(a.running.url, 'e2e/app', 'v1', image);
    const post = await raw(a.running.url, 'POST', '/v2/e2e/big/blobs/uploads/');
    expect(post.status).toBe(202);
    let location = locationPath(post);
    const servers = [b, a, b];
    const step = 5 * MiB + 1;
    for (let i = 0, offset = 0; offset < big.size; i += 1, offset += step) {
      const chunk = big.bytes.subarray(offset, Math.min(big.size, offset + step));
      const res = await raw(servers[i % servers.length]?.running.url ?? '', 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      expect(res.status, res.body.toString()).toBe(202);
      expect(res.header('Range')).toBe(`0-${offset + chunk.length - 1}`);
      location = locationPath(res);
    }
    const put = await raw(a.running.url, 'PUT', `${location}&digest=${encodeURIComponent(big.digest)}`);
    expect(put.status, put.body.toString()).toBe(201);
    const config = blob('{"architecture":"amd64","os":"linux"}');
    await raw(b.running.url, 'POST', `/v2/e2e/big/blobs/uploads/?digest=${config.digest}`, { body: config.bytes });
    const manifest = blob(JSON.stringify({
      schemaVersion: 2, mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: MT.ociLayer, digest: big.digest, size: big.size }],
    }));
    chunked = { manifest, mediaType: MT.ociManifest };
    expect((await putManifest(b.running.url, 'e2e/big', 'v1', manifest, MT.ociManifest)).status).toBe(201);
  }, 120_000);

  it("leaves registry:2's layout in the bucket under rootdirectory, and no upload behind", async () => {
    const keys = await listKeys(s3, bucket);
    const at = (path: string): string => `${ROOT}/docker/registry/v2/${path}`;
    const expected = [
      ...[image.config, ...image.layers, image.manifest].map((x) => at(blobData(x.digest))),
      ...[image.config, ...image.layers].map((x) => at(layerLink('e2e/app', x.digest))),
      at(revisionLink('e2e/app', image.manifest.digest)),
      ...tagLinks('e2e/app', 'v1', image.manifest.digest).map(at),
      at(blobData(big.digest)),
      at(blobData(chunked.manifest.digest)),
      at(layerLink('e2e/big', big.digest)),
      at(revisionLink('e2e/big', chunked.manifest.digest)),
      ...tagLinks('e2e/big', 'v1', chunked.manifest.digest).map(at),
    ];
    // The config of e2e/big: its blob and link.
    const bigConfig = keys.filter((k) => k.includes('/e2e/big/_layers/') && !k.includes(big.digest.slice(7)));
    expect(bigConfig.length).toBe(1);
    const configHex = /_layers\/sha256\/([0-9a-f]{64})\/link$/.exec(bigConfig[0] ?? '')?.[1] ?? '';
    expected.push(bigConfig[0] ?? '', at(blobData(`sha256:${configHex}`)));
    expect(keys).toEqual([...new Set(expected)].sort());
    const client = testS3Client(s3);
    const link = await client.send(new GetObjectCommand({ Bucket: bucket, Key: at(tagLinks('e2e/app', 'v1', image.manifest.digest)[0] ?? '') }));
    expect(await link.Body?.transformToString()).toBe(image.manifest.digest);
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  it('answers blob GET and HEAD with 307 to a presigned URL that serves the bytes', async () => {
    for (const x of [big, ...image.layers]) {
      const res = await raw(b.running.url, 'GET', `/v2/${x === big ? 'e2e/big' : 'e2e/app'}/blobs/${x.digest}`);
      expect(res.status).toBe(307);
      expect(res.header('Docker-Content-Digest')).toBe(x.digest);
      const location = res.header('Location') ?? '';
      expect(location.startsWith(`${s3.endpoint}/${bucket}/${ROOT}/docker/registry/v2/blobs/sha256/`)).toBe(true);
      expect(location).toMatch(/X-Amz-Expires=1200/);
      const got = Buffer.from(await (await fetch(location)).arrayBuffer());
      expect(sha256(got)).toBe(x.digest);
    }
    const head = await raw(a.running.url, 'HEAD', `/v2/e2e/app/blobs/${image.config.digest}`);
    expect(head.status).toBe(307);
    const viaHead = await fetch(head.header('Location') ?? '', { method: 'HEAD' });
    expect(viaHead.headers.get('content-length')).toBe(String(image.config.size));
    // A repository that does not link the blob gets no redirect.
    expect((await raw(a.running.url, 'GET', `/v2/e2e/app/blobs/${big.digest}`)).status).toBe(404);
  });

  it('serves through Berth itself with storage.redirect.disable, ranges included; lists tags and the catalog', async () => {
    const res = await raw(direct.running.url, 'GET', `/v2/e2e/big/blobs/${big.digest}`);
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(big.digest);
    const range = await raw(direct.running.url, 'GET', `/v2/e2e/big/blobs/${big.digest}`, { headers: { Range: 'bytes=6291456-6291465' } });
    expect(range.status).toBe(206);
    expect(range.body.equals(big.bytes.subarray(6291456, 6291466))).toBe(true);
    const manifest = await raw(direct.running.url, 'GET', '/v2/e2e/app/manifests/v1', { headers: { Accept: image.mediaType } });
    expect(manifest.body.equals(image.manifest.bytes)).toBe(true);
    expect((await raw(direct.running.url, 'GET', '/v2/e2e/app/tags/list')).json()).toEqual({ name: 'e2e/app', tags: ['v1'] });
    expect((await raw(direct.running.url, 'GET', '/v2/_catalog')).json()).toEqual({ repositories: ['e2e/app', 'e2e/big'] });
  });

  it('streams a long range past the first 4 MiB exactly, and serves again after a client left mid-body', async () => {
    const path = `/v2/e2e/big/blobs/${big.digest}`;
    const [start, end] = [1000, 13 * MiB + 99]; // the raw GET of the rest carries most of it
    const range = await raw(direct.running.url, 'GET', path, { headers: { Range: `bytes=${start}-${end}` } });
    expect(range.status).toBe(206);
    expect(range.body.equals(big.bytes.subarray(start, end + 1))).toBe(true);
    // A client that reads 6 MiB (into the raw GET) and goes away.
    const gone = new AbortController();
    const res = await fetch(`${direct.running.url}${path}`, { signal: gone.signal });
    let read = 0;
    await expect(
      (async () => {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          read += chunk.length;
          if (read > 6 * MiB) gone.abort();
        }
      })(),
    ).rejects.toThrow();
    const again = await raw(direct.running.url, 'GET', path);
    expect(again.status).toBe(200);
    expect(sha256(again.body)).toBe(big.digest);
  });

  describeWithTool('skopeo', toolAvailable('skopeo'), 'skopeo through the redirect', () => {
    it('copies an image to Berth on S3 and back, every digest kept', async () => {
      const store = await containersStore(join(work, 'containers'));
      const img = singlePlatformImage('s3-skopeo');
      const src = join(work, 'src');
      const dst = join(work, 'dst');
      await writeImageLayout(src, 'v1', img);
      const host = new URL(a.running.url).host;
      const skopeo = (args: string[]): Promise<unknown> => run('skopeo', args, { env: store.env, timeoutMs: 120_000 });
      await skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${host}/e2e/skopeo:v1`]);
      await skopeo(['copy', '--src-tls-verify=false', `docker://${new URL(b.running.url).host}/e2e/skopeo:v1`, `oci:${dst}:v1`]);
      const copy = await readOciLayout(dst);
      expect(copy.resolve('v1').digest).toBe(img.manifest.digest);
      for (const x of [img.config, ...img.layers.map((l) => l.gzip)]) expect((await copy.blob(x.digest)).length).toBe(x.size);
    }, 180_000);
  });
});
