/**
 * Quotas (`storage.quotas`, issue #16): per repository glob, a storage limit (the bytes the matching
 * repositories link together, each distinct blob once) and a repository-count limit. Every quota whose
 * glob matches a repository applies to it. Checked at the storage API's write entry points:
 *
 * - upload start (`checkStart`): refused when a quota's usage already exceeds its storage limit, when a
 *   declared blob (a monolithic POST's digest and Content-Length) would take it over, or when the
 *   repository does not exist yet and the glob already holds its limit of repositories;
 * - every link (`admitLink`: an upload's commit, a mount, a manifest PUT), when the size is known: the
 *   blob costs its size unless some repository of the glob already links it, and a repository that does
 *   not exist yet counts one more. The check and the link run under the quota's lock, so two pushes
 *   cannot both take the last room: a turn per quota in this process, and with replicas (`locks`) a
 *   lock per quota in Redis held across the check and the link.
 *
 * Figures come from the index (`scopeUsage`, `scopeLinks`) when it answers, else from a walk of storage
 * (scope-walk.ts). A refusal is never made on the index's word alone: before refusing, the figures are
 * read again from storage, so a stale index can let a push through but never block one.
 *
 * Refusals are RegistryError DENIED (403) whose message names the quota, the usage and the limit.
 * Each figure computed is reported to `observe` (the usage gauges). A link that takes a quota's usage
 * from below QUOTA_WARNING_RATIO of a limit to or above it is a crossing: once the link is done, and
 * before `admitLink` resolves, it is reported to `warn` (the `quota` notification event and its
 * counter), so a client that got its answer knows the warning was handed on. A crossing is a fact about
 * one link (usage before it, usage after it), so nothing needs remembering: it happens once per
 * crossing, and again only after the usage has fallen below the mark (a delete, a collection) and a
 * push takes it over again.
 */
import { type RegistryError, denied } from '../../errors.js';
import type { BlobStore } from '../blobs/blobs.js';
import { repositoryExists } from '../catalog.js';
import type { Digest } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import type { GuardedIndex, RepoScope, ScopeUsage } from '../indexing/index-port.js';
import type { RepoName } from '../reference.js';
import { commonPrefix, globMatcher, literalPrefix } from '../repo-glob.js';
import { type DeclaredBlob, type Quotas, type SharedQuotaLocks, NO_QUOTAS } from './quota-port.js';
import { folderOf, repositoryLinks, walkScopeLinks, walkScopeUsage } from './scope-walk.js';

/** At this share of a limit a quota is near full: a link that crosses it is reported to `warn`. */
export const QUOTA_WARNING_RATIO = 0.85;

/** One quota as configured. */
export interface QuotaSpec {
  readonly repositories: readonly string[];
  readonly storageBytes?: number | undefined;
  readonly maxrepositories?: number | undefined;
}

/** A quota's usage of one of its limits, as a check found it. */
export interface QuotaReading {
  /** The quota's globs, as messages name it (`team/**`). */
  readonly quota: string;
  readonly kind: 'storage' | 'repositories';
  readonly used: number;
  readonly limit: number;
}

/** A link that took a quota across QUOTA_WARNING_RATIO of one of its limits. */
export interface QuotaWarning extends QuotaReading {
  /** Where the quota is configured: `storage.quotas[0]`. */
  readonly key: string;
  /** The globs, as configured. */
  readonly repositories: readonly string[];
  /** The folder of whole name components every glob starts with (`team` for `team/**`; '' for `**`). */
  readonly namespace: string;
  /** Usage before the link. */
  readonly before: number;
  /** The repository the link was into, and the blob or manifest it linked. */
  readonly repository: RepoName;
  readonly digest: Digest;
}

/** What quotas read figures from, and whom they tell. */
export interface QuotaOptions {
  readonly driver: StorageDriver;
  readonly blobs: BlobStore;
  readonly index: GuardedIndex;
  readonly observe?: ((reading: QuotaReading) => void) | undefined;
  /** Told of each crossing, after its link; the link's caller waits for it (it should not reject). */
  readonly warn?: ((warning: QuotaWarning) => Promise<void>) | undefined;
  /** The quotas' locks shared with other replicas, if any. */
  readonly locks?: SharedQuotaLocks | undefined;
}

interface Quota {
  readonly key: string;
  readonly label: string;
  readonly repositories: readonly string[];
  readonly scope: RepoScope;
  readonly storageBytes: number | undefined;
  readonly maxrepositories: number | undefined;
  /** The tail of the queue of checks holding this quota's lock. */
  tail: Promise<unknown>;
}

/** Figures, where they came from, and whether the scope links a blob (asked of the same source). */
interface Figures extends ScopeUsage {
  readonly fromIndex: boolean;
  links(d: Digest): Promise<boolean>;
}

/** The quotas `specs` over `opts`' storage and index. @throws SyntaxError for a bad glob (the config check catches it first) */
export function createQuotas(specs: readonly QuotaSpec[], opts: QuotaOptions): Quotas {
  if (specs.length === 0) return NO_QUOTAS;
  const quotas: Quota[] = specs.map((spec, i) => {
    const accepts = globMatcher(spec.repositories);
    return {
      key: `storage.quotas[${i}]`,
      label: spec.repositories.join(', '),
      repositories: spec.repositories,
      scope: { prefix: commonPrefix(spec.repositories.map(literalPrefix)), accepts },
      storageBytes: spec.storageBytes,
      maxrepositories: spec.maxrepositories,
      tail: Promise.resolve(),
    };
  });
  const figures = createFigures(opts);
  const matching = (repo: RepoName): Quota[] => quotas.filter((q) => q.scope.accepts(repo));
  const isNew = async (repo: RepoName, o?: CallOptions): Promise<boolean> => !(await repositoryExists(opts.driver, repo, o));

  /** Admits the link of `d` into `repo` under quota `q` (or throws its refusal); answers the crossings the link makes. */
  const checkLink = async (q: Quota, repo: RepoName, d: Digest, size: number, fresh: boolean, o?: CallOptions): Promise<QuotaWarning[]> => {
    const added = (await isNew(repo, o)) ? 1 : 0;
    const counted = q.maxrepositories !== undefined && added > 0;
    // The same blob again in the same repository (a re-push) costs nothing: no figures needed.
    if (!counted && (q.storageBytes === undefined || (added === 0 && (await repositoryLinks(opts.driver, repo, d, o))))) return [];
    const now = await figures.read(q.scope, fresh, o);
    const cost = q.storageBytes === undefined || (await now.links(d)) ? 0 : size;
    if (!counted && cost === 0) return [];
    const refusal = overRepositories(q, now.repositories + added, added > 0) ?? overStorage(q, now.bytes, cost, 'would be');
    if (refusal !== undefined && now.fromIndex) return checkLink(q, repo, d, size, true, o);
    if (refusal !== undefined) {
      report(opts, q, now);
      throw refusal;
    }
    const after = { bytes: now.bytes + cost, repositories: now.repositories + added };
    report(opts, q, after);
    const crossing = (kind: QuotaReading['kind'], before: number, used: number, limit: number | undefined): QuotaWarning[] =>
      limit === undefined || !crosses(before, used, limit)
        ? []
        : [{ quota: q.label, key: q.key, repositories: q.repositories, namespace: folderOf(q.scope.prefix), kind, before, used, limit, repository: repo, digest: d }];
    return [
      ...crossing('storage', now.bytes, after.bytes, q.storageBytes),
      ...crossing('repositories', now.repositories, after.repositories, q.maxrepositories),
    ];
  };

  const checkStart = async (q: Quota, repo: RepoName, declared: DeclaredBlob | undefined, fresh: boolean, o?: CallOptions): Promise<void> => {
    const added = q.maxrepositories !== undefined && (await isNew(repo, o)) ? 1 : 0;
    if (added === 0 && q.storageBytes === undefined) return;
    const now = await figures.read(q.scope, fresh, o);
    const declaredCost = declared === undefined || (await now.links(declared.digest)) ? 0 : declared.size;
    const refusal =
      overRepositories(q, now.repositories + added, added > 0) ??
      overStorage(q, now.bytes, 0, 'is') ??
      overStorage(q, now.bytes, declaredCost, 'would be');
    if (refusal !== undefined && now.fromIndex) return checkStart(q, repo, declared, true, o);
    report(opts, q, now);
    if (refusal !== undefined) throw refusal;
  };

  return {
    async checkStart(repo, declared, o) {
      for (const q of matching(repo)) await checkStart(q, repo, declared, false, o);
    },
    admitLink(repo, d, size, link, o) {
      const applying = matching(repo);
      if (applying.length === 0) return link();
      return holding(applying, opts.locks, async () => {
        const warnings: QuotaWarning[] = [];
        for (const q of applying) warnings.push(...(await checkLink(q, repo, d, size, false, o)));
        const linked = await link();
        if (opts.warn !== undefined) await Promise.all(warnings.map(opts.warn));
        return linked;
      });
    },
  };
}

/**
 * A scope's figures: the index's when it answers (and, unless `fresh`, is asked), else one walk of
 * storage, which also answers which blobs the scope links.
 */
function createFigures(opts: QuotaOptions): { read(scope: RepoScope, fresh: boolean, o?: CallOptions): Promise<Figures> } {
  return {
    async read(scope, fresh, o) {
      const indexed = fresh ? undefined : await opts.index.scopeUsage(scope);
      if (indexed !== undefined) {
        // A stale "no" can only lead to a refusal, and a refusal is checked again with `fresh`.
        const links = async (d: Digest): Promise<boolean> => (await opts.index.scopeLinks(scope, d)) ?? walkScopeLinks(opts.driver, scope, d, o);
        return { bytes: indexed.bytes, repositories: indexed.repositories, fromIndex: true, links };
      }
      const walked = await walkScopeUsage(opts.driver, opts.blobs, scope, o);
      return { bytes: walked.bytes, repositories: walked.repositories, fromIndex: false, links: async (d) => walked.digests.has(d) };
    },
  };
}

/** The refusal when a glob would hold `count` repositories over its limit (only when one is added). */
function overRepositories(q: Quota, count: number, adding: boolean): RegistryError | undefined {
  if (!adding || q.maxrepositories === undefined || count <= q.maxrepositories) return undefined;
  return denied(`quota exceeded: ${q.label} would hold ${count} repositories, limit ${q.maxrepositories} (${q.key})`, {
    quota: q.label, key: q.key, kind: 'repositories', used: count - 1, limit: q.maxrepositories,
  });
}

/** The refusal when `bytes` plus `cost` is over the storage limit (`is`: already over; `would be`: after `cost`). */
function overStorage(q: Quota, bytes: number, cost: number, phrase: 'is' | 'would be'): RegistryError | undefined {
  const limit = q.storageBytes;
  const total = bytes + cost;
  if (limit === undefined || total <= limit || (phrase === 'would be' && cost === 0)) return undefined;
  const [shown, max] = formatPair(total, limit);
  return denied(`quota exceeded: storage of ${q.label} ${phrase} ${shown}, limit ${max} (${q.key})`, {
    quota: q.label, key: q.key, kind: 'storage', used: bytes, ...(cost > 0 && { adding: cost }), limit,
  });
}

/** Whether usage going from `before` to `after` crosses QUOTA_WARNING_RATIO of `limit` upwards. */
function crosses(before: number, after: number, limit: number): boolean {
  const mark = limit * QUOTA_WARNING_RATIO;
  return before < mark && after >= mark && after > before;
}

function report(opts: QuotaOptions, q: Quota, usage: ScopeUsage): void {
  if (opts.observe === undefined) return;
  if (q.storageBytes !== undefined) opts.observe({ quota: q.label, kind: 'storage', used: usage.bytes, limit: q.storageBytes });
  if (q.maxrepositories !== undefined) opts.observe({ quota: q.label, kind: 'repositories', used: usage.repositories, limit: q.maxrepositories });
}

/**
 * Runs `fn` holding the lock of every quota in `held` (taken in a fixed order, so no two callers
 * deadlock): each quota's turn in this process, then its `shared` lock, if any.
 */
async function holding<T>(held: readonly Quota[], shared: SharedQuotaLocks | undefined, fn: () => Promise<T>): Promise<T> {
  const [first, ...rest] = held;
  if (first === undefined) return fn();
  const inner = (): Promise<T> => holding(rest, shared, fn);
  const before = first.tail;
  const mine = before.catch(() => undefined).then(() => (shared === undefined ? inner() : shared.run(first.label, inner)));
  first.tail = mine;
  return mine;
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** Bytes in binary units, with as many decimals (up to 2) as keep the two figures apart: `10.2 GiB`, `10 GiB`. */
export function formatPair(a: number, b: number): [string, string] {
  for (let decimals = 1; decimals <= 2; decimals += 1) {
    const pair: [string, string] = [formatBytes(a, decimals), formatBytes(b, decimals)];
    if (pair[0] !== pair[1] || a === b) return pair;
  }
  return [`${a} bytes`, `${b} bytes`];
}

/** `n` bytes in the largest binary unit it reaches, trailing zeros dropped: `10 GiB`, `10.2 GiB`, `512 bytes`. */
export function formatBytes(n: number, decimals = 1): string {
  let unit = 0;
  let value = n;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(n) : value.toFixed(decimals).replace(/\.?0+$/, '');
  return `${text} ${UNITS[unit] as string}`;
}
