/**
 * X.509 for token auth: the certificates of a `rootcertbundle`, and verification of a token's `x5c`
 * chain against them with node:crypto.
 *
 * An `x5c` chain is ordered as RFC 7515 §4.1.6 requires: the leaf first, each certificate signed by the
 * next. It is trusted when some certificate of it is byte-for-byte one of the bundle's certificates (so a
 * leaf listed in the bundle stands on its own, as with docker_auth's usual setup), or when its last
 * certificate is signed by one of them. Every certificate used must be within its validity dates (with
 * leeway), and every certificate that signs another must be a CA (basicConstraints CA:TRUE), which
 * registry:2 (Go's x509.Verify) also requires of intermediates. Like registry:2, which asks for
 * ExtKeyUsageAny, extended key usages of the leaf are not checked. Path length and name constraints are
 * not evaluated; a bundle should hold only the token server's own CA or signing certificates.
 */
import { X509Certificate } from 'node:crypto';

/** At most this many certificates in an `x5c` chain (real ones have two or three). */
const MAX_CHAIN_LENGTH = 8;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;
const STANDARD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Why a certificate chain is not trusted; `reason` names no certificate content. */
export class CertificateChainError extends Error {
  readonly code = 'UNTRUSTED_CERTIFICATE_CHAIN';
  constructor(readonly reason: string) {
    super(`untrusted certificate chain: ${reason}`);
    this.name = 'CertificateChainError';
  }
}

/**
 * The certificates of a PEM bundle, in order. Blocks other than CERTIFICATE (keys, CRLs) are skipped, as
 * registry:2 skips them.
 * @throws TypeError when a CERTIFICATE block does not parse.
 */
export function parseCertificateBundle(pem: string): X509Certificate[] {
  const certificates: X509Certificate[] = [];
  for (const match of pem.matchAll(PEM_CERTIFICATE)) {
    const der = Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64');
    try {
      certificates.push(new X509Certificate(der));
    } catch {
      throw new TypeError(`certificate ${certificates.length + 1} of the bundle does not parse`);
    }
  }
  return certificates;
}

/**
 * The certificates of an `x5c` header value: a non-empty array of standard-base64 DER certificates.
 * @throws CertificateChainError when it is anything else.
 */
export function parseX5c(x5c: unknown): X509Certificate[] {
  if (!Array.isArray(x5c) || x5c.length === 0) throw new CertificateChainError('x5c is not a list of certificates');
  if (x5c.length > MAX_CHAIN_LENGTH) throw new CertificateChainError('x5c chain is too long');
  return x5c.map((entry: unknown) => {
    if (typeof entry !== 'string' || !STANDARD_BASE64.test(entry)) {
      throw new CertificateChainError('x5c entry is not base64');
    }
    try {
      return new X509Certificate(Buffer.from(entry, 'base64'));
    } catch {
      throw new CertificateChainError('x5c entry is not a certificate');
    }
  });
}

export interface ChainCheck {
  /** The trusted certificates (the bundle). */
  readonly roots: readonly X509Certificate[];
  /** The time to check validity dates at, in ms since the epoch. */
  readonly now: number;
  /** Slack for validity dates, in ms. */
  readonly leewayMs: number;
}

/**
 * The leaf of `chain` once the chain is proven to lead to one of `roots` (see the file comment).
 * @throws CertificateChainError otherwise.
 */
export function verifyCertificateChain(chain: readonly X509Certificate[], check: ChainCheck): X509Certificate {
  const leaf = chain[0];
  if (leaf === undefined) throw new CertificateChainError('empty chain');
  for (const [i, cert] of chain.entries()) {
    checkValidity(cert, check);
    if (check.roots.some((root) => root.raw.equals(cert.raw))) return leaf;
    const next = chain[i + 1];
    if (next !== undefined) {
      if (!issued(next, cert)) throw new CertificateChainError('a certificate is not signed by the next one');
      continue;
    }
    const root = check.roots.find((candidate) => issued(candidate, cert));
    if (root === undefined) throw new CertificateChainError('chain does not lead to a trusted certificate');
    checkValidity(root, check);
    return leaf;
  }
  throw new CertificateChainError('chain does not lead to a trusted certificate');
}

/** Whether `issuer` is a CA whose name and key issued `subject`. */
function issued(issuer: X509Certificate, subject: X509Certificate): boolean {
  if (!issuer.ca) return false;
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function checkValidity(cert: X509Certificate, check: ChainCheck): void {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) throw new CertificateChainError('unreadable validity dates');
  if (check.now + check.leewayMs < notBefore) throw new CertificateChainError('a certificate is not yet valid');
  if (check.now - check.leewayMs > notAfter) throw new CertificateChainError('a certificate has expired');
}
