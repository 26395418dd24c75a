/**
 * Access rules of the built-in token issuer, and the `scope` strings of token requests.
 *
 * A rule grants `actions` on repositories matching any of its glob patterns to the callers it names:
 * users, members of groups, `'*'` among users for every signed-in user, and `anonymous: true` for
 * everyone (a signed-in user may always do what an anonymous one may). Rules only add; a caller's
 * actions on a repository are the union over every rule that applies. A token grants, per requested
 * resource, the intersection of what was asked and what the rules allow, and leaves out resources
 * with nothing granted: the token spec answers an over-broad request with a token that holds less,
 * not with an error (docs/content/spec/auth/token.md).
 *
 * Globs: `*` matches any run of characters within one path segment, `**` any run across segments
 * (`team/**` matches `team/a` and `team/a/b`, not `team`; `**` alone matches every name).
 */
import type { AccessItem } from './access.js';
import { RegistryError } from '../errors.js';

/** One access rule from the configuration. */
export interface AccessRule {
  /** Glob patterns of repository names (see the file comment). */
  readonly repositories: readonly string[];
  /** User names; `'*'` means every signed-in user. */
  readonly users?: readonly string[];
  /** Group names, resolved through the `groups` map. */
  readonly groups?: readonly string[];
  /** Applies to every caller, with or without credentials. */
  readonly anonymous?: boolean;
  /** `pull`, `push`, `delete`, or `'*'` for all of them. */
  readonly actions: readonly string[];
  /** Also grants `registry:catalog:*` (listing every repository name). */
  readonly catalog?: boolean;
}

/** Group name → user names. */
export type Groups = Readonly<Record<string, readonly string[]>>;

/** The repository actions a rule can grant, in the order a token lists them. */
export const REPOSITORY_ACTIONS: readonly string[] = ['pull', 'push', 'delete'];
const RULE_ACTIONS: ReadonlySet<string> = new Set([...REPOSITORY_ACTIONS, '*']);

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const MAX_NAME_LENGTH = 255;
const TYPE_PATTERN = /^([a-z0-9]+)(?:\([a-z0-9]+\))?$/;
const ACTION_PATTERN = /^(?:[a-z]+|\*)$/;
const GLOB_PATTERN = /^[a-z0-9._\-/*]+$/;

/**
 * The access items of a token request's `scope` values: each value holds one or more
 * `type:name:action[,action…]` scopes separated by spaces (GET repeats `scope`; POST puts several in
 * one). Items with the same type and name are merged. A deprecated resource class
 * (`repository(plugin)`) is dropped, as registry:2 treats it as the plain type. Well-formed scopes of
 * types or actions the rules never grant are kept here and simply granted nothing by `grantFor`.
 *
 * Repository names must follow DESIGN.md §4's grammar; a registry host prefix (`host:5000/x`) is not a
 * name here, since a token for this registry never needs one.
 * @throws RegistryError NAME_INVALID (400) for a malformed scope: not three `:`-separated parts, an
 * odd type, an empty action or one with characters other than `a-z` or a lone `*`, or a repository
 * name outside the grammar. NAME_INVALID is the one 400 code in OciCode that fits a bad request
 * parameter; its message says "invalid scope".
 */
export function parseScopes(scopes: readonly string[]): AccessItem[] {
  const merged = new Map<string, { type: string; name: string; actions: string[] }>();
  for (const value of scopes) {
    for (const scope of value.split(' ')) {
      if (scope === '') continue;
      const item = parseScope(scope);
      const key = `${item.type}:${item.name}`;
      const existing = merged.get(key);
      if (existing === undefined) merged.set(key, item);
      else for (const a of item.actions) if (!existing.actions.includes(a)) existing.actions.push(a);
    }
  }
  return [...merged.values()];
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) throw invalidScope(scope, 'expected type:name:actions');
  const typeMatch = TYPE_PATTERN.exec(scope.slice(0, first));
  if (typeMatch?.[1] === undefined) throw invalidScope(scope, 'invalid resource type');
  const type = typeMatch[1];
  const name = scope.slice(first + 1, last);
  const actions = [...new Set(scope.slice(last + 1).split(','))];
  if (!actions.every((a) => ACTION_PATTERN.test(a))) throw invalidScope(scope, 'invalid action list');
  if (type === 'repository' && !isRepositoryName(name)) throw invalidScope(scope, 'invalid repository name');
  if (type !== 'repository' && !/^[a-z0-9]+$/.test(name)) throw invalidScope(scope, 'invalid resource name');
  return { type, name, actions };
}

function invalidScope(scope: string, reason: string): RegistryError {
  return new RegistryError('NAME_INVALID', `invalid scope: ${reason}`, { scope: scope.slice(0, 300) });
}

function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

/**
 * What a caller gets of `requested` under `rules`: per item, the requested actions the applicable
 * rules allow. A rule's `'*'` allows pull, push and delete (never actions Berth does not know). A
 * request for `'*'` yields the concrete allowed actions, plus `'*'` itself only when a rule gives
 * `'*'`. `registry:catalog` is granted (any requested actions) by a rule with `catalog: true`.
 * Items with nothing granted are left out. Never throws.
 */
export function grantFor(
  caller: { readonly subject: string | undefined },
  requested: readonly AccessItem[],
  rules: readonly AccessRule[],
  groups: Groups,
): AccessItem[] {
  const applicable = rules.filter((rule) => appliesTo(rule, caller.subject, groups));
  const granted: AccessItem[] = [];
  for (const item of requested) {
    const actions = grantedActions(item, applicable);
    if (actions.length > 0) granted.push({ type: item.type, name: item.name, actions });
  }
  return granted;
}

/** Whether `rules` let `caller` pull repository `name` (what a token asking for that pull would hold). */
export function rulesAllowPull(caller: { readonly subject: string | undefined }, name: string, rules: readonly AccessRule[], groups: Groups): boolean {
  return grantFor(caller, [{ type: 'repository', name, actions: ['pull'] }], rules, groups).length > 0;
}

function grantedActions(item: AccessItem, rules: readonly AccessRule[]): string[] {
  if (item.type === 'registry') {
    if (item.name === 'catalog') return rules.some((r) => r.catalog === true) ? [...item.actions] : [];
    // `registry:gc:*` (POST /berth/v1/gc): delete on every repository, i.e. a rule over `**` with delete.
    if (item.name === 'gc') return rules.some(deletesEverywhere) ? [...item.actions] : [];
    return [];
  }
  if (item.type !== 'repository') return [];
  const allowed = new Set<string>();
  for (const rule of rules) {
    if (!rule.repositories.some((glob) => globMatches(glob, item.name))) continue;
    for (const a of rule.actions) allowed.add(a);
  }
  const all = allowed.has('*');
  const out: string[] = [];
  for (const a of item.actions) {
    if (a === '*') out.push(...REPOSITORY_ACTIONS.filter((c) => all || allowed.has(c)), ...(all ? ['*'] : []));
    else if (REPOSITORY_ACTIONS.includes(a) && (all || allowed.has(a))) out.push(a);
  }
  return [...new Set(out)];
}

function deletesEverywhere(rule: AccessRule): boolean {
  return rule.repositories.includes('**') && (rule.actions.includes('*') || rule.actions.includes('delete'));
}

function appliesTo(rule: AccessRule, subject: string | undefined, groups: Groups): boolean {
  if (rule.anonymous === true) return true;
  if (subject === undefined || subject === '') return false;
  if (rule.users?.some((u) => u === subject || u === '*')) return true;
  return rule.groups?.some((g) => Object.hasOwn(groups, g) && groups[g]?.includes(subject) === true) === true;
}

const globCache = new Map<string, RegExp>();

/** Whether repository `name` matches `glob` (`*` within a segment, `**` across segments). */
export function globMatches(glob: string, name: string): boolean {
  let re = globCache.get(glob);
  if (re === undefined) {
    const body = glob
      .split('**')
      .map((part) => part.split('*').map(escapeRegExp).join('[^/]*'))
      .join('.*');
    re = new RegExp(`^${body}$`);
    globCache.set(glob, re);
  }
  return re.test(name);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Checks access rules read from the configuration and returns them typed. When `groups` is given,
 * every group a rule names must be defined there.
 * @throws Error whose message names the rule (`auth rules[2]: …`) and what is wrong: not an object,
 * `repositories` not a list of globs (lower-case name characters, `/`, `*`, `**`), `actions` not a
 * list of pull/push/delete/`*`, `users`/`groups` not lists of strings, an unknown group, unknown keys,
 * or a rule that applies to nobody (no users, groups or anonymous) or grants nothing.
 */
export function validateRules(rules: unknown, groups?: Groups): AccessRule[] {
  if (!Array.isArray(rules)) throw new Error('auth rules: expected a list of rules');
  return rules.map((rule: unknown, index) => {
    try {
      return validateRule(rule, groups);
    } catch (err) {
      throw new Error(`auth rules[${index}]: ${(err as Error).message}`);
    }
  });
}

const RULE_KEYS: ReadonlySet<string> = new Set(['repositories', 'users', 'groups', 'anonymous', 'actions', 'catalog']);

function validateRule(rule: unknown, groups: Groups | undefined): AccessRule {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new Error('expected an object');
  const r = rule as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!RULE_KEYS.has(key)) throw new Error(`unknown key ${JSON.stringify(key)}`);
  const repositories = stringList(r.repositories ?? [], 'repositories');
  for (const glob of repositories) {
    if (!GLOB_PATTERN.test(glob) || glob.includes('***')) throw new Error(`repositories: invalid pattern ${JSON.stringify(glob)}`);
  }
  const actions = stringList(r.actions ?? [], 'actions');
  for (const a of actions) if (!RULE_ACTIONS.has(a)) throw new Error(`actions: unknown action ${JSON.stringify(a)}`);
  const out: { -readonly [K in keyof AccessRule]: AccessRule[K] } = { repositories, actions };
  if (r.users !== undefined) out.users = stringList(r.users, 'users');
  if (r.groups !== undefined) out.groups = stringList(r.groups, 'groups');
  for (const g of out.groups ?? []) {
    if (groups !== undefined && !Object.hasOwn(groups, g)) throw new Error(`groups: unknown group ${JSON.stringify(g)}`);
  }
  if (r.anonymous !== undefined) out.anonymous = bool(r.anonymous, 'anonymous');
  if (r.catalog !== undefined) out.catalog = bool(r.catalog, 'catalog');
  if (!out.anonymous && (out.users ?? []).length === 0 && (out.groups ?? []).length === 0) {
    throw new Error('applies to nobody: give users, groups or anonymous: true');
  }
  const grantsRepos = repositories.length > 0 && actions.length > 0;
  if (!grantsRepos && out.catalog !== true) throw new Error('grants nothing: give repositories and actions, or catalog: true');
  if (repositories.length > 0 !== actions.length > 0) throw new Error('repositories and actions must be given together');
  return out;
}

function stringList(v: unknown, key: string): string[] {
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string' && s !== '')) {
    throw new Error(`${key}: expected a list of non-empty strings`);
  }
  return [...v];
}

function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new Error(`${key}: expected true or false`);
  return v;
}
