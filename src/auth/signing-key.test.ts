import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, compactVerify, CompactSign, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateSigningKey } from './signing-key.js';

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
