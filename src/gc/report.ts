/**
 * What a garbage collection run tells the outside world: the report it answers (logged, served by
 * `POST /debug/gc`, handed to the metrics seam) and the events it emits while it runs (which the offline
 * `garbage-collect` command prints in registry:2's format).
 */
import type { Digest } from '../storage/digest.js';

/** The outcome of one run. In a dry run, `swept`, `bytesFreed` and `untaggedRemoved` count what would go. */
export interface GcReport {
  /** Digests marked in use (manifests, configs, layers, index children). */
  readonly marked: number;
  /** Blobs deleted. */
  readonly swept: number;
  readonly bytesFreed: number;
  /** Untagged manifest revisions removed (`deleteUntagged`). */
  readonly untaggedRemoved: number;
  /** Stale upload sessions removed (online runs). */
  readonly uploadsPurged: number;
  readonly durationMs: number;
  readonly dryRun: boolean;
  /** What was skipped and why; never a reason something was deleted. */
  readonly warnings: readonly string[];
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
  | { readonly type: 'progress'; readonly phase: 'mark' | 'sweep'; readonly done: number; readonly total: number };

export type EmitEvent = (e: GcEvent) => void;

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
