/**
 * SIGTERM on a real `berth serve` process in the middle of uploads: the listener stops taking
 * connections at once, a PATCH in flight that completes within `http.draintimeout` is answered and
 * kept, one that stalls past it is cut, and the process exits 0. Restarted on the same root (same
 * `http.secret`), every acknowledged byte is there: each session resumes from the offset it reports and
 * completes with the right digest.
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { locationPath, randomBytesSeeded, raw, sha256 } from './helpers/oci.js';
import { freePort, sleep } from './helpers/tools.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
const running: BerthProcess[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) await b.stop();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

interface Site { readonly dir: string; readonly port: number; readonly url: string }

async function site(): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-shutdown-'));
  dirs.push(dir);
  const port = await freePort();
  return { dir, port, url: `http://127.0.0.1:${port}` };
}

async function startOn(s: Site, drain: string): Promise<BerthProcess> {
  const berth = await startBerthProcess({
    configPath: join(s.dir, 'config.yml'),
    config: [
      'version: 0.1',
      'log: {level: info}',
      `http: {addr: "127.0.0.1:${s.port}", secret: shutdown-test, draintimeout: ${drain}}`,
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(s.dir, 'root'))}}}`,
      '',
    ].join('\n'),
  });
  running.push(berth);
  return berth;
}

/** A PATCH of `length` bytes from `offset` whose body the test writes by hand with `send`; `answer` is its response. */
function openPatch(url: string, path: string, offset: number, length: number): { req: ClientRequest; answer: Promise<IncomingMessage>; send(b: Buffer): Promise<void> } {
  const u = new URL(url);
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + length - 1}`, 'Content-Length': String(length) };
  const req = request({ host: u.hostname, port: u.port, method: 'PATCH', path, headers });
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  answer.catch(() => undefined);
  const send = (b: Buffer): Promise<void> => new Promise((resolve, reject) => req.write(b, (err) => (err ? reject(err) : resolve())));
  return { req, answer, send };
}

/** The upload's acknowledged size from `GET <location>`: the end of its Range plus one. */
async function uploadedSize(url: string, location: string): Promise<number> {
  const res = await raw(url, 'GET', location);
  expect(res.status).toBe(204);
  const range = /^0-(\d+)$/.exec(res.header('Range') ?? '');
  return range ? Number(range[1]) + 1 : 0;
}

/** Sends `data` from `offset`, then PUTs the digest; answers the final status. */
async function finish(url: string, location: string, data: Buffer, offset: number): Promise<number> {
  const patch = await raw(url, 'PATCH', location, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${data.length - 1}` },
    body: data.subarray(offset),
  });
  expect(patch.status).toBe(202);
  const put = await raw(url, 'PUT', `${locationPath(patch)}${locationPath(patch).includes('?') ? '&' : '?'}digest=${sha256(data)}`);
  return put.status;
}

describe('SIGTERM during uploads', () => {
  it('answers the PATCH in flight, refuses new connections, exits 0, and keeps every acknowledged byte', async () => {
    const s = await site();
    const berth = await startOn(s, '10s');
    const data = randomBytesSeeded(6 * MiB, 7);
    const post = await raw(s.url, 'POST', '/v2/drain/app/blobs/uploads/');
    expect(post.status).toBe(202);
    // Chunk one: acknowledged before the signal.
    const first = await raw(s.url, 'PATCH', locationPath(post), {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${2 * MiB - 1}` }, body: data.subarray(0, 2 * MiB),
    });
    expect(first.status).toBe(202);
    // Chunk two: half sent, then SIGTERM, then the rest.
    const second = openPatch(s.url, locationPath(first), 2 * MiB, 2 * MiB);
    await second.send(data.subarray(2 * MiB, 3 * MiB));
    await sleep(200);
    berth.child.kill('SIGTERM');
    await sleep(300);
    await expect(fetch(`${s.url}/v2/`)).rejects.toThrow(); // no longer listening
    await second.send(data.subarray(3 * MiB, 4 * MiB));
    second.req.end();
    const answer = await second.answer;
    answer.resume();
    expect(answer.statusCode).toBe(202);
    expect(answer.headers['range']).toBe(`0-${4 * MiB - 1}`);
    const location = new URL(answer.headers['location'] ?? '', s.url);
    expect(await berth.exited).toEqual({ code: 0, signal: null });
    expect(berth.log()).toMatch(/shutting down/);

    await startOn(s, '10s');
    const path = `${location.pathname}${location.search}`;
    expect(await uploadedSize(s.url, path)).toBe(4 * MiB);
    expect(await finish(s.url, path, data, 4 * MiB)).toBe(201);
    const blob = await raw(s.url, 'GET', `/v2/drain/app/blobs/${sha256(data)}`);
    expect(blob.status).toBe(200);
    expect(sha256(blob.body)).toBe(sha256(data));
  });

  it('cuts a stalled PATCH after http.draintimeout, exits 0, and the session resumes from what was kept', async () => {
    const s = await site();
    const berth = await startOn(s, '1s');
    const data = randomBytesSeeded(5 * MiB, 8);
    const post = await raw(s.url, 'POST', '/v2/drain/stalled/blobs/uploads/');
    const first = await raw(s.url, 'PATCH', locationPath(post), {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${MiB - 1}` }, body: data.subarray(0, MiB),
    });
    expect(first.status).toBe(202);
    const stalled = openPatch(s.url, locationPath(first), MiB, 2 * MiB);
    await stalled.send(data.subarray(MiB, 2 * MiB));
    await sleep(200);
    const signalledAt = Date.now();
    berth.child.kill('SIGTERM');
    await expect(stalled.answer).rejects.toThrow(); // the connection is cut, never answered
    expect(await berth.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(8_000);

    await startOn(s, '1s');
    const path = locationPath(first);
    const kept = await uploadedSize(s.url, path);
    // What was acknowledged is there; of the cut PATCH, a prefix may be.
    expect(kept).toBeGreaterThanOrEqual(MiB);
    expect(kept).toBeLessThanOrEqual(2 * MiB);
    expect(await finish(s.url, path, data, kept)).toBe(201);
    const blob = await raw(s.url, 'GET', `/v2/drain/stalled/blobs/${sha256(data)}`);
    expect(sha256(blob.body)).toBe(sha256(data));
  });
});
