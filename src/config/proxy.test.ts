import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFiles, sectionLoader } from './suite/helpers.js';

const files = configFiles('berth-proxy-config-');
beforeAll(files.open);
afterAll(files.close);
const { load, errorOf } = sectionLoader(files, 'proxy');

describe('the proxy section', () => {
  it("reads registry:2's form with its defaults and REGISTRY_PROXY_* overrides", async () => {
    const { proxy, warnings } = await load('proxy:\n  remoteurl: https://registry-1.docker.io/\n  username: u\n  password: p\n');
    expect(warnings).toEqual([]);
    expect(proxy).toEqual({
      form: 'remoteurl',
      budgetBytes: undefined,
      upstreams: [{
        prefix: undefined, remoteurl: 'https://registry-1.docker.io', default: true, hosts: [], username: 'u', password: 'p',
        credentialsfile: undefined, ttlMs: 168 * 3_600_000, revalidateMs: 30_000,
      }],
    });
    const env = await load('', { REGISTRY_PROXY_REMOTEURL: 'http://127.0.0.1:5001', REGISTRY_PROXY_TTL: '0', REGISTRY_PROXY_USERNAME: 'e' });
    expect(env.proxy?.upstreams[0]).toMatchObject({ remoteurl: 'http://127.0.0.1:5001', ttlMs: 0, username: 'e' });
  });

  it("reads Berth's upstreams with the issue's key names", async () => {
    const { proxy } = await load(`proxy:
  upstreams:
    - prefix: docker.io
      remoteurl: https://registry-1.docker.io
      default: true
      hosts: [docker.io, index.docker.io]
      username: u
      password: p
      ttl: 24h
      revalidate: 10s
    - prefix: ghcr.io
      remoteurl: https://ghcr.io
      credentialsfile: /etc/berth/ghcr.json
  budget: 200GiB
`);
    expect(proxy?.form).toBe('upstreams');
    expect(proxy?.budgetBytes).toBe(200 * 2 ** 30);
    expect(proxy?.upstreams).toEqual([
      {
        prefix: 'docker.io', remoteurl: 'https://registry-1.docker.io', default: true, hosts: ['docker.io', 'index.docker.io'],
        username: 'u', password: 'p', credentialsfile: undefined, ttlMs: 24 * 3_600_000, revalidateMs: 10_000,
      },
      {
        prefix: 'ghcr.io', remoteurl: 'https://ghcr.io', default: false, hosts: ['ghcr.io'], username: undefined, password: undefined,
        credentialsfile: '/etc/berth/ghcr.json', ttlMs: 168 * 3_600_000, revalidateMs: 30_000,
      },
    ]);
  });

  it('is absent without an upstream', async () => {
    expect((await load('')).proxy).toBeUndefined();
    expect((await load('proxy: {}\n')).proxy).toBeUndefined();
  });

  it.each([
    ['both forms', 'proxy:\n  remoteurl: https://a.example\n  upstreams: [{prefix: a, remoteurl: https://a.example}]\n', /proxy\.remoteurl: .*proxy\.upstreams, not both/],
    ['a non-http url', 'proxy:\n  remoteurl: ftp://a.example\n', /proxy\.remoteurl: expected an http or https URL/],
    ['a url with credentials', 'proxy:\n  remoteurl: https://u:p@a.example\n', /proxy\.remoteurl: .*without credentials/],
    ['a missing prefix', 'proxy:\n  upstreams: [{remoteurl: https://a.example}]\n', /proxy\.upstreams\[0\]\.prefix: missing/],
    ['a bad prefix', 'proxy:\n  upstreams: [{prefix: "../x", remoteurl: https://a.example}]\n', /proxy\.upstreams\[0\]\.prefix: .* is not a repository name prefix/],
    ['nested prefixes', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example}, {prefix: a/b, remoteurl: https://b.example}]\n', /proxy\.upstreams\[1\]\.prefix: "a\/b" overlaps proxy\.upstreams\[0\]/],
    ['a repeated host', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example, hosts: [x]}, {prefix: b, remoteurl: https://b.example, hosts: [x]}]\n', /proxy\.upstreams\[1\]\.hosts: "x" also names/],
    ['two defaults', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example, default: true}, {prefix: b, remoteurl: https://b.example, default: true}]\n', /proxy\.upstreams\[1\]\.default: only one/],
    ['an unknown upstream key', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example, mirror: x}]\n', /proxy\.upstreams\[0\]\.mirror: unknown key/],
    ['a bad ttl', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example, ttl: 7d}]\n', /proxy\.upstreams\[0\]\.ttl: expected a duration/],
    ['a bad budget', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example}]\n  budget: lots\n', /proxy\.budget: expected a size/],
    ['credentials twice', 'proxy:\n  upstreams: [{prefix: a, remoteurl: https://a.example, username: u, credentialsfile: /f}]\n', /credentialsfile: give username/],
    ['a ttl without an upstream', 'proxy:\n  ttl: 1h\n', /proxy\.ttl: needs proxy\.remoteurl/],
  ])('refuses %s, naming the key', async (_name, section, message) => {
    expect(await errorOf(section)).toMatch(message);
  });
});
