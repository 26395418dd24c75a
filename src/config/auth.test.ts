import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './parse.js';
import { ConfigError } from './raw.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-auth-config-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const BASE = 'version: 0.1\nstorage:\n  inmemory: {}\n';

async function load(auth: string, env: Record<string, string> = {}): Promise<unknown> {
  const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yml`);
  await writeFile(path, `${BASE}auth:\n${auth}`);
  return (await loadConfig({ file: path, env, warn: () => undefined })).auth;
}

async function errorOf(auth: string): Promise<string> {
  try {
    await load(auth);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('auth config', () => {
  it('reads registry:2 token auth', async () => {
    const auth = await load(
      '  token:\n    realm: https://auth.example.com/token\n    service: registry.example.com\n' +
        '    issuer: auth-server\n    rootcertbundle: /certs/bundle.pem\n    signingalgorithms: [RS256, ES256]\n',
    );
    expect(auth).toEqual({
      kind: 'token',
      realm: 'https://auth.example.com/token',
      service: 'registry.example.com',
      issuer: 'auth-server',
      rootcertbundle: '/certs/bundle.pem',
      jwks: undefined,
      autoredirect: false,
      signingalgorithms: ['RS256', 'ES256'],
    });
  });

  it('reads htpasswd auth, also from the environment alone', async () => {
    expect(await load('  htpasswd:\n    realm: basic-realm\n    path: /auth/htpasswd\n')).toEqual({
      kind: 'htpasswd',
      realm: 'basic-realm',
      path: '/auth/htpasswd',
    });
    const fromEnv = await loadConfig({
      file: undefined,
      env: { REGISTRY_AUTH_HTPASSWD_REALM: 'r', REGISTRY_AUTH_HTPASSWD_PATH: '/p' },
      warn: () => undefined,
    });
    expect(fromEnv.auth).toEqual({ kind: 'htpasswd', realm: 'r', path: '/p' });
  });

  it('reads the built-in issuer with groups and rules, and defaults', async () => {
    const auth = await load(
      '  builtin:\n    htpasswd: /etc/berth/htpasswd\n    tokenttl: 10m\n' +
        '    groups:\n      admins: [alice]\n' +
        '    rules:\n      - repositories: ["**"]\n        groups: [admins]\n        actions: ["*"]\n        catalog: true\n' +
        '      - repositories: [public/*]\n        anonymous: true\n        actions: [pull]\n',
    );
    expect(auth).toEqual({
      kind: 'builtin',
      service: 'berth',
      issuer: 'berth',
      realm: undefined,
      htpasswd: '/etc/berth/htpasswd',
      signingkey: undefined,
      tokenttlMs: 600_000,
      groups: { admins: ['alice'] },
      rules: [
        { repositories: ['**'], groups: ['admins'], actions: ['*'], catalog: true },
        { repositories: ['public/*'], anonymous: true, actions: ['pull'] },
      ],
    });
  });

  it.each([
    ['two modes', '  htpasswd: {realm: r, path: /p}\n  builtin: {htpasswd: /p}\n', /^config: auth: configure one of/],
    ['token realm not a URL', '  token: {realm: not-a-url, service: s, issuer: i, rootcertbundle: /b}\n', /^config: auth.token.realm: expected an absolute http\(s\) URL/],
    ['token realm of another scheme', '  token: {realm: "ftp://x/token", service: s, issuer: i, jwks: /j}\n', /^config: auth.token.realm:/],
    ['token without keys', '  token: {realm: "https://a/t", service: s, issuer: i}\n', /^config: auth.token: needs rootcertbundle or jwks/],
    ['token without service', '  token: {realm: "https://a/t", issuer: i, jwks: /j}\n', /^config: auth.token.service: required$/],
    ['htpasswd without path', '  htpasswd: {realm: r}\n', /^config: auth.htpasswd.path: required$/],
    ['builtin without htpasswd', '  builtin: {service: s}\n', /^config: auth.builtin.htpasswd: required$/],
    ['rule with an unknown action', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repositories: [a], actions: [write]}\n', /^config: auth.builtin.rules\[0\]: actions: unknown action "write"/],
    ['rule with an unknown key', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repos: [a], actions: [pull]}\n', /^config: auth.builtin.rules\[0\]: unknown key "repos"$/],
    ['rule naming an unknown group', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repositories: [a], groups: [ops], actions: [pull]}\n', /^config: auth.builtin.rules\[0\]: groups: unknown group "ops"/],
    ['rules not a list', '  builtin:\n    htpasswd: /p\n    rules: {a: b}\n', /^config: auth.builtin.rules: expected a list of rules/],
    ['a rule for nobody', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repositories: [a], actions: [pull]}\n', /^config: auth.builtin.rules\[0\]: applies to nobody/],
    ['a bad repository glob', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repositories: ["A/*"], anonymous: true, actions: [pull]}\n', /^config: auth.builtin.rules\[0\]: repositories: invalid pattern/],
    ['bad token ttl', '  builtin:\n    htpasswd: /p\n    tokenttl: forever\n', /^config: auth.builtin.tokenttl: expected a duration/],
    ['token ttl under a minute', '  builtin:\n    htpasswd: /p\n    tokenttl: 30s\n', /^config: auth.builtin.tokenttl: must be at least 60s/],
    ['a rule naming a group such as constructor', '  builtin:\n    htpasswd: /p\n    rules:\n      - {repositories: [a], groups: [constructor], actions: [pull]}\n', /^config: auth.builtin.rules\[0\]: groups: unknown group "constructor"/],
  ])('refuses %s with one line naming the key', async (_name, auth, pattern) => {
    const message = await errorOf(auth);
    expect(message).toMatch(pattern);
    expect(message).not.toContain('\n');
  });
});
