/**
 * Chunked uploads on S3 as registry:2 does them (issue #18): the multipart upload stays open between
 * PATCHes, whichever Berth process takes each one. Two real `berth serve` processes on one bucket of
 * the run's Ceph RGW take PATCHes of odd sizes, under and over the 5 MiB part size, in turn; one is
 * killed with SIGKILL right after answering 202, and the other carries on from the acknowledged offset.
 * From the first part on, the session's data stays one multipart upload (the same upload id every
 * time: nothing is completed and copied again). The blob then reads back whole, and no multipart
 * upload, pending part or session file is left, after commit as after a DELETE on the other process,
 * or after the collector's upload purging removed a stale session.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createS3Driver } from '../src/storage/driver/s3.js';
import { s3DriverOptions } from '../src/storage/driver/suite/s3-settings.js';
import { paths } from '../src/storage/paths.js';
import { parseRepoName } from '../src/storage/reference.js';
import { createRegistry } from '../src/storage/registry.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { type S3TestSettings, createBucket, deleteBucket, describeWithS3, listKeys, s3StorageYaml, testS3Client } from './helpers/ceph.js';
import { locationPath, randomBytesSeeded, raw, sha256 } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const MiB = 1024 * 1024;
const ROOT = 'registry';

/** The keys of the multipart uploads open in `bucket`, with their ids. */
async function openUploads(s3: S3TestSettings, bucket: string): Promise<{ key: string; id: string }[]> {
  const out = await testS3Client(s3).send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => ({ key: u.Key ?? '', id: u.UploadId ?? '' }));
}

describeWithS3('chunked uploads on S3 across Berth processes', (s3) => {
  const bucket = `berth-chunked-${randomBytes(4).toString('hex')}`;
  let work = '';
  const ports: number[] = [];
  const servers: (BerthProcess | undefined)[] = [undefined, undefined];
  const url = (i: number): string => `http://127.0.0.1:${ports[i] ?? 0}`;

  const start = async (i: number): Promise<void> => {
    servers[i] = await startBerthProcess({
      configPath: join(work, `config-${i}.yml`),
      config: [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: true',
        'http:',
        `  addr: 127.0.0.1:${ports[i] ?? 0}`,
        '  secret: one-secret-for-both',
        'storage:',
        ...s3StorageYaml(s3, bucket, { rootdirectory: `/${ROOT}`, options: ['chunksize: 5242880'] }),
        '  redirect:',
        '    disable: true',
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        '',
      ].join('\n'),
    });
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-s3-chunked-'));
    await createBucket(s3, bucket);
    ports.push(await freePort(), await freePort());
    await Promise.all([start(0), start(1)]);
  }, 90_000);

  afterAll(async () => {
    for (const s of servers) await s?.stop();
    await deleteBucket(s3, bucket).catch(() => undefined);
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('PATCHes of odd sizes on two processes, one killed right after its 202, make one multipart upload; the blob is whole', async () => {
    const data = randomBytesSeeded(31 * MiB + 4321, 18);
    const digest = sha256(data);
    const sizes = [MiB + 3, 7 * MiB + 11, 333, 12 * MiB + 5, 2 * MiB + 1, 77];
    const post = await raw(url(0), 'POST', '/v2/chunked/odd/blobs/uploads/');
    expect(post.status).toBe(202);
    let location = locationPath(post);
    let takes = 1;
    let upload: { key: string; id: string } | undefined;
    let killed = false;
    for (let i = 0, offset = 0; offset < data.length; i += 1) {
      const size = sizes[i] ?? data.length - offset;
      const chunk = data.subarray(offset, offset + size);
      const res = await raw(url(takes), 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      expect(res.status, res.body.toString()).toBe(202);
      offset += chunk.length;
      expect(res.header('Range')).toBe(`0-${offset - 1}`);
      location = locationPath(res);
      if (i === 3) {
        // Acknowledged, then gone: the other process must carry on from here, with nothing lost.
        const victim = servers[takes];
        victim?.child.kill('SIGKILL');
        await victim?.exited;
        servers[takes] = undefined;
        killed = true;
        takes = 1 - takes;
      } else if (!killed) {
        takes = 1 - takes;
      }
      const status = await raw(url(takes), 'GET', location);
      expect(status.status).toBe(204);
      expect(status.header('Range')).toBe(`0-${offset - 1}`);
      const open = await openUploads(s3, bucket);
      expect(open.length).toBeLessThanOrEqual(1);
      // Once the session's data is a multipart upload, it stays the same one.
      if (upload !== undefined) expect(open).toEqual([upload]);
      upload ??= open[0];
    }
    expect(upload?.key).toMatch(/\/_uploads\/[0-9a-f-]+\/data$/);
    const put = await raw(url(takes), 'PUT', `${location}&digest=${encodeURIComponent(digest)}`);
    expect(put.status, put.body.toString()).toBe(201);
    const got = await raw(url(takes), 'GET', `/v2/chunked/odd/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(sha256(got.body)).toBe(digest);
    expect(await openUploads(s3, bucket)).toEqual([]);
    const keys = await listKeys(s3, bucket);
    expect(keys.filter((k) => k.includes('/_uploads/') || k.includes('~pending'))).toEqual([]);
    await start(1 - takes);
  }, 240_000);

  it('a DELETE on the other process cancels: the multipart upload is aborted, the session gone', async () => {
    const post = await raw(url(0), 'POST', '/v2/chunked/cancel/blobs/uploads/');
    let location = locationPath(post);
    for (const [i, size] of [12 * MiB + 1, MiB].entries()) {
      const offset = i === 0 ? 0 : 12 * MiB + 1;
      const res = await raw(url(0), 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + size - 1}` },
        body: randomBytes(size),
      });
      expect(res.status, res.body.toString()).toBe(202);
      location = locationPath(res);
    }
    expect((await openUploads(s3, bucket)).length).toBe(1);
    expect((await listKeys(s3, bucket)).filter((k) => k.endsWith('~pending')).length).toBe(1);
    const cancel = await raw(url(1), 'DELETE', location);
    expect(cancel.status).toBe(204);
    expect(await openUploads(s3, bucket)).toEqual([]);
    expect((await listKeys(s3, bucket)).filter((k) => k.includes('/chunked/cancel/_uploads/'))).toEqual([]);
    expect((await raw(url(0), 'GET', location)).status).toBe(404);
  }, 120_000);

  it("the collector's upload purging aborts a stale session's multipart upload and removes its pending part", async () => {
    const root = `purge-${randomBytes(4).toString('hex')}`;
    const driver = createS3Driver(s3DriverOptions(s3, root, { bucket, chunkSize: 5 * MiB }));
    const registry = createRegistry({ driver, deleteEnabled: true });
    const repo = parseRepoName('chunked/purged');
    const uploads = registry.repository(repo).uploads;
    const session = await uploads.start();
    await uploads.append(session.id, Readable.from([randomBytes(12 * MiB + 1)]));
    await uploads.append(session.id, Readable.from([randomBytes(MiB)]), { expectedOffset: 12 * MiB + 1 });
    expect((await uploads.status(session.id)).size).toBe(13 * MiB + 1);
    const under = async (): Promise<string[]> => (await listKeys(s3, bucket)).filter((k) => k.startsWith(`${root}/`));
    expect((await under()).filter((k) => k.endsWith('~pending')).length).toBe(1);
    expect((await openUploads(s3, bucket)).filter((u) => u.key.startsWith(`${root}/`)).length).toBe(1);
    await driver.putContent(paths.uploadStartedAt(repo, session.id), Buffer.from('2020-01-01T00:00:00Z'));
    const report = await registry.purgeUploads({ olderThan: new Date('2025-01-01T00:00:00Z'), dryRun: false });
    expect(report.purged).toEqual([paths.upload(repo, session.id)]);
    expect((await openUploads(s3, bucket)).filter((u) => u.key.startsWith(`${root}/`))).toEqual([]);
    expect(await under()).toEqual([]);
  }, 120_000);
});
