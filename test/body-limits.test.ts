/**
 * Size-limited request bodies against a real Berth, sent both ways a client may frame them: with
 * Content-Length and with `Transfer-Encoding: chunked`. Either way the answer is the same JSON 413 with
 * the spec's code (MANIFEST_INVALID for a manifest, SIZE_INVALID for the token form), the access line is
 * written, and nothing is logged as a bug.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TOKEN_FORM_BYTES } from '../src/http/handlers/auth-token.js';
import { MAX_MANIFEST_BYTES } from '../src/storage/manifests/manifest-format.js';
import { builtinAuth, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { MT } from './helpers/oci.js';

type Framing = 'content-length' | 'chunked';

/** Sends `size` bytes in 64 KiB writes, framed as asked; resolves with the answer. */
function send(base: string, path: string, contentType: string, size: number, framing: Framing): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base);
  const headers: Record<string, string> = { 'Content-Type': contentType };
  if (framing === 'content-length') headers['Content-Length'] = String(size);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: path.startsWith('/auth') ? 'POST' : 'PUT', path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    for (let sent = 0; sent < size; sent += chunk.length) req.write(chunk.subarray(0, Math.min(chunk.length, size - sent)));
    req.end();
  });
}

let berth: TestBerth;
/** A Berth with the built-in token issuer, for /auth/token. */
let issuer: TestBerth;
let dir: string;
const lines: Record<string, unknown>[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-limits-'));
  const htpasswd = await writeHtpasswd(dir, { alice: 'secret' });
  berth = await startBerth({ logLevel: 'info', onLog: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  issuer = await startBerth({ auth: builtinAuth({ htpasswd, rules: [{ users: ['alice'], repositories: ['**'], actions: ['pull', 'push'] }] }) });
});
afterAll(async () => {
  await berth.close();
  await issuer.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each<Framing>(['content-length', 'chunked'])('a body over its limit, framed by %s', (framing) => {
  it('a manifest PUT over 4 MiB is 413 MANIFEST_INVALID as JSON, with an access line and no error logged', async () => {
    const res = await send(berth.url, '/v2/big/manifests/t', MT.ociManifest, MAX_MANIFEST_BYTES + 1, framing);
    expect(res.status).toBe(413);
    expect(res.type).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'MANIFEST_INVALID', detail: { limit: MAX_MANIFEST_BYTES } }] });
    expect(berth.errors).toEqual([]);
    expect(berth.warnings).toEqual([]);
    expect(lines.filter((l) => l['msg'] === 'request' && l['path'] === '/v2/big/manifests/t' && l['status'] === 413).length).toBeGreaterThan(0);
  });

  it('a token form over its limit is 413 SIZE_INVALID as JSON', async () => {
    const res = await send(issuer.url, '/auth/token', 'application/x-www-form-urlencoded', MAX_TOKEN_FORM_BYTES + 1, framing);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'SIZE_INVALID', detail: { limit: MAX_TOKEN_FORM_BYTES } }] });
    expect(issuer.errors).toEqual([]);
    expect(issuer.warnings).toEqual([]);
  });

  it('a body exactly at the limit is read whole (the manifest is then judged on its content)', async () => {
    const res = await send(berth.url, '/v2/big/manifests/t', MT.ociManifest, MAX_MANIFEST_BYTES, framing);
    // 'aaa…' is no JSON: refused for what it says, not for its size.
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'MANIFEST_INVALID' }] });
  });
});
