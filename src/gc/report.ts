/**
 * What a garbage collection run tells the outside world: the report it answers (logged, served by
 * `POST /debug/gc`, handed to the metrics seam) and the events it emits while it runs (which the offline
 * `garbage-collect` command prints in registry:2's format).
 */
import type { Digest } from '../storage/digest.js';
import type { RetentionReport } from './retention/retention.js';

/** The outcome of one run. In a dry run, `swept`, `bytesFreed` and `untaggedRemoved` count what would go. */
export interface GcReport {
  /** Digests marked in use (manifests, configs, layers, index children). */
  readonly marked: number;
  /** Blobs deleted. */
  readonly swept: number;
  readonly bytesFreed: number;
  /** Unreferenced blobs the grace period kept (they, or their newest link, are younger than it). */
  readonly keptYoung: number;
  /** `_layers` links removed with the blobs they named. */
  readonly layerLinksRemoved: number;
  /** Crash leftovers removed: temporary files and unfinished tags older than the grace period (leftovers.ts). */
  readonly leftoversRemoved: number;
  /** Untagged manifest revisions removed (`deleteUntagged`). */
  readonly untaggedRemoved: number;
  /** Stale upload sessions removed (online runs). */
  readonly uploadsPurged: number;
  readonly durationMs: number;
  readonly dryRun: boolean;
  /** What was skipped and why; never a reason something was deleted. */
  readonly warnings: readonly string[];
  /** What retention deleted (or, dry, would delete) before the mark, when policies are configured. */
  readonly retention?: RetentionReport;
  /** Cached images the pull-through cache's eviction removed (or, dry, would remove) before the mark, when a mirror is configured. */
  readonly evicted?: number;
}

/** Progress and decisions of a run, in order. */
export type GcEvent =
  | { readonly type: 'repository'; readonly repo: string }
  | { readonly type: 'marking-manifest'; readonly repo: string; readonly digest: Digest }
  | { readonly type: 'marking-blob'; readonly repo: string; readonly digest: Digest }
  /** An untagged manifest whose revision link goes (`deleteUntagged`). */
  | { readonly type: 'manifest-eligible'; readonly repo: string; readonly digest: Digest }
  | { readonly type: 'manifest-removed'; readonly repo: string; readonly digest: Digest }
  | { readonly type: 'warning'; readonly message: string }
  /** After marking, before any blob is deleted. */
  | { readonly type: 'summary'; readonly marked: number; readonly blobs: number; readonly manifests: number }
  | { readonly type: 'blob-eligible'; readonly digest: Digest }
  | { readonly type: 'blob-deleted'; readonly digest: Digest; readonly path: string; readonly size: number }
  /** An eligible blob the sweep kept after all: linked during the run, or written since it was listed. */
  | { readonly type: 'blob-kept'; readonly digest: Digest; readonly reason: string }
  /** A crash leftover removed (leftovers.ts): a driver path, or `<repo>:<tag>` for an unfinished tag. */
  | { readonly type: 'leftover-removed'; readonly what: string; readonly path: string }
  /** Whether the run looks through the whole tree for crash leftovers, and why (leftovers.ts). */
  | { readonly type: 'leftover-scan'; readonly whole: boolean; readonly why: string }
  | { readonly type: 'progress'; readonly phase: 'mark' | 'sweep'; readonly done: number; readonly total: number };

export type EmitEvent = (e: GcEvent) => void;

/**
 * One line for people: `swept 3 blobs (freed 1.2 MiB); kept 12 younger than 1h; …`, and in a dry run
 * `would sweep 3 blobs (would free 1.2 MiB)`.
 */
export function describeReport(r: GcReport, graceMs: number): string {
  const bytes = formatBytes(r.bytesFreed);
  const parts = [
    ...(r.retention
      ? [`retention ${r.dryRun ? 'would delete' : 'deleted'} ${r.retention.tagsDeleted} tags and ${r.retention.manifestsDeleted} manifests`]
      : []),
    ...(r.evicted !== undefined ? [`${r.dryRun ? 'would evict' : 'evicted'} ${r.evicted} cached images`] : []),
    `marked ${r.marked}`,
    r.dryRun ? `would sweep ${r.swept} blobs (would free ${bytes})` : `swept ${r.swept} blobs (freed ${bytes})`,
  ];
  if (graceMs > 0) parts.push(`kept ${r.keptYoung} younger than ${formatDuration(graceMs)}`);
  if (r.untaggedRemoved > 0) parts.push(`${r.dryRun ? 'would remove' : 'removed'} ${r.untaggedRemoved} untagged manifests`);
  if (r.layerLinksRemoved > 0) parts.push(`removed ${r.layerLinksRemoved} layer links of deleted blobs`);
  if (r.leftoversRemoved > 0) parts.push(`${r.dryRun ? 'would remove' : 'removed'} ${r.leftoversRemoved} crash leftovers`);
  if (r.uploadsPurged > 0) parts.push(`${r.dryRun ? 'would purge' : 'purged'} ${r.uploadsPurged} stale uploads`);
  return parts.join('; ');
}

/** `812 B`, `1.5 KiB`, `2.0 GiB`: binary units, one decimal. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u] ?? ''}`;
}

/** `1h`, `90s`, `1h30m`, `250ms`: the largest whole units. */
function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`;
}

/** The most warnings a report carries; the rest are counted in one last line. */
export const MAX_WARNINGS = 1000;

/** Collects warnings (bounded) and emits each as an event. */
export interface Warnings {
  add(message: string): void;
  list(): string[];
}

export function createWarnings(emit: EmitEvent): Warnings {
  const kept: string[] = [];
  let dropped = 0;
  return {
    add(message) {
      emit({ type: 'warning', message });
      if (kept.length < MAX_WARNINGS) kept.push(message);
      else dropped += 1;
    },
    list: () => (dropped > 0 ? [...kept, `… and ${dropped} more warnings`] : [...kept]),
  };
}
