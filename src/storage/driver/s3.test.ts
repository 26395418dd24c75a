import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import type { StorageDriver } from './driver.js';
import { instrument } from './instrument.js';
import { createS3Driver } from './s3.js';
import type { S3DriverOptions } from './s3.js';
import { runDriverSuite } from './suite/suite.js';
import { drain, readAll, sha256, writeAndEnd, writeOne } from './suite/helpers.js';
import { describeWithS3 } from './suite/s3-describe.js';
import { createBucket, deleteBucket, listKeys, s3DriverOptions, testS3Client } from './suite/s3-settings.js';
import type { S3TestSettings } from './suite/s3-settings.js';

const MiB = 1024 * 1024;

describeWithS3('s3 driver on Ceph RGW', (s3) => {
  runDriverSuite('s3', async () => {
    const root = `suite-${randomBytes(6).toString('hex')}`;
    return { driver: createS3Driver(s3DriverOptions(s3, root)), cleanup: () => deleteBucket(s3, s3.bucket, `${root}/`) };
  });

  describe('s3 driver specifics', () => {
    const roots: string[] = [];
    /** A driver under a fresh rootdirectory of the test bucket (removed after the file). */
    const driverAt = (overrides: Partial<S3DriverOptions> = {}): { d: StorageDriver; root: string } => {
      const root = `specific-${randomBytes(6).toString('hex')}`;
      roots.push(root);
      return { d: instrument(createS3Driver(s3DriverOptions(s3, root, overrides))), root };
    };
    afterAll(async () => {
      for (const root of roots) await deleteBucket(s3, s3.bucket, `${root}/`);
    });

    it("stores registry:2's keys: rootdirectory without its slashes, then the path", async () => {
      const bucket = `berth-layout-${randomBytes(4).toString('hex')}`;
      await createBucket(s3, bucket);
      try {
        const atTop = createS3Driver(s3DriverOptions(s3, '', { bucket }));
        const below = createS3Driver(s3DriverOptions(s3, '/reg/', { bucket }));
        await atTop.putContent('/docker/registry/v2/blobs/sha256/ab/abcd/data', Buffer.from('x'));
        await below.putContent('/docker/registry/v2/repositories/a/b/_layers/sha256/abcd/link', Buffer.from('sha256:abcd'));
        expect(await listKeys(s3, bucket)).toEqual([
          'docker/registry/v2/blobs/sha256/ab/abcd/data',
          'reg/docker/registry/v2/repositories/a/b/_layers/sha256/abcd/link',
        ]);
        expect(await atTop.list('/')).toEqual(['/docker', '/reg']);
        expect(await below.list('/')).toEqual(['/docker']);
        expect(await below.list('/docker/registry/v2/repositories/a')).toEqual(['/docker/registry/v2/repositories/a/b']);
      } finally {
        await deleteBucket(s3, bucket);
      }
    });

    it('a writer that filled parts shows nothing new at its path until end(); then all of it, as one object', async () => {
      const { d, root } = driverAt({ chunkSize: 5 * MiB });
      await d.putContent('/up/data', Buffer.from('before'));
      const w = await d.writer('/up/data', { append: true });
      const added = randomBytes(11 * MiB);
      await writeOne(w, added); // two parts uploaded, 1 MiB buffered
      expect((await d.getContent('/up/data')).toString()).toBe('before');
      expect(w.size).toBe(6 + added.length);
      await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
      expect(sha256(await d.getContent('/up/data'))).toBe(sha256(Buffer.concat([Buffer.from('before'), added])));
      const head = await testS3Client(s3).send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${root}/up/data` }));
      expect(head.ContentLength).toBe(6 + added.length);
      expect(await openUploads(s3, `${root}/`)).toEqual([]);
    });

    it('end() leaves the upload open (the object empty, stat counting its parts); the next writer adds parts to it', async () => {
      const { d, root } = driverAt({ chunkSize: 5 * MiB });
      const key = `${root}/data`;
      const first = randomBytes(11 * MiB);
      const second = randomBytes(3 * MiB + 5);
      const w1 = await d.writer('/data', { append: false });
      await writeAndEnd(w1, first);
      const [upload] = await openUploadIds(s3, key);
      expect(upload).toBeDefined();
      const head = await testS3Client(s3).send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(head.ContentLength).toBe(0);
      expect((await d.stat('/data')).size).toBe(first.length);
      const w2 = await d.writer('/data', { append: true });
      expect(w2.size).toBe(first.length);
      await writeAndEnd(w2, second);
      // The same upload: nothing was completed and copied into a new one.
      expect(await openUploadIds(s3, key)).toEqual([upload]);
      await w2.commit();
      expect(w2.size).toBe(first.length + second.length);
      expect(sha256(await readAll(await d.reader('/data', 0)))).toBe(sha256(Buffer.concat([first, second])));
      // A multipart object's ETag ends in -<parts>: 5 MiB, then the 6 MiB left at end(), then the second writer's.
      const after = await testS3Client(s3).send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(after.ETag).toMatch(/-3"$/);
      expect(await openUploads(s3, `${root}/`)).toEqual([]);
      expect(await listKeys(s3, s3.bucket, `${root}/`)).toEqual([key]);
    });

    it('a writer told its length sends a part once chunksize bytes are buffered (never buffering the extra 5 MiB), cutting the one before the last so that the last is 5 MiB; a wrong length still stores every byte', async () => {
      const { d, root } = driverAt({ chunkSize: 10 * MiB });
      const content = randomBytes(23 * MiB);
      const pieces = Array.from({ length: content.length / (64 * 1024) }, (_, i) => content.subarray(i * 64 * 1024, (i + 1) * 64 * 1024));
      const partSizes = async (path: string): Promise<number[]> => {
        const [upload] = await openUploadIds(s3, `${root}${path}`);
        const out = await testS3Client(s3).send(new ListPartsCommand({ Bucket: s3.bucket, Key: `${root}${path}`, UploadId: upload }));
        return (out.Parts ?? []).map((p) => (p.Size ?? 0) / MiB);
      };
      const cases: { path: string; expectedBytes?: number; parts: number[] }[] = [
        // Without a length: a part goes once 15 MiB are buffered (10 + 5 for the last), 13 MiB are left at end().
        { path: '/unknown', parts: [10, 13] },
        // 10 MiB, then 13 MiB left in all: 8 now, so that the last is 5.
        { path: '/told', expectedBytes: content.length, parts: [10, 8, 5] },
        // Told less than it got: 7 (so that 5 of the 12 are left), then the rule without a length.
        { path: '/short', expectedBytes: 12 * MiB, parts: [7, 10, 6] },
        // Told more: parts by the length, and what end() finds is a short last part (with its pending copy).
        { path: '/long', expectedBytes: 30 * MiB, parts: [10, 10, 3] },
      ];
      for (const c of cases) {
        const w = await d.writer(c.path, { append: false, ...(c.expectedBytes !== undefined && { expectedBytes: c.expectedBytes }) });
        await writeAndEnd(w, ...pieces);
        expect({ path: c.path, parts: await partSizes(c.path) }).toEqual({ path: c.path, parts: c.parts });
        await w.commit();
        expect(sha256(await d.getContent(c.path))).toBe(sha256(content));
      }
    });

    it('a short tail is a part with a pending copy beside it, re-sent with the bytes that follow; list and walk never show the copy', async () => {
      const { d, root } = driverAt({ chunkSize: 5 * MiB });
      const key = `${root}/up/data`;
      const pieces = [randomBytes(11 * MiB), randomBytes(MiB + 1), randomBytes(2 * MiB), randomBytes(3 * MiB), randomBytes(77)];
      let written = 0;
      let upload: string | undefined;
      for (const piece of pieces) {
        const w = await d.writer('/up/data', { append: written > 0 });
        expect(w.size).toBe(written);
        await writeAndEnd(w, piece);
        written += piece.length;
        expect((await d.stat('/up/data')).size).toBe(written);
        const ids = await openUploadIds(s3, key);
        upload ??= ids[0];
        expect(ids).toEqual([upload]);
      }
      // 11 MiB: parts of 5 and 6 MiB. Then 1 MiB + 1 and 2 MiB: a short part 3 and its copy, re-sent
      // with the next bytes; 3 MiB more make part 3 6 MiB + 1; the last 77 bytes are a short part 4.
      expect((await listKeys(s3, s3.bucket, `${root}/`)).sort()).toEqual([key, `${key}~pending`]);
      expect(await d.list('/up')).toEqual(['/up/data']);
      expect((await drain(d.walk('/'))).map((i) => i.path)).toEqual(['/up', '/up/data']);
      const w = await d.writer('/up/data', { append: true });
      await w.commit();
      expect(sha256(await d.getContent('/up/data'))).toBe(sha256(Buffer.concat(pieces)));
      const after = await testS3Client(s3).send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(after.ETag).toMatch(/-4"$/);
      expect(await openUploads(s3, `${root}/`)).toEqual([]);
      expect(await listKeys(s3, s3.bucket, `${root}/`)).toEqual([key]);
    });

    it('cancel and delete abort the open upload and remove its pending copy', async () => {
      const { d, root } = driverAt({ chunkSize: 5 * MiB });
      for (const name of ['a', 'b']) {
        const w = await d.writer(`/${name}/data`, { append: false });
        await writeAndEnd(w, randomBytes(12 * MiB + 7));
        if (name === 'a') await w.cancel();
      }
      await d.delete('/b');
      expect(await openUploads(s3, `${root}/`)).toEqual([]);
      expect(await listKeys(s3, s3.bucket, `${root}/`)).toEqual([]);
    });

    it("continues an upload left in progress (registry:2's writer, or a process that died), its parts included", async () => {
      const { d, root } = driverAt();
      const client = testS3Client(s3);
      const key = `${root}/_uploads/u/data`;
      const created = await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
      const parts = [randomBytes(6 * MiB), randomBytes(MiB + 3)];
      for (const [i, body] of parts.entries()) {
        await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId: created.UploadId, PartNumber: i + 1, Body: body }));
      }
      const w = await d.writer('/_uploads/u/data', { append: true });
      expect(w.size).toBe(7 * MiB + 3);
      const tail = randomBytes(100);
      await writeAndEnd(w, tail);
      expect(sha256(await d.getContent('/_uploads/u/data'))).toBe(sha256(Buffer.concat([...parts, tail])));
      expect(await openUploads(s3, `${root}/`)).toEqual([]);
    });

    it('a writer killed mid-upload (SIGKILL) leaves its uploaded parts resumable by another process', async () => {
      const { d, root } = driverAt({ chunkSize: 5 * MiB });
      const dir = await mkdtemp(join(tmpdir(), 'berth-s3-crash-'));
      try {
        const script = join(dir, 'writer.mts');
        const driverModule = fileURLToPath(new URL('./s3.js', import.meta.url)).replace(/\.js$/, '.ts');
        await writeFile(script, crashingWriter(driverModule, s3DriverOptions(s3, root, { chunkSize: 5 * MiB })));
        const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        const written = await new Promise<string>((resolve, reject) => {
          child.stdout.on('data', (c: Buffer) => (c.toString().includes('parts-uploaded') ? resolve(c.toString()) : undefined));
          child.on('exit', (code) => reject(new Error(`writer exited early with ${String(code)}`)));
        });
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('close', resolve));
        const prefixes = JSON.parse(written.slice(written.indexOf('{'))) as Record<string, string>;
        const w = await d.writer('/_uploads/u/data', { append: true });
        // The parts it had stored are kept (two, or three if the one in flight landed); the 6 MiB it
        // still buffered are not.
        expect([10 * MiB, 15 * MiB]).toContain(w.size);
        await writeAndEnd(w);
        // The part in flight at the kill may still land after the writer above listed the parts (RGW
        // finishes a part whose body it had whole), so the content read now is either prefix.
        const content = await d.getContent('/_uploads/u/data');
        expect([10 * MiB, 15 * MiB]).toContain(content.length);
        expect(sha256(content)).toBe(prefixes[String(content.length)]);
        expect(await openUploads(s3, `${root}/`)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it('moves objects above the copy threshold with UploadPartCopy in parts', async () => {
      const { d, root } = driverAt({ multipartCopyThresholdSize: 6 * MiB, multipartCopyChunkSize: 5 * MiB });
      const big = randomBytes(13 * MiB);
      await d.putContent('/_uploads/u/data', big);
      await d.move('/_uploads/u/data', '/blobs/sha256/ab/abcd/data');
      expect(sha256(await d.getContent('/blobs/sha256/ab/abcd/data'))).toBe(sha256(big));
      const head = await testS3Client(s3).send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${root}/blobs/sha256/ab/abcd/data` }));
      expect(head.ETag).toMatch(/-3"$/);
      expect(await listKeys(s3, s3.bucket, `${root}/`)).toEqual([`${root}/blobs/sha256/ab/abcd/data`]);
    });

    it('delete of a directory also aborts the uploads in progress below it', async () => {
      const { d, root } = driverAt();
      const client = testS3Client(s3);
      await d.putContent('/repo/_uploads/u/startedat', Buffer.from('2026-01-01T00:00:00Z'));
      await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `${root}/repo/_uploads/u/data` }));
      await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `${root}/repo/_uploadsX/data` }));
      await d.delete('/repo/_uploads');
      expect(await openUploads(s3, `${root}/`)).toEqual([`${root}/repo/_uploadsX/data`]);
    });

    it('lists, walks and deletes across pages of 1000 keys', async () => {
      const { d } = driverAt();
      const names = Array.from({ length: 1003 }, (_, i) => `f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 100) {
        await Promise.all(names.slice(i, i + 100).map((n) => d.putContent(`/many/${n}`, Buffer.from(n))));
      }
      await d.putContent('/many/sub/x', Buffer.from('x'));
      expect((await d.list('/many')).length).toBe(1004);
      const walked = await drain(d.walk('/many'));
      expect(walked.filter((i) => !i.isDir).length).toBe(1004);
      expect(walked.filter((i) => i.isDir).map((i) => i.path)).toEqual(['/many/sub']);
      await d.delete('/many');
      await expect(d.list('/many')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    }, 120_000);

    it('redirectUrl presigns a GET and a HEAD valid for 20 minutes; none when redirects are off', async () => {
      const { d } = driverAt();
      const data = randomBytes(1000);
      await d.putContent('/blob/data', data);
      const get = await d.redirectUrl?.('/blob/data', 'GET');
      expect(get).toMatch(/X-Amz-Expires=1200/);
      const got = await fetch(get ?? '');
      expect(got.status).toBe(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
      const head = await fetch((await d.redirectUrl?.('/blob/data', 'HEAD')) ?? '', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe('1000');
      expect(await driverAt({ redirect: false }).d.redirectUrl?.('/blob/data', 'GET')).toBeUndefined();
    });
  });
});

/** Ids of the uploads in progress at exactly `key`. */
async function openUploadIds(s3: S3TestSettings, key: string): Promise<string[]> {
  const out = await testS3Client(s3).send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: key }));
  return (out.Uploads ?? []).filter((u) => u.Key === key).map((u) => u.UploadId ?? '');
}

/** Keys of the uploads in progress under `prefix`. */
async function openUploads(s3: S3TestSettings, prefix: string): Promise<string[]> {
  const out = await testS3Client(s3).send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key ?? '').sort();
}

/**
 * A script that writes 21 MiB through a writer with 5 MiB parts (once called back: two parts stored, a
 * third in flight, 6 MiB buffered for a last part of at least 5 MiB), prints the sha256 of the
 * prefixes that may have been kept, and waits to be killed.
 */
function crashingWriter(driverModule: string, options: S3DriverOptions): string {
  return `
import { createHash, randomBytes } from 'node:crypto';
import { createS3Driver } from ${JSON.stringify(driverModule)};
const d = createS3Driver(${JSON.stringify(options)});
const w = await d.writer('/_uploads/u/data', { append: false });
const data = randomBytes(21 * 1024 * 1024);
await new Promise((resolve, reject) => w.write(data, (err) => (err ? reject(err) : resolve(undefined))));
const sha = (n) => createHash('sha256').update(data.subarray(0, n)).digest('hex');
const MiB = 1024 * 1024;
process.stdout.write('parts-uploaded ' + JSON.stringify({ [10 * MiB]: sha(10 * MiB), [15 * MiB]: sha(15 * MiB) }) + '\\n');
setInterval(() => undefined, 1000);
`;
}
