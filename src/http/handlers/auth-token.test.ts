import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hashSync } from 'bcryptjs';
import { createLocalJWKSet, jwtVerify } from 'jose';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHtpasswd } from '../../auth/htpasswd.js';
import { createIssuer } from '../../auth/issuer.js';
import { loadOrCreateSigningKey } from '../../auth/signing-key.js';
import type { RequestState } from '../context.js';
import { sendError } from '../error-response.js';
import { createTokenHandlers, MAX_TOKEN_FORM_BYTES, parseForm } from './auth-token.js';

const SERVICE = 'registry.test';
let server: Server;
let base: string;

beforeAll(async () => {
  const issuer = createIssuer({
    issuer: 'berth',
    service: SERVICE,
    users: parseHtpasswd(`alice:${hashSync('pw', 4)}\n`, 'test'),
    rules: [
      { repositories: ['public/*'], anonymous: true, actions: ['pull'] },
      { repositories: ['alice/**'], users: ['alice'], actions: ['*'] },
    ],
    groups: {},
    key: await loadOrCreateSigningKey({ path: undefined }),
  });
  const h = createTokenHandlers(issuer);
  const app = new Koa<RequestState>();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      sendError(ctx, err, (bug) => {
        throw bug;
      });
    }
  });
  app.use(async (ctx) => {
    const route = `${ctx.method} ${ctx.path}`;
    if (route === 'GET /auth/token') await h.getToken(ctx);
    else if (route === 'POST /auth/token') await h.postToken(ctx);
    else if (route === 'GET /auth/jwks') await h.getJwks(ctx);
  });
  server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function access(token: string): Promise<unknown> {
  const jwks = (await (await fetch(`${base}/auth/jwks`)).json()) as { keys: [] };
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { audience: SERVICE, issuer: 'berth' });
  return payload.access;
}

describe('GET /auth/token', () => {
  it('answers docker login style requests with repeated scope values, uncached', async () => {
    const url = `${base}/auth/token?service=${SERVICE}&scope=repository:alice/a:pull,push&scope=repository:public/b:pull&account=alice&offline_token=true&client_id=docker`;
    const res = await fetch(url, { headers: { Authorization: basic('alice', 'pw') } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBe(300);
    expect(typeof body.issued_at).toBe('string');
    expect(typeof body.refresh_token).toBe('string');
    expect(await access(String(body.token))).toEqual([
      { type: 'repository', name: 'alice/a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'public/b', actions: ['pull'] },
    ]);
  });

  it('gives anonymous tokens', async () => {
    const res = await fetch(`${base}/auth/token?scope=repository:alice/a:pull`);
    expect(res.status).toBe(200);
    expect(await access(String(((await res.json()) as { token: string }).token))).toEqual([]);
  });

  it('answers 401 with an errors body for a wrong password', async () => {
    const res = await fetch(`${base}/auth/token?scope=repository:alice/a:pull`, { headers: { Authorization: basic('alice', 'nope') } });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { errors: { code: string }[]; token?: string };
    expect(body.errors[0]?.code).toBe('UNAUTHORIZED');
    expect(body.token).toBeUndefined();
  });

  it('answers 400 for a bad scope or a repeated service', async () => {
    expect((await fetch(`${base}/auth/token?scope=repository:a:pull;push`)).status).toBe(400);
    expect((await fetch(`${base}/auth/token?service=a&service=b`)).status).toBe(400);
  });
});

describe('POST /auth/token', () => {
  const form = (fields: Record<string, string>): RequestInit => ({
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

  it('answers the password and refresh_token grants', async () => {
    const first = await fetch(`${base}/auth/token`, form({
      grant_type: 'password', username: 'alice', password: 'pw', service: SERVICE, client_id: 'podman', access_type: 'offline',
      scope: 'repository:alice/x:pull repository:alice/y:push',
    }));
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const body = (await first.json()) as { access_token: string; refresh_token: string };
    expect(await access(body.access_token)).toEqual([
      { type: 'repository', name: 'alice/x', actions: ['pull'] },
      { type: 'repository', name: 'alice/y', actions: ['push'] },
    ]);
    const second = await fetch(`${base}/auth/token`, form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, scope: 'repository:alice/z:delete' }));
    expect(second.status).toBe(200);
    expect(await access(((await second.json()) as { token: string }).token)).toEqual([
      { type: 'repository', name: 'alice/z', actions: ['delete'] },
    ]);
  });

  it('answers 401 for a wrong password, 405 for another grant type or body type, 413 for a huge form', async () => {
    expect((await fetch(`${base}/auth/token`, form({ grant_type: 'password', username: 'alice', password: 'x' }))).status).toBe(401);
    expect((await fetch(`${base}/auth/token`, form({ grant_type: 'client_credentials' }))).status).toBe(405);
    const json = await fetch(`${base}/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"grant_type":"password"}',
    });
    expect(json.status).toBe(405);
    const huge = await fetch(`${base}/auth/token`, form({ grant_type: 'password', username: 'alice', password: 'x'.repeat(MAX_TOKEN_FORM_BYTES) }));
    expect(huge.status).toBe(413);
  });
});

describe('GET /auth/jwks', () => {
  it('serves the public key set', async () => {
    const res = await fetch(`${base}/auth/jwks`);
    expect(res.status).toBe(200);
    const { keys } = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(keys[0]?.d).toBeUndefined();
  });
});

describe('parseForm', () => {
  it('decodes + and %XX, keeps repeated fields in order, and is safe with __proto__', () => {
    const f = parseForm('scope=repository%3Aa%3Apull+repository:b:push&scope=x&__proto__=p&a=');
    expect(f.scope).toEqual(['repository:a:pull repository:b:push', 'x']);
    expect(f.__proto__).toBe('p');
    expect(f.a).toBe('');
    expect(Object.getPrototypeOf(f)).toBeNull();
  });
});
