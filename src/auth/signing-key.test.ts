import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, compactVerify, CompactSign, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyStore, loadOrCreateSigningKey } from './signing-key.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-signing-key-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateSigningKey', () => {
  it('generates a key at a new path, keeps it with mode 0600, and reads the same key later', async () => {
    const path = join(dir, 'sub', 'dir', 'issuer.pem');
    const first = await loadOrCreateSigningKey({ path });
    const pem = await readFile(path, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    if (process.platform !== 'win32') expect((await stat(path)).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateSigningKey({ path });
    expect(second.kid).toBe(first.kid);
    expect(second.publicJwk).toEqual(first.publicJwk);
    expect(await readFile(path, 'utf8')).toBe(pem);
    expect((await readdir(join(dir, 'sub', 'dir'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('uses one key when several starts race to create it', async () => {
    const path = join(dir, 'race.pem');
    const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSigningKey({ path })));
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    expect((await loadOrCreateSigningKey({ path })).kid).toBe(keys[0]?.kid);
  });

  it('reads a configured PKCS#8 or SEC1 P-256 key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const expectedKid = await calculateJwkThumbprint(publicKey.export({ format: 'jwk' }) as JWK);
    for (const type of ['pkcs8', 'sec1'] as const) {
      const path = join(dir, `configured-${type}.pem`);
      await writeFile(path, privateKey.export({ type, format: 'pem' }));
      const key = await loadOrCreateSigningKey({ path });
      expect(key.kid).toBe(expectedKid);
    }
  });

  it('gives a working ES256 key with an RFC 7638 kid and a public-only JWK', async () => {
    const key = await loadOrCreateSigningKey({ path: undefined });
    expect(key.alg).toBe('ES256');
    expect(key.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', kid: key.kid, alg: 'ES256', use: 'sig' });
    expect(key.publicJwk.d).toBeUndefined();
    expect(await calculateJwkThumbprint(key.publicJwk)).toBe(key.kid);
    const jws = await new CompactSign(new TextEncoder().encode('hi')).setProtectedHeader({ alg: 'ES256' }).sign(key.privateKey);
    const { payload } = await compactVerify(jws, await importJWK(key.publicJwk, 'ES256'));
    expect(new TextDecoder().decode(payload)).toBe('hi');
  });

  it('makes a new in-memory key each time without a path', async () => {
    const a = await loadOrCreateSigningKey({ path: undefined });
    const b = await loadOrCreateSigningKey({ path: undefined });
    expect(a.kid).not.toBe(b.kid);
  });

  const badFiles: [string, () => string, RegExp][] = [
    ['garbage', () => 'hello\n', /not a PEM private key/],
    ['an empty file', () => '', /not a PEM private key/],
    ['an RSA key', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, /key type rsa; expected EC P-256/],
    ['a P-384 key', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, /key type EC secp384r1; expected EC P-256/],
    ['an Ed25519 key', () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, /key type ed25519/],
    ['a public key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string, /not a PEM private key/],
  ];
  it.each(badFiles)('refuses a file with %s, naming it and leaving it alone', async (label, content, message) => {
    const path = join(dir, `bad-${label.replace(/\W+/g, '-')}.pem`);
    const text = content();
    await writeFile(path, text);
    const attempt = loadOrCreateSigningKey({ path });
    await expect(attempt).rejects.toThrow(message);
    await expect(attempt).rejects.toThrow(`signing key ${path}: `);
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('names a path it cannot create', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'x');
    const path = join(blocker, 'key.pem');
    await expect(loadOrCreateSigningKey({ path })).rejects.toThrow(`signing key ${path}: cannot`);
  });
});

/**
 * A key store with S3's conditional-write semantics, in memory: the first create wins; a create that
 * overlaps the winner's write answers false before the winner's object is readable (S3's 409), so
 * losers must read back until it is.
 */
function conditionalStore(): KeyStore & { creates: number } {
  let stored: string | undefined;
  let writing: Promise<void> | undefined;
  const store = {
    where: 'test-store /berth/token-signing-key.pem',
    creates: 0,
    read: async () => stored,
    async createIfAbsent(pem: string) {
      store.creates += 1;
      if (stored !== undefined || writing !== undefined) return false;
      writing = new Promise((r) => setTimeout(r, 30)).then(() => {
        stored = pem;
      });
      await writing;
      return true;
    },
  };
  return store;
}

describe('loadOrCreateSigningKey with a shared key store', () => {
  it('several starts at once agree on one key: one conditional write wins, the others read it back', async () => {
    const store = conditionalStore();
    const keys = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateSigningKey({ path: undefined, store })));
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    expect(store.creates).toBe(5);
    const later = await loadOrCreateSigningKey({ path: undefined, store });
    expect(later.kid).toBe(keys[0]?.kid);
    expect(store.creates).toBe(5); // found, not created again
  });

  it('refuses a stored object that is not an EC P-256 key, naming the store', async () => {
    const store: KeyStore = { where: 'test-store /k.pem', read: async () => 'not a key', createIfAbsent: async () => false };
    await expect(loadOrCreateSigningKey({ path: undefined, store })).rejects.toThrow(/signing key test-store \/k\.pem: not a PEM private key/);
  });

  it('says so when the winning key never becomes readable', async () => {
    const store: KeyStore = { where: 'test-store /gone.pem', read: async () => undefined, createIfAbsent: async () => false };
    await expect(loadOrCreateSigningKey({ path: undefined, store })).rejects.toThrow(/test-store \/gone\.pem: another process created it and it is gone again/);
  }, 30_000);
});
