import { describe, expect, it } from 'vitest';
import { compileGlob, globMatcher } from './repo-glob.js';

describe('repository globs', () => {
  it.each([
    ['team/*', 'team/app', true],
    ['team/*', 'team/app/web', false],
    ['team/*', 'team', false],
    ['team/**', 'team/app/web', true],
    ['team/**', 'teamx/app', false],
    ['**', 'a/b/c', true],
    ['*', 'a/b', false],
    ['app-?', 'app-1', true],
    ['app-?', 'app-/', false],
    ['a.b', 'axb', false],
    ['a.b', 'a.b', true],
  ])('%s on %s is %s', (glob, name, expected) => {
    expect(compileGlob(glob).test(name)).toBe(expected);
  });

  it('refuses what no repository name or glob holds', () => {
    expect(() => compileGlob('')).toThrow(SyntaxError);
    expect(() => compileGlob('Team/*')).toThrow(/not a repository glob/);
    expect(() => compileGlob('a/[b]')).toThrow(SyntaxError);
  });

  it('matches any of several globs', () => {
    const m = globMatcher(['infra/*', 'tmp/**']);
    expect(['infra/a', 'tmp/a/b', 'infra/a/b'].map(m)).toEqual([true, true, false]);
  });
});
