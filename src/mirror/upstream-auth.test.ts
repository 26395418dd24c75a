import { describe, expect, it } from 'vitest';
import { parseChallenge } from './upstream-auth.js';

describe('parseChallenge', () => {
  it.each([
    ['Docker Hub', 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
    ['Basic with a realm', 'Basic realm="Registry Realm"', { scheme: 'basic', params: { realm: 'Registry Realm' } }],
    ['case and spaces', '  bearer Realm = "http://a/t" , service=x', { scheme: 'bearer', params: { realm: 'http://a/t', service: 'x' } }],
    ['escaped quotes', 'Bearer realm="http://a/t",error="say \\"no\\""', { scheme: 'bearer', params: { realm: 'http://a/t', error: 'say "no"' } }],
  ])('reads %s', (_name, header, expected) => {
    expect(parseChallenge(header)).toEqual(expected);
  });

  it.each([[null], [''], ['Negotiate abc'], ['Digest realm="x"']])('ignores %j', (header) => {
    expect(parseChallenge(header)).toBeUndefined();
  });
});
