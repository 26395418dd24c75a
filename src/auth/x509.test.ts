/**
 * x5c chains and certificate bundles, with certificates made by `openssl` in a temp dir: a root CA, a CA
 * intermediate, a non-CA "intermediate" with no keyUsage (only basicConstraints forbids it to sign), and
 * leaves under each.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateChainError, parseCertificateBundle, parseX5c, verifyCertificateChain } from './x509.js';

let dir: string;
const certs = new Map<string, X509Certificate>();
let serial = 1;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function newKey(name: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
}

function pem(name: string): string {
  return readFileSync(join(dir, `${name}.pem`), 'utf8');
}

function make(name: string, issuer: string | undefined, extensions: string[]): void {
  newKey(name);
  if (issuer === undefined) {
    const addext = extensions.flatMap((e) => ['-addext', e]);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-days', '30', ...addext, '-out', `${name}.pem`);
  } else {
    openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), extensions.join('\n'));
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`,
      '-set_serial', String(++serial), '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
  certs.set(name, new X509Certificate(pem(name)));
}

function cert(name: string): X509Certificate {
  const c = certs.get(name);
  if (c === undefined) throw new Error(`no certificate ${name}`);
  return c;
}

const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
const LEAF = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-x509-'));
  make('root', undefined, CA);
  make('intermediate', 'root', CA);
  make('leaf', 'intermediate', LEAF);
  make('not-a-ca', 'root', ['basicConstraints=critical,CA:FALSE']);
  make('under-not-a-ca', 'not-a-ca', LEAF);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function chainError(f: () => unknown): CertificateChainError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertificateChainError);
    expect((e as CertificateChainError).code).toBe('UNTRUSTED_CERTIFICATE_CHAIN');
    return e as CertificateChainError;
  }
  throw new Error('expected a CertificateChainError');
}

describe('parseCertificateBundle', () => {
  it('reads every certificate in order and skips other PEM blocks', () => {
    const keyPem = readFileSync(join(dir, 'root.key'), 'utf8');
    const parsed = parseCertificateBundle(`# trust\n${pem('root')}${keyPem}\r\n${pem('intermediate')}`);
    expect(parsed.map((c) => c.fingerprint256)).toEqual([cert('root').fingerprint256, cert('intermediate').fingerprint256]);
    expect(parseCertificateBundle('')).toEqual([]);
  });

  it('names a certificate that does not parse', () => {
    const bad = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    expect(() => parseCertificateBundle(pem('root') + bad)).toThrow(new TypeError('certificate 2 of the bundle does not parse'));
  });
});

describe('parseX5c', () => {
  it('reads standard base64 DER certificates', () => {
    const x5c = [cert('leaf').raw.toString('base64'), cert('intermediate').raw.toString('base64')];
    expect(parseX5c(x5c).map((c) => c.serialNumber)).toEqual([cert('leaf').serialNumber, cert('intermediate').serialNumber]);
  });

  it.each([
    ['a string', (): unknown => 'MIIB'],
    ['an empty list', (): unknown => []],
    ['url-safe base64', (): unknown => ['MIIB-_8=']],
    ['a non-string entry', (): unknown => [{}]],
    ['a non-certificate', (): unknown => [Buffer.from('junk').toString('base64')]],
    ['nine certificates', (): unknown => Array.from({ length: 9 }, () => cert('leaf').raw.toString('base64'))],
  ])('refuses %s', (_name, x5c) => {
    chainError(() => parseX5c(x5c()));
  });
});

describe('verifyCertificateChain', () => {
  const at = (ms: number): { roots: X509Certificate[]; now: number; leewayMs: number } => ({
    roots: [cert('root')],
    now: ms,
    leewayMs: 60_000,
  });
  const now = (): number => Date.now() + 1000;

  it('returns the leaf of a chain to a root, whether or not the root ends the chain', () => {
    expect(verifyCertificateChain([cert('leaf'), cert('intermediate')], at(now()))).toBe(cert('leaf'));
    expect(verifyCertificateChain([cert('leaf'), cert('intermediate'), cert('root')], at(now()))).toBe(cert('leaf'));
  });

  it('stops at any certificate that is in the bundle', () => {
    const check = { ...at(now()), roots: [cert('intermediate')] };
    expect(verifyCertificateChain([cert('leaf')], check)).toBe(cert('leaf'));
    expect(verifyCertificateChain([cert('leaf'), cert('intermediate')], check)).toBe(cert('leaf'));
    expect(verifyCertificateChain([cert('leaf')], { ...check, roots: [cert('leaf')] })).toBe(cert('leaf'));
  });

  it('refuses a chain through a certificate that is not a CA', () => {
    const reason = chainError(() => verifyCertificateChain([cert('under-not-a-ca'), cert('not-a-ca')], at(now()))).reason;
    expect(reason).toBe('a certificate is not signed by the next one');
    chainError(() => verifyCertificateChain([cert('under-not-a-ca')], { ...at(now()), roots: [cert('not-a-ca')] }));
  });

  it('refuses a missing intermediate, a wrong order and an empty chain', () => {
    chainError(() => verifyCertificateChain([cert('leaf')], at(now())));
    chainError(() => verifyCertificateChain([cert('leaf'), cert('root'), cert('intermediate')], at(now())));
    chainError(() => verifyCertificateChain([], at(now())));
  });

  it('checks validity dates with the leeway, to the millisecond', () => {
    const leaf = cert('leaf');
    const notAfter = Date.parse(leaf.validTo);
    const notBefore = Date.parse(leaf.validFrom);
    // the leaf alone, trusted directly, so no other certificate's dates come into it
    const check = (ms: number): ReturnType<typeof at> => ({ ...at(ms), roots: [leaf] });
    expect(verifyCertificateChain([leaf], check(notAfter + 60_000))).toBe(leaf);
    expect(chainError(() => verifyCertificateChain([leaf], check(notAfter + 60_001))).reason).toBe('a certificate has expired');
    expect(verifyCertificateChain([leaf], check(notBefore - 60_000))).toBe(leaf);
    expect(chainError(() => verifyCertificateChain([leaf], check(notBefore - 60_001))).reason).toBe('a certificate is not yet valid');
    // an intermediate's or root's dates count as much as the leaf's
    const rootExpired = Date.parse(cert('root').validTo) + 60_001;
    expect(chainError(() => verifyCertificateChain([leaf, cert('intermediate')], at(rootExpired))).reason).toBe('a certificate has expired');
  });
});
