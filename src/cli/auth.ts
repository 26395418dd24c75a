/**
 * Builds the access controller (and the built-in issuer's endpoints) that the config's `auth`
 * section asks for. Files named by the config are read here, once, at start-up; a problem with one
 * is a ConfigError naming the key, so the server never starts half-protected.
 */
import { readFile } from 'node:fs/promises';
import { createBasicController } from '../auth/basic-controller.js';
import type { AccessController } from '../auth/controller.js';
import { loadHtpasswd } from '../auth/htpasswd.js';
import { createIssuer } from '../auth/issuer.js';
import { loadOrCreateSigningKey } from '../auth/signing-key.js';
import { createTokenController } from '../auth/token-controller.js';
import { type JsonWebKeySet, createTokenVerifier } from '../auth/token.js';
import { ConfigError } from '../config/raw.js';
import type { AuthConfig, BuiltinAuthConfig, TokenAuthConfig } from '../config/schema.js';
import { type TokenHandlers, createTokenHandlers } from '../http/handlers/auth-token.js';

export interface AuthSetup {
  readonly access: AccessController | undefined;
  readonly tokenHandlers: TokenHandlers | undefined;
}

/** The token endpoint's path on this server, for the built-in issuer's default realm. */
export const TOKEN_PATH = '/auth/token';

/**
 * @param auth the config's `auth` section
 * @param defaultKeyPath where the built-in issuer keeps its key when `auth.builtin.signingkey` is unset
 *   (undefined: in memory)
 */
export async function createAuth(auth: AuthConfig | undefined, defaultKeyPath: string | undefined): Promise<AuthSetup> {
  if (auth === undefined) return { access: undefined, tokenHandlers: undefined };
  switch (auth.kind) {
    case 'htpasswd': {
      const htpasswd = await keyed('auth.htpasswd.path', () => loadHtpasswd(auth.path));
      return { access: createBasicController({ realm: auth.realm, htpasswd }), tokenHandlers: undefined };
    }
    case 'token':
      return { access: await tokenController(auth), tokenHandlers: undefined };
    default:
      return builtin(auth, defaultKeyPath);
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

async function builtin(auth: BuiltinAuthConfig, defaultKeyPath: string | undefined): Promise<AuthSetup> {
  const users = await keyed('auth.builtin.htpasswd', () => loadHtpasswd(auth.htpasswd));
  const keyPath = auth.signingkey ?? defaultKeyPath;
  const key = await keyed('auth.builtin.signingkey', () => loadOrCreateSigningKey({ path: keyPath }));
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
    access: createTokenController({ realm: auth.realm, realmPath: TOKEN_PATH, service: auth.service, verifier }),
    tokenHandlers: createTokenHandlers(issuer),
  };
}

/** Runs `load`, turning any failure into a one-line ConfigError naming `key`. */
async function keyed<T>(key: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    throw new ConfigError(key, err instanceof Error ? err.message : String(err), { cause: err });
  }
}
