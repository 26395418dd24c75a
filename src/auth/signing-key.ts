/**
 * The built-in issuer's signing key: ECDSA P-256 (ES256), "configured or generated and kept".
 *
 * - A configured path holding a PEM private key is read (PKCS#8 `PRIVATE KEY`, or the SEC1
 *   `EC PRIVATE KEY` that `openssl ecparam -genkey` writes); it must be EC on P-256.
 * - A configured path that does not exist yet gets a new key, written with mode 0600 to a temporary
 *   file in the same directory, flushed, and then linked into place. Linking fails if another
 *   process created the file meanwhile, in which case that process's key is read and used, so
 *   replicas starting together over shared storage end up with one key. Every later start reads it.
 * - A key store (S3 storage: an object in the bucket, outside `docker/registry/v2`): read when it is
 *   there, else generated and stored with a conditional write; a process that loses the race reads
 *   the winner's, so replicas starting together over one bucket agree on one key.
 * - Neither: a key that lives in memory only. Tokens it signed stop verifying when the process
 *   ends, so every client must log in again after a restart, and replicas cannot share tokens. Meant
 *   for the in-memory storage driver, whose content does not outlive the process either.
 *
 * `kid` is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key, as registry:2 v3
 * matches it.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type CryptoKey, type JWK } from 'jose';

/** A key the issuer signs with and whose public half it publishes as JWKS. */
export interface SigningKey {
  readonly alg: 'ES256';
  /** RFC 7638 thumbprint of `publicJwk`. */
  readonly kid: string;
  readonly privateKey: CryptoKey | KeyObject;
  /** The public key as a JWK with `kid`, `alg` and `use: 'sig'` set. */
  readonly publicJwk: JWK;
}

const generateEcKeyPair = promisify(generateKeyPair);

/**
 * Somewhere other than a local file that keeps the generated key for every process that shares it
 * (an object in the S3 bucket, outside `docker/registry/v2`). The composition root adapts a storage
 * driver to it; auth/ knows nothing of drivers.
 */
export interface KeyStore {
  /** Names the place in messages (e.g. `s3 /berth/token-signing-key.pem`). */
  readonly where: string;
  /** The PEM stored there, or undefined when there is none yet. */
  read(): Promise<string | undefined>;
  /** Stores `pem` only if nothing is there yet (a conditional write); true when this call stored it. */
  createIfAbsent(pem: string): Promise<boolean>;
}

/** How long a process that lost the race to create the key waits for the winner's to be readable. */
const READ_BACK_ATTEMPTS = 20;

/**
 * The key at `opts.path`, created there first when the file does not exist; the key in `opts.store`,
 * created there first with a conditional write when there is none; an in-memory key when neither is
 * given (see the file comment for what that costs).
 * @throws Error naming the file (or store) when it cannot be read or written, or holds anything but
 * an EC P-256 private key in PEM. An existing key is never overwritten.
 */
export async function loadOrCreateSigningKey(opts: { readonly path: string | undefined; readonly store?: KeyStore }): Promise<SigningKey> {
  if (opts.path === undefined) return opts.store === undefined ? fromPrivateKey(await newPrivateKey()) : loadOrCreateIn(opts.store);
  const existing = await readKeyFile(opts.path);
  if (existing !== undefined) return existing;
  const key = await newPrivateKey();
  const created = await writeNewKeyFile(opts.path, key.export({ type: 'pkcs8', format: 'pem' }) as string);
  return created ? fromPrivateKey(key) : ((await readKeyFile(opts.path)) ?? missingAfterRace(opts.path));
}

/**
 * The key in `store`. Two processes starting together both find none, both generate one, and both
 * write conditionally: one write wins, and the loser reads the winner's key back (retrying briefly,
 * as S3 may answer 409 while the winning write is still in flight), so both sign with one key.
 */
async function loadOrCreateIn(store: KeyStore): Promise<SigningKey> {
  const existing = await readStored(store);
  if (existing !== undefined) return existing;
  const key = await newPrivateKey();
  if (await store.createIfAbsent(key.export({ type: 'pkcs8', format: 'pem' }) as string)) return fromPrivateKey(key);
  for (let attempt = 0; attempt < READ_BACK_ATTEMPTS; attempt++) {
    const winner = await readStored(store);
    if (winner !== undefined) return winner;
    await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
  }
  return missingAfterRace(store.where);
}

async function readStored(store: KeyStore): Promise<SigningKey | undefined> {
  let pem: string | undefined;
  try {
    pem = await store.read();
  } catch (err) {
    throw new Error(`signing key ${store.where}: cannot read it (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  return pem === undefined ? undefined : parseKey(store.where, pem);
}

async function newPrivateKey(): Promise<KeyObject> {
  const { privateKey } = await generateEcKeyPair('ec', { namedCurve: 'P-256' });
  return privateKey;
}

/** The key in `path`, or undefined when there is no such file. */
async function readKeyFile(path: string): Promise<SigningKey | undefined> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`signing key ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  return parseKey(path, pem);
}

/** The EC P-256 private key in `pem`. @throws Error naming `path` otherwise */
function parseKey(path: string, pem: string): Promise<SigningKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`signing key ${path}: not a PEM private key (expected an EC P-256 key in PKCS#8 PEM)`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : key.asymmetricKeyType;
    throw new Error(`signing key ${path}: key type ${kind ?? 'unknown'}; expected EC P-256 (ES256)`);
  }
  return fromPrivateKey(key);
}

/**
 * Writes `pem` to `path` unless a file is there already: temp file (0600) → fsync → link (or rename
 * where the file system has no hard links) → fsync the directory.
 * @returns false when another process created `path` first.
 */
async function writeNewKeyFile(path: string, pem: string): Promise<boolean> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    const created = await publish(temp, path);
    await syncDir(dir);
    return created;
  } catch (err) {
    throw new Error(`signing key ${path}: cannot write a new key (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      cause: err,
    });
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function publish(temp: string, path: string): Promise<boolean> {
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  }
  await rename(temp, path);
  return true;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (handle === undefined) return;
  try {
    await handle.sync();
  } catch {
    // Some file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

function missingAfterRace(path: string): never {
  throw new Error(`signing key ${path}: another process created it and it is gone again`);
}

async function fromPrivateKey(privateKey: KeyObject): Promise<SigningKey> {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const base: JWK = { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) };
  const kid = await calculateJwkThumbprint(base, 'sha256');
  return { alg: 'ES256', kid, privateKey, publicJwk: { ...base, kid, alg: 'ES256', use: 'sig' } };
}
