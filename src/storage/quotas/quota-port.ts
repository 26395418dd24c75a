/**
 * What the write paths of storage (uploads, mounts, manifests) ask of the quotas (quotas.ts), as a
 * leaf interface so that they do not depend on how the figures are found.
 */
import type { Digest } from '../digest.js';
import type { CallOptions } from '../driver/driver.js';
import type { RepoName } from '../reference.js';

/** A blob a monolithic upload declares before sending it. */
export interface DeclaredBlob {
  readonly digest: Digest;
  readonly size: number;
}

/** The quotas of a registry. */
export interface Quotas {
  /** @throws RegistryError DENIED when starting an upload in `repo` is refused (quotas.ts) */
  checkStart(repo: RepoName, declared: DeclaredBlob | undefined, o?: CallOptions): Promise<void>;
  /**
   * Runs `link`, which links blob `d` of `size` bytes into `repo`, if every quota admits it.
   * @throws RegistryError DENIED (and `link` does not run) when one does not
   */
  admitLink<T>(repo: RepoName, d: Digest, size: number, link: () => Promise<T>, o?: CallOptions): Promise<T>;
}

/**
 * A lock per quota shared with other processes on the same storage (replicas with `redis`:
 * coordination/redis-quota-locks.ts), taken inside this process's own turn for the quota, so that
 * a check and the link it admits never interleave with another replica's.
 */
export interface SharedQuotaLocks {
  /**
   * Runs `fn` holding the lock of `quota` (named by its globs, `team/**`).
   * @throws RegistryError UNAVAILABLE (and `fn` does not run) when the lock cannot be had
   */
  run<T>(quota: string, fn: () => Promise<T>): Promise<T>;
}

/** No quotas: everything is admitted at once. */
export const NO_QUOTAS: Quotas = { checkStart: async () => undefined, admitLink: (_repo, _d, _size, link) => link() };
