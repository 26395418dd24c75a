import { describe, expect, it } from 'vitest';
import { isRegistryError } from '../errors.js';
import type { AccessItem } from './access.js';
import { type AccessRule, globMatches, grantFor, parseScopes, rulesAllowPull, validateRules } from './rules.js';

const repo = (name: string, ...actions: string[]): AccessItem => ({ type: 'repository', name, actions });

describe('globMatches', () => {
  const cases: [string, string, boolean][] = [
    ['library/*', 'library/alpine', true],
    ['library/*', 'library/a/b', false],
    ['library/*', 'library', false],
    ['library/*', 'libraryx/alpine', false],
    ['team/**', 'team/a', true],
    ['team/**', 'team/a/b/c', true],
    ['team/**', 'team', false],
    ['team/**', 'teams/a', false],
    ['**', 'a', true],
    ['**', 'a/b/c', true],
    ['*', 'a', true],
    ['*', 'a/b', false],
    ['*/app', 'x/app', true],
    ['*/app', 'x/y/app', false],
    ['**/app', 'x/y/app', true],
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['exact/name', 'exact/name', true],
    ['exact/name', 'exact/name2', false],
    ['pre-*', 'pre-fix', true],
  ];
  it.each(cases)('%s vs %s → %s', (glob, name, expected) => {
    expect(globMatches(glob, name)).toBe(expected);
  });
});

describe('grantFor', () => {
  const groups = { devs: ['dora', 'dan'], ops: ['olga'] };
  const rules: AccessRule[] = [
    { repositories: ['library/*'], anonymous: true, actions: ['pull'] },
    { repositories: ['team/**'], groups: ['devs'], actions: ['pull', 'push'] },
    { repositories: ['**'], groups: ['ops'], actions: ['*'], catalog: true },
    { repositories: ['alice/**'], users: ['alice'], actions: ['pull', 'push', 'delete'] },
    { repositories: ['shared/*'], users: ['*'], actions: ['pull'] },
  ];
  const grant = (subject: string | undefined, ...items: AccessItem[]): AccessItem[] => grantFor({ subject }, items, rules, groups);

  it('gives anonymous callers only the anonymous rules', () => {
    expect(grant(undefined, repo('library/alpine', 'pull', 'push'))).toEqual([repo('library/alpine', 'pull')]);
    expect(grant(undefined, repo('team/x', 'pull'))).toEqual([]);
    expect(grant(undefined, repo('shared/x', 'pull'))).toEqual([]);
    expect(grant('', repo('shared/x', 'pull'))).toEqual([]);
  });

  it('gives signed-in users the anonymous rules too, and users: * rules', () => {
    expect(grant('zed', repo('library/alpine', 'pull'), repo('shared/x', 'pull', 'push'))).toEqual([
      repo('library/alpine', 'pull'),
      repo('shared/x', 'pull'),
    ]);
  });

  it('resolves groups', () => {
    expect(grant('dora', repo('team/a/b', 'pull', 'push', 'delete'))).toEqual([repo('team/a/b', 'pull', 'push')]);
    expect(grant('olga', repo('team/a/b', 'delete'))).toEqual([repo('team/a/b', 'delete')]);
    expect(grant('alice', repo('team/a/b', 'pull'))).toEqual([]);
  });

  it('grants the intersection per item and drops items with nothing granted', () => {
    expect(grant('alice', repo('alice/app', 'push', 'pull'), repo('bob/app', 'pull'), repo('library/x', 'delete', 'pull'))).toEqual([
      repo('alice/app', 'push', 'pull'),
      repo('library/x', 'pull'),
    ]);
  });

  it('unions the actions of every matching rule', () => {
    const r: AccessRule[] = [
      { repositories: ['a/*'], users: ['u'], actions: ['pull'] },
      { repositories: ['a/b'], users: ['u'], actions: ['push'] },
    ];
    expect(grantFor({ subject: 'u' }, [repo('a/b', 'pull', 'push')], r, {})).toEqual([repo('a/b', 'pull', 'push')]);
  });

  it("expands a requested '*' to the concrete allowed actions, with '*' only when a rule gives it", () => {
    expect(grant('alice', repo('alice/app', '*'))).toEqual([repo('alice/app', 'pull', 'push', 'delete')]);
    expect(grant('olga', repo('any/thing', '*'))).toEqual([repo('any/thing', 'pull', 'push', 'delete', '*')]);
    expect(grant(undefined, repo('library/a', '*'))).toEqual([repo('library/a', 'pull')]);
    expect(grant(undefined, repo('nope/a', '*'))).toEqual([]);
  });

  it("lets a rule's '*' cover known actions only", () => {
    expect(grant('olga', repo('x', 'pull', 'frobnicate'))).toEqual([repo('x', 'pull')]);
    expect(grant('olga', repo('x', 'frobnicate'))).toEqual([]);
  });

  it('grants the catalog only by a catalog rule', () => {
    const catalog: AccessItem = { type: 'registry', name: 'catalog', actions: ['*'] };
    expect(grant('olga', catalog)).toEqual([catalog]);
    expect(grant('alice', catalog)).toEqual([]);
    expect(grant(undefined, catalog)).toEqual([]);
    expect(grant('olga', { type: 'registry', name: 'other', actions: ['*'] })).toEqual([]);
  });

  it('grants nothing for unknown resource types', () => {
    expect(grant('olga', { type: 'plugin', name: 'x', actions: ['pull'] })).toEqual([]);
  });

  it('answers whether a caller may pull a repository (rulesAllowPull)', () => {
    expect(rulesAllowPull({ subject: 'dora' }, 'team/a/b', rules, groups)).toBe(true);
    expect(rulesAllowPull({ subject: 'dora' }, 'alice/x', rules, groups)).toBe(false);
    expect(rulesAllowPull({ subject: undefined }, 'library/alpine', rules, groups)).toBe(true);
    expect(rulesAllowPull({ subject: undefined }, 'shared/x', rules, groups)).toBe(false);
    expect(rulesAllowPull({ subject: 'olga' }, 'anything/at/all', rules, groups)).toBe(true);
  });

  it('never lets an unknown group or a non-member in', () => {
    const r: AccessRule[] = [{ repositories: ['**'], groups: ['ghosts', 'constructor'], actions: ['*'] }];
    expect(grantFor({ subject: 'u' }, [repo('a', 'pull')], r, {})).toEqual([]);
  });
});

describe('parseScopes', () => {
  const valid: [string[], AccessItem[]][] = [
    [['repository:samalba/my-app:pull,push'], [repo('samalba/my-app', 'pull', 'push')]],
    [['registry:catalog:*'], [{ type: 'registry', name: 'catalog', actions: ['*'] }]],
    [['repository:a:pull', 'repository:b:push'], [repo('a', 'pull'), repo('b', 'push')]],
    [['repository:a:pull repository:b:push'], [repo('a', 'pull'), repo('b', 'push')]],
    [['repository:a:pull repository:a:push,pull'], [repo('a', 'pull', 'push')]],
    [['repository(plugin):a:pull'], [repo('a', 'pull')]],
    [['repository:a:*'], [repo('a', '*')]],
    [['repository:a-b_c.d/e__f:delete'], [repo('a-b_c.d/e__f', 'delete')]],
    [['  repository:a:pull  '], [repo('a', 'pull')]],
    [[''], []],
    [[], []],
    [['custom:thing:read'], [{ type: 'custom', name: 'thing', actions: ['read'] }]],
  ];
  it.each(valid)('parses %j', (input, expected) => {
    expect(parseScopes(input)).toEqual(expected);
  });

  const invalid: string[] = [
    'repository:a:pull;push',
    'repository::pull',
    'repository:UPPER:pull',
    'repository:a/../b:pull',
    'repository:a/./b:pull',
    'repository:/a:pull',
    'repository:a/:pull',
    'repository:a//b:pull',
    'repository:host:5000/x:pull',
    'repository:a:b:pull',
    'repository:a',
    'repository',
    'repository:a:',
    'repository:a:pull,',
    'repository:a:,pull',
    'repository:a:PULL',
    'repository:a:pull\tpush',
    'Repository:a:pull',
    ':a:pull',
    'repo sitory:a:pull',
    'repository(:a:pull',
    'repository:a%2fb:pull',
    `repository:${'a'.repeat(256)}:pull`,
    'registry:cat/alog:*',
    'repository:a:pu*ll',
  ];
  it.each(invalid)('refuses %j with NAME_INVALID', (scope) => {
    let caught: unknown;
    try {
      parseScopes([scope]);
    } catch (err) {
      caught = err;
    }
    expect(isRegistryError(caught, 'NAME_INVALID')).toBe(true);
    expect((caught as Error).message).toMatch(/^invalid scope: /);
  });
});

describe('validateRules', () => {
  it('accepts and returns good rules', () => {
    const rules = [
      { repositories: ['library/*'], anonymous: true, actions: ['pull'] },
      { repositories: ['team/**'], groups: ['devs'], users: ['alice'], actions: ['*'] },
      { users: ['admin'], catalog: true },
    ];
    expect(validateRules(rules, { devs: ['d'] })).toEqual([
      rules[0],
      rules[1],
      { repositories: [], actions: [], users: ['admin'], catalog: true },
    ]);
  });

  const bad: [unknown, RegExp][] = [
    ['nope', /^auth rules: expected a list/],
    [[null], /^auth rules\[0\]: expected an object/],
    [[{ repositories: ['a'], users: ['u'], actions: ['pull'], color: 'red' }], /^auth rules\[0\]: unknown key "color"/],
    [[{ repositories: ['A/*'], users: ['u'], actions: ['pull'] }], /repositories: invalid pattern "A\/\*"/],
    [[{ repositories: ['a/***'], users: ['u'], actions: ['pull'] }], /invalid pattern/],
    [[{ repositories: 'a', users: ['u'], actions: ['pull'] }], /repositories: expected a list/],
    [[{ repositories: ['a'], users: ['u'], actions: ['read'] }], /actions: unknown action "read"/],
    [[{ repositories: ['a'], users: [''], actions: ['pull'] }], /users: expected a list of non-empty strings/],
    [[{ repositories: ['a'], users: ['u'], actions: ['pull'], anonymous: 'yes' }], /anonymous: expected true or false/],
    [[{ repositories: ['a'], actions: ['pull'] }], /applies to nobody/],
    [[{ repositories: ['a'], anonymous: false, actions: ['pull'] }], /applies to nobody/],
    [[{ users: ['u'] }], /grants nothing/],
    [[{ repositories: ['a'], users: ['u'], catalog: true }], /repositories and actions must be given together/],
    [[{ repositories: ['a'], groups: ['ghosts'], actions: ['pull'] }], /groups: unknown group "ghosts"/],
  ];
  it.each(bad)('refuses %j', (rules, message) => {
    expect(() => validateRules(rules, {})).toThrow(message);
  });

  it('names the index of the bad rule', () => {
    const rules = [
      { repositories: ['a'], users: ['u'], actions: ['pull'] },
      { repositories: ['b'], users: ['u'], actions: ['pul'] },
    ];
    expect(() => validateRules(rules)).toThrow(/^auth rules\[1\]: actions: unknown action "pul"/);
  });

  it('does not check groups when no group map is given', () => {
    expect(() => validateRules([{ repositories: ['a'], groups: ['g'], actions: ['pull'] }])).not.toThrow();
  });
});
