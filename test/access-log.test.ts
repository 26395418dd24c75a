/**
 * The access log and the start-up line against a real Berth: each request's line carries its duration
 * in ms and the bytes read and written for it; a client that goes away gets a line with status 499 and
 * nothing at warn (no stack); `berth serve` says `listening` (with read-only mode and the debug URL) only
 * once the debug listener is bound too, and is ready then.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBerthProcess } from './helpers/berth-process.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blob, locationPath, pushBlob, randomBytesSeeded, raw } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

type Line = Record<string, unknown>;

let berth: TestBerth;
const lines: Line[] = [];
const waiters: { match: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];

/** Resolves with the first access line (past or future) that `match` accepts. */
function accessLine(match: (l: Line) => boolean): Promise<Line> {
  const seen = lines.find((l) => l['msg'] === 'request' && match(l));
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => waiters.push({ match: (l) => l['msg'] === 'request' && match(l), resolve }));
}

/**
 * Starts an upload in `repo`, sends part of a chunked PATCH, goes away, and answers the PATCH's access
 * line. `Expect: 100-continue`: the 'continue' event says the server has taken the request into its app.
 */
async function patchAndGoAway(repo: string): Promise<Line> {
  const path = locationPath(await raw(berth.url, 'POST', `/v2/${repo}/blobs/uploads/`));
  const url = new URL(berth.url);
  const req = request({
    host: url.hostname, port: url.port, method: 'PATCH', path,
    headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked', Expect: '100-continue' },
  });
  req.on('error', () => undefined); // the socket we destroy
  await new Promise<void>((resolve) => req.once('continue', resolve));
  await new Promise<void>((resolve) => req.write(Buffer.alloc(64 * 1024, 1), () => resolve()));
  req.destroy();
  return accessLine((l) => l['method'] === 'PATCH' && String(l['path']).startsWith(`/v2/${repo}/`));
}

beforeAll(async () => {
  berth = await startBerth({
    logLevel: 'info',
    onLog: (text) => {
      const line = JSON.parse(text) as Line;
      lines.push(line);
      for (const w of waiters.filter((x) => x.match(line))) w.resolve(line);
    },
  });
});
afterAll(async () => {
  await berth.close();
});

describe('access lines', () => {
  it('carry durationMs, bytesIn and bytesOut', async () => {
    const big = blob(randomBytesSeeded(256 * 1024, 3));
    await pushBlob(berth.url, 'log/repo', big);
    const push = await accessLine((l) => l['method'] === 'POST' && l['path'] === '/v2/log/repo/blobs/uploads/');
    expect(push['status']).toBe(201);
    expect(push['bytesIn']).toBeGreaterThanOrEqual(big.size);
    expect(push['bytesOut']).toBeGreaterThan(0);
    expect(typeof push['durationMs']).toBe('number');
    expect(push['durationMs']).toBeGreaterThan(0);
    const get = await raw(berth.url, 'GET', `/v2/log/repo/blobs/${big.digest}`);
    expect(get.status).toBe(200);
    const pull = await accessLine((l) => l['method'] === 'GET' && l['path'] === `/v2/log/repo/blobs/${big.digest}`);
    expect(pull['status']).toBe(200);
    expect(pull['bytesOut']).toBeGreaterThanOrEqual(big.size);
    expect(pull['bytesIn']).toBeGreaterThan(0);
  });

  it('a client that goes away mid-upload gets a 499 line and nothing at warn', async () => {
    const line = await patchAndGoAway('log/gone');
    expect(line['status']).toBe(499);
    expect(berth.warnings).toEqual([]);
    expect(berth.errors).toEqual([]);
  });

  it('thirty clients going away mid-upload leave no uncaught error behind (each would kill the process)', async () => {
    // The request's 'error' (ECONNRESET 'aborted') arrives after the upload has failed on the same
    // abort; once it was thrown with no listener left, on nearly every abort.
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 30; i++) await patchAndGoAway(`log/gone${i}`);
      // One more request answered after the last abort: any 'error' those aborts emit has been emitted by now.
      expect((await raw(berth.url, 'GET', '/v2/')).status).toBe(200);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    expect(berth.errors).toEqual([]);
  });

  it('a client that goes away mid-download gets a 499 line and nothing at warn', async () => {
    const big = blob(randomBytesSeeded(16 * 1024 * 1024, 4));
    await pushBlob(berth.url, 'log/dl', big);
    const url = new URL(berth.url);
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method: 'GET', path: `/v2/log/dl/blobs/${big.digest}` }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.once('response', () => undefined);
      req.end();
      setTimeout(() => reject(new Error('no response')), 30_000).unref();
    });
    const line = await accessLine((l) => l['method'] === 'GET' && l['path'] === `/v2/log/dl/blobs/${big.digest}`);
    expect(line['status']).toBe(499);
    expect(Number(line['bytesOut'])).toBeLessThan(big.size);
    expect(berth.warnings).toEqual([]);
    expect(berth.errors).toEqual([]);
  });
});

describe('berth serve start-up', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-startup-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('says listening, with read-only mode and the debug URL, only after the debug listener is bound, and is ready then', async () => {
    const [port, debugPort] = [await freePort(), await freePort()];
    const config = `version: 0.1\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: s\n  debug:\n    addr: 127.0.0.1:${debugPort}\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'root')}\n  maintenance:\n    readonly:\n      enabled: true\n`;
    const berthProcess = await startBerthProcess({ config, configPath: join(dir, 'config.yml') });
    try {
      const log = berthProcess.log();
      const listening = log.split('\n').find((l) => l.includes('msg=listening')) ?? '';
      expect(log.indexOf('msg="debug listener"')).toBeGreaterThan(-1);
      expect(log.indexOf('msg="debug listener"')).toBeLessThan(log.indexOf('msg=listening'));
      expect(listening).toContain('readOnly=true');
      expect(listening).toContain(`debug=http://127.0.0.1:${debugPort}`);
      expect((await raw(`http://127.0.0.1:${port}`, 'GET', '/readyz')).status).toBe(200);
      expect((await raw(`http://127.0.0.1:${debugPort}`, 'GET', '/readyz')).status).toBe(200);
    } finally {
      await berthProcess.stop();
    }
  });
});
