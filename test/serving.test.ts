/**
 * How `berth serve` fits behind proxies and log pipelines, on a real process: `http.headers` on every
 * response, Location URLs from `X-Forwarded-*` and `Forwarded` (and `http.host` over both), idle
 * keep-alive connections kept longer than clients keep theirs, request ids
 * kept from a proxy, and the JSON log with `log.fields` and a request id on every request line, or no
 * access log at all with `log.accesslog.disabled`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { raw } from './helpers/oci.js';
import { freePort, sleep } from './helpers/tools.js';

const dirs: string[] = [];
const running: BerthProcess[] = [];
afterEach(async () => {
  for (const b of running.splice(0)) await b.stop();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function start(extra: readonly string[]): Promise<{ berth: BerthProcess; url: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-serving-'));
  dirs.push(dir);
  const port = await freePort();
  const berth = await startBerthProcess({
    configPath: join(dir, 'config.yml'),
    config: ['version: 0.1', `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'root'))}}}`, ...extra, ''].join('\n')
      .replace('HTTP_ADDR', `127.0.0.1:${port}`),
  });
  running.push(berth);
  return { berth, url: `http://127.0.0.1:${port}` };
}

/** The JSON log lines written so far, parsed. */
function logLines(berth: BerthProcess): Record<string, unknown>[] {
  return berth.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('behind a proxy', () => {
  it('adds http.headers to every response, errors included', async () => {
    const { url } = await start([
      'http:',
      '  addr: HTTP_ADDR',
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      '    Strict-Transport-Security: ["max-age=63072000", "includeSubDomains"]',
    ]);
    for (const path of ['/v2/', '/v2/nope/manifests/latest', '/']) {
      const res = await raw(url, 'GET', path);
      expect(res.header('X-Content-Type-Options')).toBe('nosniff');
      expect(res.header('Strict-Transport-Security')).toBe('max-age=63072000, includeSubDomains');
    }
  });

  it('builds Location URLs from X-Forwarded-Proto/Host and Forwarded, and ignores values that are not a host', async () => {
    const { url } = await start(['http: {addr: HTTP_ADDR}']);
    const post = (headers: Record<string, string>) => raw(url, 'POST', '/v2/proxied/blobs/uploads/', { headers });
    const forwardedFor = (res: Awaited<ReturnType<typeof post>>): string => new URL(res.header('Location') ?? '').origin;
    expect(forwardedFor(await post({ 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'registry.example.com' }))).toBe('https://registry.example.com');
    expect(forwardedFor(await post({ 'X-Forwarded-Proto': 'https, http', 'X-Forwarded-Host': 'a.example:8443, b.example' }))).toBe('https://a.example:8443');
    expect(forwardedFor(await post({ Forwarded: 'for=10.0.0.1;proto=https;host="reg.example.org", for=10.0.0.2', 'X-Forwarded-Host': 'other.example' })))
      .toBe('https://reg.example.org');
    // Not a host: ignored, the connection's own host is used.
    expect(forwardedFor(await post({ 'X-Forwarded-Host': 'evil.example/path?x', 'X-Forwarded-Proto': 'javascript' }))).toBe(url);
  });

  it('prefers http.host over forwarded headers', async () => {
    const { url } = await start(['http: {addr: HTTP_ADDR, host: "https://fixed.example.com"}']);
    const res = await raw(url, 'POST', '/v2/fixed/blobs/uploads/', { headers: { 'X-Forwarded-Host': 'registry.example.com' } });
    expect(new URL(res.header('Location') ?? '').origin).toBe('https://fixed.example.com');
  });

  it('keeps idle connections open longer than Go clients keep theirs (90 s), so the client closes first', async () => {
    const { url } = await start(['http: {addr: HTTP_ADDR}']);
    const res = await raw(url, 'GET', '/v2/', { headers: { Connection: 'keep-alive' } });
    expect(res.status).toBe(200);
    // Node announces its idle timeout; 5 s (Node's default) made clients reuse connections Berth was closing.
    const timeout = Number(/timeout=(\d+)/.exec(res.header('Keep-Alive') ?? '')?.[1]);
    expect(timeout).toBeGreaterThan(90);
  });
});

describe('logs', () => {
  it('writes JSON access lines with the request id, log.fields and the request, keeping a proxy id', async () => {
    const { berth, url } = await start(['log: {level: info, formatter: json, fields: {service: registry, environment: staging}}', 'http: {addr: HTTP_ADDR}']);
    const mine = await raw(url, 'GET', '/v2/', { headers: { 'X-Request-Id': 'proxy-abc-123', 'User-Agent': 'test-agent/1' } });
    expect(mine.header('X-Request-Id')).toBe('proxy-abc-123');
    const fresh = await raw(url, 'GET', '/v2/', { headers: { 'X-Request-Id': 'not ok; <script>' } });
    expect(fresh.header('X-Request-Id')).toMatch(/^[0-9a-f-]{36}$/);
    await sleep(100);
    const lines = logLines(berth);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatchObject({ service: 'registry', environment: 'staging', level: expect.any(String), time: expect.any(String) });
    const access = lines.filter((l) => l['msg'] === 'request');
    expect(access).toContainEqual(expect.objectContaining({
      requestId: 'proxy-abc-123', method: 'GET', path: '/v2/', status: 200, route: 'base', userAgent: 'test-agent/1',
    }));
    expect(access).toContainEqual(expect.objectContaining({ requestId: fresh.header('X-Request-Id') }));
  });

  it('writes no access lines with log.accesslog.disabled', async () => {
    const { berth, url } = await start(['log: {level: info, formatter: json, accesslog: {disabled: true}}', 'http: {addr: HTTP_ADDR}']);
    expect((await raw(url, 'GET', '/v2/')).status).toBe(200);
    await sleep(100);
    expect(logLines(berth).some((l) => l['msg'] === 'listening')).toBe(true);
    expect(logLines(berth).filter((l) => l['msg'] === 'request')).toEqual([]);
  });
});
