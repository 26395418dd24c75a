/**
 * Content digests (`<algorithm>:<hex>`), branded so a string is checked once, at the boundary, and
 * trusted after. sha256 is canonical; sha512 is accepted where clients send it. Imports nothing internal.
 */
import { createHash, type Hash } from 'node:crypto';

/** The hash algorithms Berth accepts in digests. */
export type DigestAlgorithm = 'sha256' | 'sha512';

/** A digest string that has passed `parseDigest`: a supported algorithm and lower-case hex of the right length. */
export type Digest = string & { readonly __brand: 'Digest' };

const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };

/** The general grammar of the OCI image spec, which admits algorithms Berth does not support. */
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The algorithm of digests Berth computes itself (manifests pushed by tag). */
export const CANONICAL_ALGORITHM: DigestAlgorithm = 'sha256';

/** Every algorithm Berth accepts, in the order layouts are searched. */
export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

/** What nearly every digest is: checked first, in one step (links are read for every request). */
const PLAIN_SHA256 = /^sha256:[a-f0-9]{64}$/;

/** Why `s` is not a usable digest, or undefined when it is one. */
export function digestProblem(s: string): string | undefined {
  if (PLAIN_SHA256.test(s)) return undefined;
  if (!DIGEST_GRAMMAR.test(s)) return 'malformed digest';
  const [alg, hex] = s.split(':') as [string, string];
  if (alg !== 'sha256' && alg !== 'sha512') return `unsupported digest algorithm ${JSON.stringify(alg)}`;
  if (hex.length !== HEX_LENGTH[alg] || !/^[a-f0-9]+$/.test(hex)) return `malformed ${alg} digest`;
  return undefined;
}

/**
 * The digest `s`, or undefined when `digestProblem(s)` has something to say: the one digest parser
 * (reference.ts parseDigestParam is its throwing face, for requests).
 */
export function parseDigest(s: string): Digest | undefined {
  return digestProblem(s) === undefined ? (s as Digest) : undefined;
}

/** The algorithm part of a digest (`sha256`). */
export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

/** The hex part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/** Builds a digest from an algorithm and hex already known to be valid (from a hash, or a checked path). */
export function makeDigest(alg: DigestAlgorithm, hex: string): Digest {
  const d = parseDigest(`${alg}:${hex}`);
  if (d === undefined) throw new Error(`not a digest: ${alg}:${hex}`);
  return d;
}

/** The digest of a whole buffer. */
export function digestOf(data: Uint8Array, alg: DigestAlgorithm = CANONICAL_ALGORITHM): Digest {
  return `${alg}:${createHash(alg).update(data).digest('hex')}` as Digest;
}

/** A hash being fed the bytes of a blob as they arrive, counting them. */
export interface RunningHash {
  readonly algorithm: DigestAlgorithm;
  /** Bytes hashed so far. */
  readonly size: number;
  update(chunk: Uint8Array): void;
  /** The digest so far, leaving the hash usable. */
  digest(): Digest;
}

/** A running hash that also counts bytes; `copy()` snapshots it so the original can go on. */
export class Digester implements RunningHash {
  private constructor(
    readonly algorithm: DigestAlgorithm,
    private readonly hash: Hash,
    private bytes: number,
  ) {}

  static create(alg: DigestAlgorithm = CANONICAL_ALGORITHM): Digester {
    return new Digester(alg, createHash(alg), 0);
  }

  get size(): number {
    return this.bytes;
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  copy(): Digester {
    return new Digester(this.algorithm, this.hash.copy(), this.bytes);
  }

  /** The digest so far, leaving this digester usable. */
  digest(): Digest {
    return `${this.algorithm}:${this.hash.copy().digest('hex')}` as Digest;
  }
}
