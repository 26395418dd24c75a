/**
 * Builds the access controller (and the built-in issuer's endpoints) that the config's `auth`
 * section asks for. Files named by the config are read here, once, at start-up; a problem with one
 * is a ConfigError naming the key, so the server never starts half-protected.
 */
import { readFile } from 'node:fs/promises';
import { createBasicController } from '../auth/basic-controller.js';
import type { AccessController } from '../auth/controller.js';
import { type Htpasswd, loadHtpasswd } from '../auth/htpasswd.js';
import { createIssuer } from '../auth/issuer.js';
import { type KeyStore, loadOrCreateSigningKey } from '../auth/signing-key.js';
import { rulesAllowPull } from '../auth/rules.js';
import { createTokenController } from '../auth/token-controller.js';
import { type JsonWebKeySet, createTokenVerifier } from '../auth/token.js';
import { ConfigError } from '../config/raw.js';
import type { AuthConfig, BuiltinAuthConfig, Config, TokenAuthConfig } from '../config/schema.js';
import { type TokenHandlers, createTokenHandlers } from '../http/handlers/auth-token.js';

export interface AuthSetup {
  readonly access: AccessController | undefined;
  readonly tokenHandlers: TokenHandlers | undefined;
}

/** The token endpoint's path on this server, for the built-in issuer's default realm. */
export const TOKEN_PATH = '/auth/token';

/**
 * @param auth the config's `auth` section
 * @param defaultKey where the built-in issuer keeps its key when `auth.builtin.signingkey` is unset: a
 *   file path, a store shared by replicas (the S3 bucket), or undefined (in memory)
 * @param warn told what start-up should warn about: users that access rules or groups name and the
 *   htpasswd file lacks (such a rule grants them nothing: a typo, or a user not yet added)
 */
export async function createAuth(
  auth: AuthConfig | undefined,
  defaultKey: string | KeyStore | undefined,
  warn: (msg: string) => void = () => undefined,
): Promise<AuthSetup> {
  if (auth === undefined) return { access: undefined, tokenHandlers: undefined };
  switch (auth.kind) {
    case 'htpasswd': {
      const htpasswd = await keyed('auth.htpasswd.path', () => loadHtpasswd(auth.path));
      return { access: createBasicController({ realm: auth.realm, htpasswd }), tokenHandlers: undefined };
    }
    case 'token':
      return { access: await tokenController(auth), tokenHandlers: undefined };
    default:
      return builtin(auth, defaultKey, warn);
  }
}

async function tokenController(auth: TokenAuthConfig): Promise<AccessController> {
  const rootCertBundle = auth.rootcertbundle === undefined
    ? undefined
    : await keyed('auth.token.rootcertbundle', () => readFile(auth.rootcertbundle as string, 'utf8'));
  const jwks = auth.jwks === undefined
    ? undefined
    : await keyed('auth.token.jwks', async () => JSON.parse(await readFile(auth.jwks as string, 'utf8')) as JsonWebKeySet);
  const verifier = await keyed('auth.token', async () =>
    createTokenVerifier({
      issuer: auth.issuer,
      service: auth.service,
      ...(rootCertBundle !== undefined && { rootCertBundle }),
      ...(jwks !== undefined && { jwks }),
      ...(auth.signingalgorithms !== undefined && { signingAlgorithms: auth.signingalgorithms }),
    }),
  );
  // autoredirect (registry:2 v3): send clients to the token path on whatever host they asked.
  const realm = auth.autoredirect ? undefined : auth.realm;
  return createTokenController({ realm, realmPath: new URL(auth.realm).pathname, service: auth.service, verifier });
}

async function builtin(auth: BuiltinAuthConfig, defaultKey: string | KeyStore | undefined, warn: (msg: string) => void): Promise<AuthSetup> {
  const users = await keyed('auth.builtin.htpasswd', () => loadHtpasswd(auth.htpasswd));
  for (const msg of missingUsers(auth, users)) warn(msg);
  const keyPath = auth.signingkey ?? (typeof defaultKey === 'string' ? defaultKey : undefined);
  const store = auth.signingkey === undefined && typeof defaultKey === 'object' ? defaultKey : undefined;
  const key = await keyed('auth.builtin.signingkey', () => loadOrCreateSigningKey({ path: keyPath, ...(store && { store }) }));
  const issuer = await keyed('auth.builtin', async () =>
    createIssuer({
      issuer: auth.issuer,
      service: auth.service,
      users,
      rules: auth.rules,
      groups: auth.groups,
      key,
      ttlSeconds: Math.round(auth.tokenttlMs / 1000),
    }),
  );
  const verifier = createTokenVerifier({ issuer: auth.issuer, service: auth.service, jwks: issuer.jwks(), signingAlgorithms: [key.alg] });
  return {
    access: createTokenController({
      realm: auth.realm, realmPath: TOKEN_PATH, service: auth.service, verifier,
      // Tokens here are ours: the rules tell what their holder may pull (automatic cross-mount asks).
      mayPull: (subject, repository) => rulesAllowPull({ subject }, repository, auth.rules, auth.groups),
    }),
    tokenHandlers: createTokenHandlers(issuer),
  };
}

/**
 * The warning for Basic credentials (htpasswd, or `docker login` against the built-in issuer) sent over
 * plain HTTP to an address other hosts can reach; undefined when TLS is on, the address is loopback,
 * or `http.host` says a TLS proxy fronts the server (an https URL).
 */
export function plainHttpCredentialsWarning(config: Pick<Config, 'auth' | 'http'>): string | undefined {
  const kind = config.auth?.kind;
  if ((kind !== 'htpasswd' && kind !== 'builtin') || config.http.tls !== undefined) return undefined;
  if (config.http.host?.startsWith('https://') === true) return undefined;
  const addr = config.http.addr;
  const host = addr.slice(0, addr.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)) return undefined;
  return `auth.${kind}: Basic credentials (passwords) will cross the network in clear text: http.addr ${addr} is plain HTTP ` +
    'on an address other hosts can reach; configure http.tls, or put a TLS proxy in front and set http.host to its https URL';
}

/** One line per user a rule or a group names that the htpasswd file does not have. */
export function missingUsers(auth: Pick<BuiltinAuthConfig, 'rules' | 'groups' | 'htpasswd'>, users: Pick<Htpasswd, 'has'>): string[] {
  const named = new Map<string, string>(); // user → where it is named first
  auth.rules.forEach((rule, i) => {
    for (const u of rule.users ?? []) if (u !== '*' && !named.has(u)) named.set(u, `auth.builtin.rules[${i}]`);
  });
  for (const [group, members] of Object.entries(auth.groups)) {
    for (const u of members) if (!named.has(u)) named.set(u, `auth.builtin.groups.${group}`);
  }
  return [...named]
    .filter(([u]) => !users.has(u))
    .map(([u, where]) => `config: ${where}: names user ${JSON.stringify(u)}, who is not in the htpasswd file ${auth.htpasswd}; the rule grants that name nothing until the user is added`);
}

/** Runs `load`, turning any failure into a one-line ConfigError naming `key`. */
async function keyed<T>(key: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    throw new ConfigError(key, err instanceof Error ? err.message : String(err), { cause: err });
  }
}
