/**
 * The `auth` section: registry:2's `token` and `htpasswd` controllers, and Berth's `builtin` token
 * issuer. Exactly one may be configured; none means an open registry.
 */
import {
  ConfigError, Lit, type Raw, type RawMap, describe, lookup, readBool, readDuration, readString, readStringList, stringList,
} from './raw.js';
import { type AccessRule, validateRules } from '../auth/rules.js';
import type { AuthConfig, BuiltinAuthConfig, TokenAuthConfig } from './schema.js';

const MODES = ['token', 'htpasswd', 'builtin'] as const;
const DEFAULT_TOKEN_TTL_MS = 5 * 60_000;

/** Reads `auth`; undefined when it is absent or empty. */
export function readAuth(root: RawMap): AuthConfig | undefined {
  const configured = MODES.filter((m) => {
    const raw = lookup(root, `auth.${m}`);
    return raw !== undefined;
  });
  if (configured.length === 0) return undefined;
  if (configured.length > 1) throw new ConfigError('auth', `configure one of token, htpasswd or builtin, not ${configured.join(' and ')}`);
  switch (configured[0]) {
    case 'token':
      return readToken(root);
    case 'htpasswd':
      return {
        kind: 'htpasswd',
        realm: readString(root, 'auth.htpasswd.realm') || 'Berth',
        path: required(root, 'auth.htpasswd.path'),
      };
    default:
      return readBuiltin(root);
  }
}

function readToken(root: RawMap): TokenAuthConfig {
  const rootcertbundle = readString(root, 'auth.token.rootcertbundle') || undefined;
  const jwks = readString(root, 'auth.token.jwks') || undefined;
  if (rootcertbundle === undefined && jwks === undefined) {
    throw new ConfigError('auth.token', 'needs rootcertbundle or jwks: the keys that may sign tokens');
  }
  return {
    kind: 'token',
    realm: readUrl(root, 'auth.token.realm', true),
    service: required(root, 'auth.token.service'),
    issuer: required(root, 'auth.token.issuer'),
    rootcertbundle,
    jwks,
    autoredirect: readBool(root, 'auth.token.autoredirect', false),
    signingalgorithms: readStringList(root, 'auth.token.signingalgorithms'),
  };
}

function readBuiltin(root: RawMap): BuiltinAuthConfig {
  const groups = readGroups(root, 'auth.builtin.groups');
  const rules = readRules(root, 'auth.builtin.rules', groups);
  return {
    kind: 'builtin',
    service: readString(root, 'auth.builtin.service') || 'berth',
    issuer: readString(root, 'auth.builtin.issuer') || 'berth',
    realm: readUrl(root, 'auth.builtin.realm', false),
    htpasswd: required(root, 'auth.builtin.htpasswd'),
    signingkey: readString(root, 'auth.builtin.signingkey') || undefined,
    tokenttlMs: readTokenTtl(root, 'auth.builtin.tokenttl'),
    groups,
    rules,
  };
}

/** The token spec asks for tokens that live at least 60 seconds. */
function readTokenTtl(root: RawMap, key: string): number {
  const ms = readDuration(root, key, DEFAULT_TOKEN_TTL_MS, { positive: true });
  if (ms < 60_000) throw new ConfigError(key, `must be at least 60s, got ${ms / 1000}s`);
  return ms;
}

function required(root: RawMap, key: string): string {
  const value = readString(root, key);
  if (value === undefined || value === '') throw new ConfigError(key, 'required');
  return value;
}

/** An absolute http(s) URL (a realm clients are sent to). */
function readUrl(root: RawMap, key: string, isRequired: true): string;
function readUrl(root: RawMap, key: string, isRequired: false): string | undefined;
function readUrl(root: RawMap, key: string, isRequired: boolean): string | undefined {
  const value = isRequired ? required(root, key) : readString(root, key) || undefined;
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, `expected an absolute http(s) URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(key, `expected an absolute http(s) URL, got ${JSON.stringify(value)}`);
  }
  return value;
}

function readGroups(root: RawMap, key: string): Record<string, string[]> {
  const raw = lookup(root, key);
  if (raw === undefined) return {};
  if (!(raw instanceof Map)) throw new ConfigError(key, `expected a mapping of group names to user lists, got ${describe(raw)}`);
  const groups: Record<string, string[]> = {};
  for (const [name, members] of raw) groups[name] = stringList(members, `${key}.${name}`);
  return groups;
}

function readRules(root: RawMap, key: string, groups: Record<string, string[]>): AccessRule[] {
  const raw = lookup(root, key);
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError(key, `expected a list of rules, got ${describe(raw)}`);
  try {
    return validateRules(raw.map(toPlain), groups);
  } catch (err) {
    // validateRules names the rule as `auth rules[i]: …`; say it with the config key instead.
    const m = /^auth rules(\[\d+\])?: (.*)$/.exec((err as Error).message);
    throw new ConfigError(`${key}${m?.[1] ?? ''}`, m?.[2] ?? (err as Error).message, { cause: err });
  }
}

/** The raw tree as plain values, for validators that take JSON-like input. */
function toPlain(raw: Raw): unknown {
  if (raw instanceof Lit) return raw.value;
  if (Array.isArray(raw)) return raw.map(toPlain);
  return Object.fromEntries([...raw].map(([k, v]) => [k, toPlain(v)]));
}
