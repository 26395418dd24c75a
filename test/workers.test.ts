/**
 * `http.workers: 2` (issue #19): one `berth serve` process that forks two node:cluster workers, each a
 * replica on one filesystem root coordinating through a real Redis, behind one port. Every request here
 * goes on a connection of its own (`Connection: close`), so the primary's round-robin hands them to
 * the workers in turn; which worker answered is read from the access log (`worker` on every line of a
 * worker, found by the response's `X-Request-Id`).
 *
 * Shown: requests land on both workers; an image pushed through one is pulled through the other; a
 * chunked upload whose requests went to both workers completes with the right digest; a token the
 * built-in issuer signed on one worker is accepted by the other; the debug listener's metrics count the
 * requests of both; a worker killed with SIGKILL is replaced and the port keeps answering; SIGTERM
 * drains a PATCH in flight (answered 202) and the whole process exits 0. Six worker deaths within a
 * minute make the primary give up with exit 1; a worker that cannot start (Redis not answering) fails
 * start-up with exit 1; without `redis` the key is refused at start-up, naming it.
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, getToken, writeHtpasswd } from './helpers/auth.js';
import { runBerthCli } from './helpers/berth-cli.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { type Image, type RawResponse, makeImage, randomBytesSeeded, raw, sha256 } from './helpers/oci.js';
import { type TestRedis, startRedis } from './helpers/redis.js';
import { describeWithTools, freePort, sleep } from './helpers/tools.js';

const TOOLS = { 'redis-server': 'redis-server' };
const USER = { alice: 'wonderland' };

describeWithTools(TOOLS, 'http.workers: 2 with redis on one filesystem root', () => {
  let work = '';
  let redis: TestRedis;
  let berth: BerthProcess;
  let url = '';
  let debugUrl = '';
  let auth: Record<string, string> = {};

  /** One request on a connection of its own, with the token. */
  const send = (method: string, path: string, o: { headers?: Record<string, string>; body?: Uint8Array | string } = {}): Promise<RawResponse> =>
    raw(url, method, path, { headers: { Connection: 'close', ...auth, ...o.headers }, ...(o.body !== undefined && { body: o.body }) });

  /** The worker (slot) whose access line carries this response's request id; waits for the line (written in the background). */
  async function workerOf(res: RawResponse): Promise<number> {
    const id = res.header('x-request-id');
    expect(id).toBeTruthy();
    for (let waited = 0; waited < 10_000; waited += 20) {
      for (const line of berth.log().split('\n')) {
        if (!line.includes(`"requestId":"${id}"`)) continue;
        const entry = JSON.parse(line) as { msg?: string; worker?: number };
        if (entry.msg === 'request' && typeof entry.worker === 'number') return entry.worker;
      }
      await sleep(20);
    }
    throw new Error(`no access line for request ${String(id)}`);
  }

  async function pushImage(repo: string, tag: string, image: Image): Promise<Set<number>> {
    const workers = new Set<number>();
    for (const b of [image.config, ...image.layers]) {
      const res = await send('POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: b.bytes });
      expect(res.status, res.body.toString()).toBe(201);
      workers.add(await workerOf(res));
    }
    const put = await send('PUT', `/v2/${repo}/manifests/${tag}`, { headers: { 'Content-Type': image.mediaType }, body: image.manifest.bytes });
    expect(put.status, put.body.toString()).toBe(201);
    workers.add(await workerOf(put));
    return workers;
  }

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`${debugUrl}/metrics`)).text();
    const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
    return m?.[1] === undefined ? Number.NaN : Number(m[1]);
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-workers-'));
    redis = await startRedis();
    const htpasswd = await writeHtpasswd(work, USER);
    const [port, debugPort] = [await freePort(), await freePort()];
    berth = await startBerthProcess({
      configPath: join(work, 'config.yml'),
      config: [
        'version: 0.1',
        'log: {level: info, formatter: json}',
        `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}, delete: {enabled: true}}`,
        `http: {addr: "127.0.0.1:${port}", workers: 2, draintimeout: 30s, debug: {addr: "127.0.0.1:${debugPort}"}}`,
        `redis: {addr: "${redis.addr}"}`,
        'auth:', '  builtin:', `    htpasswd: ${JSON.stringify(htpasswd)}`, '    service: berth', '    issuer: berth',
        '    rules:', '      - repositories: ["**"]', '        users: [alice]', '        actions: ["*"]', '        catalog: true',
        '',
      ].join('\n'),
      readyWhen: /"msg":"listening"/,
      readyTimeoutMs: 90_000,
    });
    url = `http://127.0.0.1:${port}`;
    debugUrl = `http://127.0.0.1:${debugPort}`;
    const token = await getToken(url, { user: 'alice', password: USER.alice, service: 'berth', scopes: ['repository:work/ers:pull,push,delete', 'repository:work/chunks:pull,push'] });
    expect(token.status).toBe(200);
    auth = bearer(token.token);
  }, 120_000);

  afterAll(async () => {
    await berth?.stop();
    await redis?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('starts two workers behind one port; requests land on both, and a token one signed works on the other', async () => {
    const listening = JSON.parse(berth.log().split('\n').find((l) => l.includes('"msg":"listening"')) ?? '{}') as { workers?: number; pids?: number[] };
    expect(listening.workers).toBe(2);
    expect(new Set(listening.pids).size).toBe(2);
    const workers = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const res = await send('GET', '/v2/');
      expect(res.status).toBe(200);
      workers.add(await workerOf(res));
    }
    expect([...workers].sort()).toEqual([1, 2]);
    // Without the token the same request is refused: the check is real on both workers.
    const anonymous = await Promise.all([0, 1].map(() => raw(url, 'GET', '/v2/', { headers: { Connection: 'close' } })));
    expect(anonymous.map((r) => r.status)).toEqual([401, 401]);
  }, 60_000);

  it('an image pushed through the workers pulls complete through each of them', async () => {
    const image = makeImage(19_001);
    await pushImage('work/ers', 'v1', image);
    const pulledBy = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const res = await send('GET', '/v2/work/ers/manifests/v1', { headers: { Accept: image.mediaType } });
      expect(res.status).toBe(200);
      expect(res.header('docker-content-digest')).toBe(image.manifest.digest);
      pulledBy.add(await workerOf(res));
      for (const b of [image.config, ...image.layers]) {
        const blob = await send('GET', `/v2/work/ers/blobs/${b.digest}`);
        expect(sha256(blob.body)).toBe(b.digest);
      }
      // The round-robin alternates: one more request shifts which worker takes the next manifest GET.
      if (i % 2 === 0) await send('GET', '/v2/');
    }
    expect([...pulledBy].sort()).toEqual([1, 2]);
    const tags = await send('GET', '/v2/work/ers/tags/list');
    expect(tags.json()).toEqual({ name: 'work/ers', tags: ['v1'] });
  }, 60_000);

  it('a chunked upload whose requests go to both workers completes with its digest', async () => {
    const data = randomBytesSeeded(3 * 256 * 1024, 19);
    const digest = sha256(data);
    const workers = new Set<number>();
    const start = await send('POST', '/v2/work/chunks/blobs/uploads/');
    expect(start.status).toBe(202);
    workers.add(await workerOf(start));
    let location = start.header('location') ?? '';
    for (let offset = 0; offset < data.length; offset += 256 * 1024) {
      const chunk = data.subarray(offset, offset + 256 * 1024);
      const patch = await send('PATCH', new URL(location, url).pathname + new URL(location, url).search, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      expect(patch.status, patch.body.toString()).toBe(202);
      workers.add(await workerOf(patch));
      location = patch.header('location') ?? '';
    }
    const done = new URL(location, url);
    done.searchParams.set('digest', digest);
    const put = await send('PUT', done.pathname + done.search);
    expect(put.status, put.body.toString()).toBe(201);
    workers.add(await workerOf(put));
    expect([...workers].sort()).toEqual([1, 2]);
    const back = await send('GET', `/v2/work/chunks/blobs/${digest}`);
    expect(back.status).toBe(200);
    expect(sha256(back.body)).toBe(digest);
  }, 60_000);

  it('the debug listener counts the requests of both workers, and runs a collection on one', async () => {
    const name = 'registry_http_requests_total{handler="base",method="GET",code="200"}';
    const before = await metric(name);
    const workers = new Set<number>();
    for (let i = 0; i < 8; i++) workers.add(await workerOf(await send('GET', '/v2/')));
    expect([...workers].sort()).toEqual([1, 2]);
    expect((await metric(name)) - before).toBe(8);
    expect(await metric('berth_cluster_workers_ready')).toBe(2);
    expect(await metric('process_resident_memory_bytes')).toBeGreaterThan(2 * 20 * 1024 * 1024);
    const gc = await fetch(`${debugUrl}/debug/gc?dryrun=true`, { method: 'POST' });
    expect(gc.status).toBe(200);
    expect(await gc.json()).toMatchObject({ dryRun: true, swept: 0 });
    expect((await fetch(`${debugUrl}/readyz`)).status).toBe(200);
  }, 60_000);

  it('a worker killed with SIGKILL is replaced, and both serve again', async () => {
    const listening = JSON.parse(berth.log().split('\n').find((l) => l.includes('"msg":"listening"')) ?? '{}') as { pids?: number[] };
    const victim = listening.pids?.[0];
    if (victim === undefined) throw new Error('no worker pids in the listening line');
    const replaced = berth.log().split('"msg":"worker replaced"').length;
    process.kill(victim, 'SIGKILL');
    for (let waited = 0; berth.log().split('"msg":"worker replaced"').length === replaced; waited += 50) {
      if (waited > 60_000) throw new Error(`no replacement within 60 s:\n${berth.log().slice(-4000)}`);
      await sleep(50);
    }
    expect(berth.log()).toMatch(new RegExp(`"pid":${victim},"code":null,"signal":"SIGKILL","msg":"worker exited: starting a new one"`));
    const workers = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const res = await send('GET', '/v2/work/ers/tags/list');
      expect(res.status).toBe(200);
      workers.add(await workerOf(res));
    }
    expect([...workers].sort()).toEqual([1, 2]);
    expect(await metric('berth_cluster_worker_restarts_total')).toBe(1);
  }, 90_000);

  it('SIGTERM drains a PATCH in flight on a worker, then every worker and the primary exit 0', async () => {
    const start = await send('POST', '/v2/work/chunks/blobs/uploads/');
    expect(start.status).toBe(202);
    const data = randomBytesSeeded(64 * 1024, 23);
    const location = new URL(start.header('location') ?? '', url);
    const patch = openPatch(url, location.pathname + location.search, data.length, auth);
    await patch.send(data.subarray(0, 1024));
    // The signal must come once a worker has the PATCH (its first bytes are in the session's file), not
    // while the connection is still being handed to one: a connection with no request yet is closed by the drain.
    const id = location.pathname.split('/').pop() ?? '';
    const sessionData = join(work, 'root/docker/registry/v2/repositories/work/chunks/_uploads', id, 'data');
    for (let waited = 0; ((await stat(sessionData).catch(() => undefined))?.size ?? 0) < 1024; waited += 20) {
      if (waited > 30_000) throw new Error('no worker wrote the PATCH\'s first bytes');
      await sleep(20);
    }
    berth.child.kill('SIGTERM');
    for (let waited = 0; !berth.log().includes('"msg":"shutting down"'); waited += 20) {
      if (waited > 30_000) throw new Error('the primary did not start shutting down');
      await sleep(20);
    }
    await patch.send(data.subarray(1024));
    patch.req.end();
    const answer = await patch.answer;
    expect(answer.statusCode).toBe(202);
    expect(answer.headers['range']).toBe(`0-${data.length - 1}`);
    const exit = await berth.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const stopped = berth.log().split('\n').filter((l) => l.includes('"msg":"worker stopped"'));
    expect(stopped.map((l) => (JSON.parse(l) as { code: number }).code)).toEqual([0, 0]);
  }, 90_000);
});

/** A PATCH of `length` bytes whose body the test writes with `send` (on a connection of its own). */
function openPatch(base: string, path: string, length: number, headers: Record<string, string>): { req: ClientRequest; answer: Promise<IncomingMessage>; send(b: Buffer): Promise<void> } {
  const u = new URL(base);
  const req = request({
    host: u.hostname, port: u.port, method: 'PATCH', path, agent: false,
    headers: { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${length - 1}`, 'Content-Length': String(length) },
  });
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', (res) => {
      res.resume();
      resolve(res);
    });
    req.once('error', reject);
  });
  answer.catch(() => undefined);
  return {
    req,
    answer,
    send: (b) => new Promise((resolve, reject) => req.write(b, (err) => (err ? reject(err) : resolve()))),
  };
}

describeWithTools(TOOLS, 'http.workers: a crash loop', () => {
  it('after more than 5 worker deaths within 60 s the primary stops the others and exits 1', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-workers-loop-'));
    const redis = await startRedis();
    try {
      const berth = await startBerthProcess({
        configPath: join(work, 'config.yml'),
        config: [
          'version: 0.1',
          'log: {level: info, formatter: json}',
          `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}}`,
          `http: {addr: "127.0.0.1:${await freePort()}", workers: 2}`,
          `redis: {addr: "${redis.addr}"}`,
          '',
        ].join('\n'),
        readyWhen: /"msg":"listening"/,
        readyTimeoutMs: 90_000,
      });
      const lines = (): { msg?: string; worker?: number; pid?: number; pids?: number[] }[] =>
        berth.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; worker?: number; pid?: number; pids?: number[] });
      let pid = lines().find((l) => l.msg === 'listening')?.pids?.[0];
      for (let death = 1; death <= 6; death++) {
        if (pid === undefined) throw new Error(`no worker to kill:\n${berth.log()}`);
        const replaced = lines().filter((l) => l.msg === 'worker replaced').length;
        process.kill(pid, 'SIGKILL');
        if (death === 6) break;
        for (let waited = 0; lines().filter((l) => l.msg === 'worker replaced').length === replaced; waited += 50) {
          if (waited > 60_000) throw new Error(`no replacement after death ${death}:\n${berth.log().slice(-3000)}`);
          await sleep(50);
        }
        pid = lines().filter((l) => l.msg === 'worker replaced').at(-1)?.pid;
      }
      expect(await berth.exited).toEqual({ code: 1, signal: null });
      expect(berth.log()).toMatch(/workers exited 6 times within 60 s: giving up/);
      expect(lines().filter((l) => l.msg === 'worker exited: starting a new one')).toHaveLength(5);
    } finally {
      await redis.stop();
      await rm(work, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('http.workers: refused without redis, and a start-up that fails', () => {
  it('is refused at start-up naming the key and what to set', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-workers-noredis-'));
    try {
      const start = startBerthProcess({
        configPath: join(work, 'config.yml'),
        config: `version: 0.1\nstorage: {filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}}\nhttp: {addr: "127.0.0.1:${await freePort()}", workers: 2}\n`,
      });
      await expect(start).rejects.toThrow(/config: http\.workers: 2 workers need redis \(redis\.addr\)/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('with a Redis that does not answer, the workers fail to start and so does the primary (exit 1), saying why', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-workers-noanswer-'));
    try {
      const nobody = await freePort();
      const config = join(work, 'config.yml');
      await writeFile(config, [
        'version: 0.1',
        `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}}`,
        `http: {addr: "127.0.0.1:${await freePort()}", workers: 2}`,
        `redis: {addr: "127.0.0.1:${nobody}", dialtimeout: 1s}`,
        '',
      ].join('\n'));
      const r = await runBerthCli(['serve', config]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/config: redis\.addr: .*127\.0\.0\.1/);
      expect(r.stderr).toMatch(/berth: worker [12] exited during start-up \(code 1\)/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});
