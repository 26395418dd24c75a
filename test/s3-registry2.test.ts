/**
 * Berth and registry:2 (Debian's docker-registry 2.8.2) on the same S3 bucket and rootdirectory, both
 * running at once: each serves what the other pushed (manifests byte for byte, blobs through each
 * one's 307 to a presigned URL, tags and the catalog), and both leave the same registry:2 layout.
 * In-progress uploads do not carry over between them on S3 (registry:2 keeps an upload's data in an
 * unfinished multipart upload, Berth in an object), so only finished content is compared.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { createBucket, deleteBucket, describeWithS3, listKeys, s3StorageYaml } from './helpers/ceph.js';
import type { S3TestSettings } from './helpers/ceph.js';
import { blobData, layerLink, revisionLink, tagLinks } from './helpers/layout.js';
import { type Image, answersV2, blob, locationPath, makeImage, pushBlobPostPut, putManifest, raw, randomBytesSeeded, sha256 } from './helpers/oci.js';
import { registry2Available } from './helpers/registry2.js';
import { describeWithTool, freePort, killAtExit, sleep, stopChild, which } from './helpers/tools.js';

const MiB = 1024 * 1024;
const ROOT = 'shared';
const SECRET = 's3-registry2-secret';

function s3Yaml(s3: S3TestSettings, bucket: string): string {
  return `${s3StorageYaml(s3, bucket, { rootdirectory: `/${ROOT}`, options: ['secure: false', 'v4auth: true', 'chunksize: 5242880'] }).join('\n')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
`;
}

/** docker-registry serving `bucket`; stopped by the returned function. */
async function startRegistry2OnS3(dir: string, s3: S3TestSettings, bucket: string): Promise<{ url: string; output: () => string; stop: () => Promise<void> }> {
  const port = await freePort();
  const config = join(dir, 'registry2.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: ${SECRET}\nstorage:\n${s3Yaml(s3, bucket)}`);
  // aws-sdk-go (in docker-registry) refuses to start when AWS_CA_BUNDLE is set (it cannot apply it to the
  // registry's HTTP transport); the tests speak plain HTTP to 127.0.0.1, so the bundle is not needed.
  const env = { ...process.env };
  delete env['AWS_CA_BUNDLE'];
  const child = spawn(which('docker-registry') ?? 'docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], env });
  killAtExit(child);
  let output = '';
  child.stdout.on('data', (c: Buffer) => void (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => void (output += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && !(await answersV2(url)); i += 1) await sleep(50);
  if (!(await answersV2(url))) {
    await stopChild(child);
    throw new Error(`docker-registry on S3 did not start:\n${output}`);
  }
  return { url, output: () => output, stop: () => stopChild(child) };
}

/** Pushes the way registry:2 2.8 accepts (POST then PUT per blob, then the manifest). */
async function pushVia(base: string, repo: string, tag: string, img: Image): Promise<void> {
  for (const b of [img.config, ...img.layers]) await pushBlobPostPut(base, repo, b);
  const res = await putManifest(base, repo, tag, img.manifest, img.mediaType);
  if (res.status !== 201) throw new Error(`manifest PUT to ${base}: ${res.status} ${res.body.toString()}`);
}

/** Pulls `img` from `base`: the manifest by tag byte for byte, and every blob through the 307. */
async function expectServes(base: string, repo: string, tag: string, img: Image): Promise<void> {
  const m = await raw(base, 'GET', `/v2/${repo}/manifests/${tag}`, { headers: { Accept: img.mediaType } });
  expect(m.status, `${base} manifest ${repo}:${tag}`).toBe(200);
  expect(m.body.equals(img.manifest.bytes)).toBe(true);
  expect(m.header('Docker-Content-Digest')).toBe(img.manifest.digest);
  for (const b of [img.config, ...img.layers]) {
    const res = await raw(base, 'GET', `/v2/${repo}/blobs/${b.digest}`);
    expect(res.status, `${base} blob ${b.digest}`).toBe(307);
    const got = Buffer.from(await (await fetch(res.header('Location') ?? '')).arrayBuffer());
    expect(sha256(got)).toBe(b.digest);
  }
}

describeWithS3('Berth and registry:2 on one S3 bucket', (s3) => {
  describeWithTool('docker-registry', registry2Available(), 'each serves what the other wrote', () => {
    const bucket = `berth-reg2-${randomBytes(4).toString('hex')}`;
    let work = '';
    let berth: Serving;
    let reg2: Awaited<ReturnType<typeof startRegistry2OnS3>>;
    const fromBerth = makeImage(81, { layerCount: 3 });
    const bigLayer = blob(randomBytesSeeded(6 * MiB + 11, 82));
    const fromRegistry2: Image = { ...makeImage(83), layers: [bigLayer] };

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-s3-reg2-'));
      await createBucket(s3, bucket);
      const config = join(work, 'berth.yml');
      await writeFile(config, `version: 0.1\nlog:\n  level: warn\nhttp:\n  addr: 127.0.0.1:${await freePort()}\n  secret: ${SECRET}\nstorage:\n${s3Yaml(s3, bucket)}`);
      berth = await serve(config, {});
      reg2 = await startRegistry2OnS3(work, s3, bucket);
    }, 60_000);

    afterAll(async () => {
      await berth?.stop();
      await reg2?.stop();
      await deleteBucket(s3, bucket).catch(() => undefined);
      if (work !== '') await rm(work, { recursive: true, force: true });
    });

    it('registry:2 serves an image Berth pushed', async () => {
      await pushVia(berth.running.url, 'mig/from-berth', 'v1', rebuild(fromBerth));
      await expectServes(reg2.url, 'mig/from-berth', 'v1', rebuild(fromBerth));
    });

    it('Berth serves an image registry:2 pushed (its 6 MiB layer in chunks, through its multipart writer)', async () => {
      const img = rebuild(fromRegistry2);
      await pushBlobPostPut(reg2.url, 'mig/from-registry2', img.config);
      const post = await raw(reg2.url, 'POST', '/v2/mig/from-registry2/blobs/uploads/');
      let location = locationPath(post);
      for (let offset = 0; offset < bigLayer.size; offset += 4 * MiB) {
        const chunk = bigLayer.bytes.subarray(offset, Math.min(bigLayer.size, offset + 4 * MiB));
        const res = await raw(reg2.url, 'PATCH', location, {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
          body: chunk,
        });
        expect(res.status, res.body.toString()).toBe(202);
        location = locationPath(res);
      }
      const put = await raw(reg2.url, 'PUT', `${location}&digest=${encodeURIComponent(bigLayer.digest)}`);
      expect(put.status, put.body.toString()).toBe(201);
      expect((await putManifest(reg2.url, 'mig/from-registry2', 'v1', img.manifest, img.mediaType)).status).toBe(201);
      await expectServes(berth.running.url, 'mig/from-registry2', 'v1', img);
    });

    it('both list the same tags and catalog, and the bucket holds one registry:2 layout', async () => {
      for (const base of [berth.running.url, reg2.url]) {
        expect((await raw(base, 'GET', '/v2/_catalog')).json()).toEqual({ repositories: ['mig/from-berth', 'mig/from-registry2'] });
        expect((await raw(base, 'GET', '/v2/mig/from-registry2/tags/list')).json()).toEqual({ name: 'mig/from-registry2', tags: ['v1'] });
      }
      const at = (path: string): string => `${ROOT}/docker/registry/v2/${path}`;
      const expected = new Set<string>();
      for (const [repo, img] of [['mig/from-berth', rebuild(fromBerth)], ['mig/from-registry2', rebuild(fromRegistry2)]] as const) {
        for (const b of [img.config, ...img.layers, img.manifest]) expected.add(at(blobData(b.digest)));
        for (const b of [img.config, ...img.layers]) expected.add(at(layerLink(repo, b.digest)));
        expected.add(at(revisionLink(repo, img.manifest.digest)));
        for (const t of tagLinks(repo, 'v1', img.manifest.digest)) expected.add(at(t));
      }
      expect(await listKeys(s3, bucket)).toEqual([...expected].sort());
      expect(reg2.output()).not.toMatch(/level=(error|fatal|panic)/);
    });
  });
});

/** The image with its manifest rebuilt over its (possibly replaced) layers. */
function rebuild(img: Image): Image {
  const doc = JSON.parse(img.manifest.bytes.toString('utf8')) as { layers: { mediaType: string }[] } & Record<string, unknown>;
  const mediaType = doc.layers[0]?.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip';
  const manifest = blob(JSON.stringify({ ...doc, layers: img.layers.map((l) => ({ mediaType, digest: l.digest, size: l.size })) }));
  return { ...img, manifest };
}
