import { hashSync } from 'bcryptjs';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { isRegistryError, UnauthorizedError } from '../errors.js';
import type { AccessItem } from './access.js';
import { parseHtpasswd } from './htpasswd.js';
import { createIssuer, type IssuerOptions, type TokenIssuer } from './issuer.js';
import type { AccessRule } from './rules.js';
import { loadOrCreateSigningKey, type SigningKey } from './signing-key.js';

const ISSUER = 'berth-test-issuer';
const SERVICE = 'registry.test';
const START = Date.UTC(2030, 0, 1, 12, 0, 0);
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const repo = (name: string, ...actions: string[]): AccessItem => ({ type: 'repository', name, actions });

const htpasswdText = `alice:$2y$${hashSync('alice-pw', 4).slice(4)}\nbob:${hashSync('bob-pw', 4)}\n`;
const rules: AccessRule[] = [
  { repositories: ['public/*'], anonymous: true, actions: ['pull'] },
  { repositories: ['alice/**'], users: ['alice'], actions: ['*'] },
  { repositories: ['team/*'], groups: ['team'], actions: ['pull', 'push'] },
  { repositories: [], users: ['bob'], actions: [], catalog: true },
];

let key: SigningKey;
let clock = START;
let issuer: TokenIssuer;

function make(over: Partial<IssuerOptions> = {}): TokenIssuer {
  return createIssuer({
    issuer: ISSUER,
    service: SERVICE,
    users: parseHtpasswd(htpasswdText, 'test'),
    rules,
    groups: { team: ['alice', 'bob'] },
    key,
    now: () => clock,
    ...over,
  });
}

beforeAll(async () => {
  key = await loadOrCreateSigningKey({ path: undefined });
  issuer = make();
});

/** Verifies an access token as a registry would: JWKS from the issuer, iss, aud, exp/nbf at `clock`. */
async function verifyAccess(token: string, from: TokenIssuer = issuer): Promise<JWTPayload> {
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(from.jwks()), {
    issuer: ISSUER,
    audience: SERVICE,
    algorithms: ['ES256'],
    currentDate: new Date(clock),
  });
  expect(protectedHeader).toEqual({ alg: 'ES256', kid: key.kid, typ: 'JWT' });
  return payload;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function expectUnauthorized(p: Promise<unknown>, message: string): Promise<void> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(UnauthorizedError);
  expect((err as UnauthorizedError).challenge).toBe(`Basic realm="${ISSUER}"`);
  expect((err as UnauthorizedError).message).toBe(message);
}

async function expectCode(p: Promise<unknown>, code: 'NAME_INVALID' | 'UNSUPPORTED'): Promise<void> {
  const err = await rejection(p);
  expect(isRegistryError(err, code)).toBe(true);
}

describe('GET /token', () => {
  it('gives an anonymous caller a token with the anonymous rules only', async () => {
    const answer = await issuer.tokenFromGet({
      authorization: undefined,
      service: SERVICE,
      scopes: ['repository:public/app:pull,push', 'repository:alice/app:pull'],
      offlineToken: true,
    });
    expect(answer.token).toBe(answer.access_token);
    expect(answer.expires_in).toBe(300);
    expect(answer.issued_at).toBe('2030-01-01T12:00:00Z');
    expect(answer.scope).toBe('repository:public/app:pull');
    expect(answer.refresh_token).toBeUndefined();
    const claims = await verifyAccess(answer.token);
    expect(claims).toMatchObject({ iss: ISSUER, sub: '', aud: SERVICE, access: [repo('public/app', 'pull')] });
    expect(claims.iat).toBe(START / 1000);
    expect(claims.nbf).toBe(START / 1000);
    expect(claims.exp).toBe(START / 1000 + 300);
    expect(typeof claims.jti).toBe('string');
  });

  it('gives a signed-in user the intersection of the request and the rules', async () => {
    const answer = await issuer.tokenFromGet({
      authorization: basic('alice', 'alice-pw'),
      account: 'alice',
      scopes: ['repository:alice/app:pull,push repository:team/x:*', 'repository:bob/app:pull', 'registry:catalog:*'],
      offlineToken: false,
    });
    const claims = await verifyAccess(answer.token);
    expect(claims.sub).toBe('alice');
    expect(claims.access).toEqual([repo('alice/app', 'pull', 'push'), repo('team/x', 'pull', 'push')]);
    expect(answer.refresh_token).toBeUndefined();
  });

  it('grants the catalog to a catalog rule and gives every token its own jti', async () => {
    const ask = { authorization: basic('bob', 'bob-pw'), scopes: ['registry:catalog:*'], offlineToken: false };
    const a = await verifyAccess((await issuer.tokenFromGet(ask)).token);
    const b = await verifyAccess((await issuer.tokenFromGet(ask)).token);
    expect(a.access).toEqual([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    expect(a.jti).not.toBe(b.jti);
  });

  it('issues a token with no access rather than an error for a request beyond the rules', async () => {
    const answer = await issuer.tokenFromGet({ authorization: basic('bob', 'bob-pw'), scopes: ['repository:alice/app:push'], offlineToken: false });
    expect((await verifyAccess(answer.token)).access).toEqual([]);
    expect(answer.scope).toBe('');
  });

  it('refuses a wrong password and an unknown user with the same 401', async () => {
    const ask = (authorization: string) => issuer.tokenFromGet({ authorization, scopes: ['repository:public/a:pull'], offlineToken: true });
    await expectUnauthorized(ask(basic('alice', 'wrong')), 'invalid username or password');
    await expectUnauthorized(ask(basic('mallory', 'alice-pw')), 'invalid username or password');
    await expectUnauthorized(ask(basic('alice', '')), 'invalid username or password');
  });

  it.each([
    'Bearer abc',
    'Basic',
    'Basic !!!!',
    `Basic ${Buffer.from('no-colon').toString('base64')}`,
    `Basic ${Buffer.from(':pw').toString('base64')}`,
    `Digest ${Buffer.from('alice:alice-pw').toString('base64')}`,
  ])('refuses the malformed Authorization header %j with 401', async (authorization) => {
    await expectUnauthorized(
      issuer.tokenFromGet({ authorization, scopes: [], offlineToken: false }),
      'malformed Authorization header: expected Basic credentials',
    );
  });

  it('returns a refresh token for offline_token=true with credentials', async () => {
    const answer = await issuer.tokenFromGet({ authorization: basic('alice', 'alice-pw'), scopes: [], offlineToken: true });
    expect(typeof answer.refresh_token).toBe('string');
    const refreshed = await issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: answer.refresh_token ?? '', scope: 'repository:alice/x:pull' });
    expect(await verifyAccess(refreshed.token)).toMatchObject({ sub: 'alice', access: [repo('alice/x', 'pull')] });
  });

  it('refuses another service, an account other than the user, and bad scopes with NAME_INVALID', async () => {
    const good = { authorization: basic('alice', 'alice-pw'), scopes: [], offlineToken: false };
    await expectCode(issuer.tokenFromGet({ ...good, service: 'other.registry' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromGet({ ...good, account: 'bob' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromGet({ ...good, authorization: undefined, account: 'alice' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromGet({ ...good, scopes: ['repository:a:pull;push'] }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromGet({ ...good, scopes: ['repository:A:pull'] }), 'NAME_INVALID');
  });
});

describe('POST /token', () => {
  it('grants a password grant, with a refresh token only for access_type=offline', async () => {
    const online = await issuer.tokenFromForm({
      grant_type: 'password', username: 'alice', password: 'alice-pw', service: SERVICE, client_id: 'containerd-client',
      scope: 'repository:alice/app:pull,push repository:public/x:pull',
    });
    expect(online.refresh_token).toBeUndefined();
    expect((await verifyAccess(online.access_token)).access).toEqual([repo('alice/app', 'pull', 'push'), repo('public/x', 'pull')]);
    const offline = await issuer.tokenFromForm({ grant_type: 'password', username: 'alice', password: 'alice-pw', access_type: 'offline' });
    expect(typeof offline.refresh_token).toBe('string');
    expect((await verifyAccess(offline.token)).access).toEqual([]);
  });

  it('accepts a repeated scope field', async () => {
    const answer = await issuer.tokenFromForm({
      grant_type: 'password', username: 'alice', password: 'alice-pw',
      scope: ['repository:alice/a:pull', 'repository:alice/b:push'],
    });
    expect((await verifyAccess(answer.token)).access).toEqual([repo('alice/a', 'pull'), repo('alice/b', 'push')]);
  });

  it('refuses wrong or missing credentials with 401', async () => {
    await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'password', username: 'alice', password: 'nope' }), 'invalid username or password');
    await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'password', username: 'ghost', password: 'nope' }), 'invalid username or password');
    await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'password', username: 'alice' }), 'invalid username or password');
    await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'password' }), 'invalid username or password');
  });

  it('refuses malformed requests', async () => {
    await expectCode(issuer.tokenFromForm({ username: 'alice', password: 'alice-pw' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromForm({ grant_type: 'client_credentials' }), 'UNSUPPORTED');
    await expectCode(issuer.tokenFromForm({ grant_type: 'authorization_code', code: 'x' }), 'UNSUPPORTED');
    await expectCode(issuer.tokenFromForm({ grant_type: ['password', 'password'], username: 'alice', password: 'alice-pw' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromForm({ grant_type: 'password', username: 'alice', password: 'alice-pw', service: 'elsewhere' }), 'NAME_INVALID');
    await expectCode(issuer.tokenFromForm({ grant_type: 'password', username: 'alice', password: 'alice-pw', scope: 'repository::pull' }), 'NAME_INVALID');
  });

  describe('refresh_token grant', () => {
    let refresh: string;
    beforeAll(async () => {
      clock = START;
      refresh = (await issuer.tokenFromForm({ grant_type: 'password', username: 'alice', password: 'alice-pw', access_type: 'offline' })).refresh_token ?? '';
    });

    it('issues access tokens for the refresh token\'s subject, for any scope the rules allow', async () => {
      clock = START + 7 * 24 * 3600 * 1000;
      try {
        const answer = await issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh, service: SERVICE, scope: 'repository:alice/z:delete repository:bob/z:pull' });
        expect(answer.refresh_token).toBeUndefined();
        const claims = await verifyAccess(answer.token);
        expect(claims).toMatchObject({ sub: 'alice', access: [repo('alice/z', 'delete')] });
        const again = await issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh, access_type: 'offline' });
        expect(again.refresh_token).toBe(refresh);
      } finally {
        clock = START;
      }
    });

    it('is a JWT with the refresh audience and typ, no access claim, and fails as an access token', async () => {
      expect(decodeProtectedHeader(refresh)).toEqual({ alg: 'ES256', kid: key.kid, typ: 'berth-refresh+jwt' });
      const { payload } = await jwtVerify(refresh, createLocalJWKSet(issuer.jwks()), { currentDate: new Date(clock) });
      expect(payload).toMatchObject({ iss: ISSUER, sub: 'alice', aud: `${SERVICE}#refresh` });
      expect(payload.access).toBeUndefined();
      expect(payload.exp).toBe(START / 1000 + 30 * 24 * 3600);
      await expect(verifyAccess(refresh)).rejects.toThrow(/aud/);
    });

    it('refuses an access token used as a refresh token', async () => {
      const access = (await issuer.tokenFromGet({ authorization: basic('alice', 'alice-pw'), scopes: [], offlineToken: false })).token;
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: access }), 'invalid or expired refresh token');
    });

    it('refuses an expired refresh token', async () => {
      clock = START + 30 * 24 * 3600 * 1000 + 1000;
      try {
        await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh }), 'invalid or expired refresh token');
      } finally {
        clock = START;
      }
    });

    it('refuses a refresh token whose user is gone from the htpasswd file', async () => {
      const without = make({ users: parseHtpasswd(`bob:${hashSync('bob-pw', 4)}\n`, 'test') });
      await expectUnauthorized(without.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh }), 'invalid or expired refresh token');
    });

    it('refuses a refresh token for another service, another issuer or another key, and a tampered one', async () => {
      const otherService = make({ service: 'other.service' });
      await expectUnauthorized(otherService.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh }), 'invalid or expired refresh token');
      const otherIssuer = make({ issuer: 'someone-else' });
      await expect(otherIssuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh })).rejects.toThrow(UnauthorizedError);
      const otherKey = make({ key: await loadOrCreateSigningKey({ path: undefined }) });
      await expectUnauthorized(otherKey.tokenFromForm({ grant_type: 'refresh_token', refresh_token: refresh }), 'invalid or expired refresh token');
      const [h, p, s] = refresh.split('.');
      const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p ?? '', 'base64url').toString()), sub: 'bob' })).toString('base64url');
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: `${h}.${forgedPayload}.${s}` }), 'invalid or expired refresh token');
      const unsigned = `${Buffer.from('{"alg":"none","typ":"berth-refresh+jwt"}').toString('base64url')}.${p}.`;
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: unsigned }), 'invalid or expired refresh token');
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: '' }), 'invalid or expired refresh token');
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token' }), 'invalid or expired refresh token');
    });

    it('refuses a refresh token without a subject even when properly signed', async () => {
      const iat = Math.floor(clock / 1000);
      const noSub = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'berth-refresh+jwt' })
        .setIssuer(ISSUER).setAudience(`${SERVICE}#refresh`).setIssuedAt(iat).setExpirationTime(iat + 60)
        .sign(key.privateKey);
      await expectUnauthorized(issuer.tokenFromForm({ grant_type: 'refresh_token', refresh_token: noSub }), 'invalid or expired refresh token');
    });
  });
});

describe('createIssuer', () => {
  it('uses the configured lifetime and refuses one under 60 s', async () => {
    const long = make({ ttlSeconds: 900 });
    const answer = await long.tokenFromGet({ authorization: undefined, scopes: [], offlineToken: false });
    expect(answer.expires_in).toBe(900);
    expect((await verifyAccess(answer.token, long)).exp).toBe(START / 1000 + 900);
    expect(() => make({ ttlSeconds: 59 })).toThrow(/at least 60/);
    expect(() => make({ ttlSeconds: 600, refreshTtlSeconds: 300 })).toThrow(/refreshTtlSeconds/);
  });

  it('publishes the public key only', () => {
    const { keys } = issuer.jwks();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toEqual(key.publicJwk);
    expect(keys[0]?.d).toBeUndefined();
  });

  it('makes access tokens that expire', async () => {
    const answer = await issuer.tokenFromGet({ authorization: undefined, scopes: [], offlineToken: false });
    clock = START + 301_000;
    try {
      await expect(verifyAccess(answer.token)).rejects.toThrow(/exp/);
    } finally {
      clock = START;
    }
  });
});
