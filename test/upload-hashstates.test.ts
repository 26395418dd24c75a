/**
 * Chunked uploads resume without reading their data back (issue #18): where another process may take
 * the next request (replicas with `redis`, S3), each PATCH leaves the upload's SHA-256 state at
 * `_uploads/<uuid>/hashstates/sha256/<offset>` in Go's format, as registry:2 does, and the next PATCH
 * or the commit, on another process, takes it up. Proven by the driver's read count on `/metrics` (a
 * re-read is one `reader` call) on real servers:
 * - registry:2 and Berth over one filesystem root pass one upload back and forth (registry:2's state
 *   file is byte for byte the one Berth computes, and registry:2 takes up Berth's: a byte changed in
 *   the stored data behind its back goes unnoticed, which a re-read would have caught);
 * - a Berth replica (filesystem root, `redis`) restarted between PATCHes; a lone Berth (no `redis`)
 *   saves no state, hashes natively and re-reads after a restart, as before;
 * - two Berth processes over one Ceph bucket, PATCHes alternating, the commit on either.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { ResumableSha256 } from '../src/storage/uploads/resumable-sha256.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { deleteBucket, describeWithS3, listKeys } from './helpers/ceph.js';
import { uploadDir, v2 } from './helpers/layout.js';
import { type RawResponse, locationPath, randomBytesSeeded, raw, sha256 } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { type TestRedis, redisAvailability, startRedis } from './helpers/redis.js';
import { bucketStorage } from './helpers/replicas.js';
import { describeWithTool, freePort } from './helpers/tools.js';

const SECRET = 'one-secret-for-every-server';
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** How many times the server behind `debugUrl` opened a reader on its storage (a re-read of upload data is one). */
async function readerCalls(debugUrl: string): Promise<number> {
  const res = await raw(debugUrl, 'GET', '/metrics');
  expect(res.status).toBe(200);
  let calls = 0;
  for (const line of res.body.toString('utf8').split('\n')) {
    if (line.startsWith('registry_storage_action_seconds_count{') && line.includes('action="reader"')) {
      calls += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return calls;
}

function patch(base: string, location: string, offset: number, part: Buffer): Promise<RawResponse> {
  return raw(base, 'PATCH', location, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + part.length - 1}` },
    body: part,
  });
}

/** The Go-format state of SHA-256 over `bytes`, as registry:2 would save it. */
async function goState(bytes: Buffer): Promise<Buffer> {
  const h = await ResumableSha256.create();
  h.update(bytes);
  return h.state();
}

/** `berth serve` in this process over a filesystem root; with `redis` (replicas) it saves hash states. */
async function serveFilesystem(root: string, redis?: TestRedis): Promise<Serving & { readonly debugUrl: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-hashstates-conf-'));
  dirs.push(dir);
  const config = join(dir, 'config.yml');
  await writeFile(config, [
    'version: 0.1',
    'log: {level: error}',
    `http: {addr: "127.0.0.1:0", secret: ${SECRET}, debug: {addr: "127.0.0.1:0"}}`,
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(root)}}, delete: {enabled: true}, maintenance: {uploadpurging: {enabled: false}}}`,
    ...(redis ? [`redis: {addr: "${redis.addr}"}`] : []),
    '',
  ].join('\n'));
  const serving = await serve(config, {});
  if (!serving.debug) throw new Error('no debug listener');
  return { ...serving, debugUrl: serving.debug.url };
}

describe('a chunked upload on one filesystem root', () => {
  const running: Serving[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop();
  });

  /** PATCH on one server, restart, PATCH and commit on the next: what the second one read, and the states left. */
  const acrossRestart = async (redis?: TestRedis): Promise<{ reads: number; states: string[] }> => {
    const root = await mkdtemp(join(tmpdir(), 'berth-hashstates-'));
    dirs.push(root);
    const data = randomBytesSeeded(3 * 1024 * 1024 + 17, 181);
    const cut = 1024 * 1024 + 5;
    const first = await serveFilesystem(root, redis);
    running.push(first);
    const post = await raw(first.running.url, 'POST', '/v2/restart/blobs/uploads/');
    const one = await patch(first.running.url, locationPath(post), 0, data.subarray(0, cut));
    expect(one.status).toBe(202);
    const uuid = one.header('Docker-Upload-UUID') ?? '';
    await first.stop();
    running.splice(0);

    const second = await serveFilesystem(root, redis);
    running.push(second);
    const before = await readerCalls(second.debugUrl);
    const two = await patch(second.running.url, locationPath(one), cut, data.subarray(cut));
    expect(two.status).toBe(202);
    const states = await readdir(join(v2(root), uploadDir('restart', uuid), 'hashstates/sha256')).catch(() => []);
    const put = await raw(second.running.url, 'PUT', `${locationPath(two)}&digest=${encodeURIComponent(sha256(data))}`);
    expect(put.status, put.body.toString()).toBe(201);
    const reads = (await readerCalls(second.debugUrl)) - before;
    const got = await raw(second.running.url, 'GET', `/v2/restart/blobs/${sha256(data)}`);
    expect(sha256(got.body)).toBe(sha256(data));
    return { reads, states: states.sort() };
  };

  describeWithTool('redis-server', redisAvailability(), 'with redis (replicas)', () => {
    let redis: TestRedis | undefined;
    afterEach(async () => {
      for (const b of running.splice(0)) await b.stop(); // before the Redis they use
      await redis?.stop();
      redis = undefined;
    });

    it('a replica restarted between PATCHes takes up the saved state: the commit reads no data', async () => {
      redis = await startRedis();
      expect(await acrossRestart(redis)).toEqual({ reads: 0, states: [String(1024 * 1024 + 5), String(3 * 1024 * 1024 + 17)] });
    }, 60_000);
  });

  it('a lone Berth (no redis) saves no state: after a restart the commit reads the data back once', async () => {
    expect(await acrossRestart()).toEqual({ reads: 1, states: [] });
  }, 60_000);

  describeWithTool('docker-registry', registry2Available(), 'with registry:2 on the same root', () => {
    let reg: Registry2 | undefined;
    afterEach(async () => {
      await reg?.close();
      reg = undefined;
    });

    it('registry:2 and a lone Berth take one upload in turns, each from the other\'s saved state, with no re-read', async () => {
      const root = await mkdtemp(join(tmpdir(), 'berth-hashstates-reg-'));
      dirs.push(root);
      reg = await startRegistry2({ root, secret: SECRET });
      const berth = await serveFilesystem(root);
      running.push(berth);
      const data = randomBytesSeeded(2 * 1024 * 1024 + 4099, 182);
      const cuts = [0, 100_003, 1_200_000, 1_700_021, data.length];
      const piece = (i: number): Buffer => data.subarray(cuts[i] ?? 0, cuts[i + 1] ?? 0);
      const stateFile = (uuid: string, offset: number): string =>
        join(v2(root), uploadDir('interop/resume', uuid), 'hashstates/sha256', String(offset));
      const before = await readerCalls(berth.debugUrl);

      const post = await raw(reg.url, 'POST', '/v2/interop/resume/blobs/uploads/');
      expect(post.status).toBe(202);
      const r1 = await patch(reg.url, locationPath(post), 0, piece(0));
      expect(r1.status).toBe(202);
      const uuid = r1.header('Docker-Upload-UUID') ?? '';
      // registry:2's own state file: Go's format, byte for byte what Berth computes.
      expect(await readFile(stateFile(uuid, cuts[1] ?? 0))).toEqual(await goState(data.subarray(0, cuts[1])));

      const b2 = await patch(berth.running.url, locationPath(r1), cuts[1] ?? 0, piece(1));
      expect(b2.status, b2.body.toString()).toBe(202);
      expect(await readFile(stateFile(uuid, cuts[2] ?? 0))).toEqual(await goState(data.subarray(0, cuts[2])));

      // registry:2 takes up Berth's state: the state it saves next is the hash of everything so far.
      const r3 = await patch(reg.url, locationPath(b2), cuts[2] ?? 0, piece(2));
      expect(r3.status, r3.body.toString()).toBe(202);
      expect(await readFile(stateFile(uuid, cuts[3] ?? 0))).toEqual(await goState(data.subarray(0, cuts[3])));

      const b4 = await patch(berth.running.url, locationPath(r3), cuts[3] ?? 0, piece(3));
      expect(b4.status, b4.body.toString()).toBe(202);
      const put = await raw(berth.running.url, 'PUT', `${locationPath(b4)}&digest=${encodeURIComponent(sha256(data))}`);
      expect(put.status, put.body.toString()).toBe(201);
      expect(await readerCalls(berth.debugUrl)).toBe(before);
      const got = await raw(reg.url, 'GET', `/v2/interop/resume/blobs/${sha256(data)}`);
      expect(got.status).toBe(200);
      expect(sha256(got.body)).toBe(sha256(data));
    }, 60_000);

    describeWithTool('redis-server', redisAvailability(), 'and Berth replicas (redis)', () => {
      let redis: TestRedis | undefined;
      afterEach(async () => {
        for (const b of running.splice(0)) await b.stop(); // before the Redis they use
        await redis?.stop();
        redis = undefined;
      });

      it('registry:2 commits an upload whose last PATCH Berth took from Berth\'s state, without reading the data', async () => {
        const root = await mkdtemp(join(tmpdir(), 'berth-hashstates-reg-'));
        dirs.push(root);
        reg = await startRegistry2({ root, secret: SECRET });
        redis = await startRedis();
        const berth = await serveFilesystem(root, redis);
        running.push(berth);
        const data = randomBytes(300_007);
        const post = await raw(berth.running.url, 'POST', '/v2/interop/back/blobs/uploads/');
        const b1 = await patch(berth.running.url, locationPath(post), 0, data);
        expect(b1.status).toBe(202);
        // One stored byte changed behind both servers' backs: a commit that read the data back would
        // refuse the digest; one that takes up Berth's state accepts it.
        const file = join(v2(root), uploadDir('interop/back', b1.header('Docker-Upload-UUID') ?? ''), 'data');
        const stored = await readFile(file);
        stored[1000] = (stored[1000] ?? 0) ^ 0xff;
        await writeFile(file, stored);
        const put = await raw(reg.url, 'PUT', `${locationPath(b1)}&digest=${encodeURIComponent(sha256(data))}`);
        expect(put.status, put.body.toString()).toBe(201);
      }, 60_000);
    });
  });
});

describeWithS3('a chunked upload on two Berth processes over one Ceph bucket', (s3) => {
  const bucket = `berth-hashstates-${randomBytes(4).toString('hex')}`;
  const servers: BerthProcess[] = [];
  afterAll(async () => {
    for (const s of servers.splice(0)) await s.stop();
    await deleteBucket(s3, bucket).catch(() => undefined);
  });

  it('PATCHes alternate between the processes and the commit reads no data on either', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-hashstates-s3-'));
    dirs.push(work);
    const storage = await bucketStorage(s3, bucket, ['    chunksize: 5242880']);
    const urls: { api: string; debug: string }[] = [];
    for (const i of [0, 1]) {
      const [api, debug] = [await freePort(), await freePort()];
      urls.push({ api: `http://127.0.0.1:${api}`, debug: `http://127.0.0.1:${debug}` });
      servers.push(
        await startBerthProcess({
          configPath: join(work, `config-${i}.yml`),
          config: [
            'version: 0.1',
            'log: {level: info, accesslog: {disabled: true}}',
            `http: {addr: "127.0.0.1:${api}", secret: ${SECRET}, debug: {addr: "127.0.0.1:${debug}"}}`,
            'storage:',
            ...storage.yaml,
            '  redirect: {disable: true}',
            '  delete: {enabled: true}',
            '  maintenance: {uploadpurging: {enabled: false}}',
            '',
          ].join('\n'),
        }),
      );
    }
    const at = (i: number): { api: string; debug: string } => urls[i % 2] ?? { api: '', debug: '' };
    const MiB = 1024 * 1024;
    const data = randomBytesSeeded(17 * MiB + 333, 183);
    const cuts = [0, 6 * MiB + 1, 6 * MiB + 1000, 13 * MiB, data.length];
    const before = [await readerCalls(at(0).debug), await readerCalls(at(1).debug)];
    const post = await raw(at(0).api, 'POST', '/v2/hashstates/s3/blobs/uploads/');
    let location = locationPath(post);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const res = await patch(at(i).api, location, cuts[i] ?? 0, data.subarray(cuts[i], cuts[i + 1]));
      expect(res.status, res.body.toString()).toBe(202);
      location = locationPath(res);
    }
    const keys = (await listKeys(s3, bucket)).filter((k) => k.includes('/hashstates/sha256/'));
    expect(keys.map((k) => Number(k.slice(k.lastIndexOf('/') + 1))).sort((a, b) => a - b)).toEqual(cuts.slice(1));
    const put = await raw(at(1).api, 'PUT', `${location}&digest=${encodeURIComponent(sha256(data))}`);
    expect(put.status, put.body.toString()).toBe(201);
    expect([await readerCalls(at(0).debug), await readerCalls(at(1).debug)]).toEqual(before);
    const got = await raw(at(0).api, 'GET', `/v2/hashstates/s3/blobs/${sha256(data)}`);
    expect(sha256(got.body)).toBe(sha256(data));
    expect((await listKeys(s3, bucket)).filter((k) => k.includes('/_uploads/'))).toEqual([]);
  }, 180_000);
});
