/**
 * A survey of a filesystem tree for the offline collector, read by several threads at once (issue #19).
 *
 * The offline `garbage-collect` reads, per repository, two listings and their `<alg>` folders, a stat
 * of each revision link and each revision's manifest; and the blob store's `<hex2>` folders: on a
 * tree of 10,000 repositories some 60,000 blocking system calls, whose cost is the calls themselves
 * and the JavaScript around each. One thread makes them one after another; here they are shared out
 * between the main thread and worker threads (one thread per core in all, `survey-worker.ts`), each
 * with its own blocking filesystem driver over the same root (survey-reader.ts). The work is cut into
 * pieces: the folders directly under `repositories/`, a batch at a time (each folder walked whole by
 * one thread, nested repositories included), and the blob store's `<hex2>` folders. Every thread is
 * given the whole list and takes the next piece itself, from a counter in shared memory, whenever it
 * is done with one: no thread waits on another to be handed work (the main thread, busy reading a long
 * piece itself, once left a worker idle for the length of that piece: issue #19).
 *
 * What the threads read is what the mark and the sweep would have read through `Inventory.contents`,
 * `references`, `tags` and `blobDigests`, by the same code (each thread's inventory is
 * `createInventory` over its own driver), and it is put back in the order a serial run reads it:
 * repositories sorted, blob folders in listing order. `surveyedInventory` then answers those calls
 * from the survey and hands every other call (stats, deletions, crash leftovers) to the registry's own
 * inventory: the mark itself (gc/) runs unchanged on the main thread, so it marks the very same set.
 *
 * Only for a process that owns the tree while it reads (the offline command): a survey is a picture of
 * the tree taken before the mark begins, which a server writing beside it would outdate. A failure in
 * any thread (a driver error, a worker that cannot start) fails the survey, and the run with it,
 * before anything is deleted.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest.js';
import { type CallOptions, type StorageDriver, isDriverError } from '../driver/driver.js';
import { createDriver } from '../driver/factory.js';
import { unlessNotFound } from '../driver/not-found.js';
import { compareStrings } from '../listing.js';
import { baseName, paths } from '../paths.js';
import type { RepoName, Tag } from '../reference.js';
import type { Inventory, Leftover, ManifestReferences, RepositoryContents, TagEntry } from './inventory.js';
import { type RepositorySurvey, type SurveyFound, type SurveyWork, surveyReader, takePiece } from './survey-reader.js';

export type { RepositorySurvey } from './survey-reader.js';

/**
 * A worker's answer to one piece: what it found as JSON text (a string crosses to the main thread as
 * one copy; the objects themselves cost several times as much to send, one by one), or its failure.
 */
export type SurveyReply =
  | { readonly id: number; readonly found: string }
  | { readonly id: number; readonly error: string }
  /** Sent last, once no piece is left to take: every answer of this worker came before it. */
  | { readonly done: true };

/** What a worker is started with (its `workerData`). */
export interface SurveyWorkerData {
  /** The filesystem root (storage.filesystem.rootdirectory), absolute. */
  readonly root: string;
  /** Every piece of the survey, in order. */
  readonly pieces: readonly SurveyWork[];
  /** The next piece to take (an Int32 at index 0), shared by every thread of the survey: see takePiece. */
  readonly next: SharedArrayBuffer;
}

export interface SurveyOptions {
  /** The filesystem root (storage.filesystem.rootdirectory). */
  readonly root: string;
  /** Read each repository's tags too (the mark's `deleteUntagged`). */
  readonly tags: boolean;
  /**
   * Look through the whole tree for crash leftovers too (the run will: gc/leftovers.ts): the driver's
   * temporary files, and each repository's unfinished tags.
   */
  readonly leftovers?: boolean;
  /** Threads reading, the main thread included; default: one per core (availableParallelism), at most MAX_THREADS. */
  readonly threads?: number;
  readonly signal?: AbortSignal;
}

/** What the threads found: every repository the mark goes through, and every blob folder. */
export interface Survey {
  /** Sorted by name, as Inventory.repositories answers them. */
  readonly repositories: readonly RepositorySurvey[];
  /** In the order Inventory.blobDigests answers them. */
  readonly blobDigests: readonly Digest[];
  /**
   * With `leftovers`: every temporary file in the tree (those outside the pieces' folders first, then
   * each piece's, in the pieces' order).
   */
  readonly leftovers?: readonly Leftover[];
}

/** Threads reading at most, whatever the core count: past a few, the disk rather than the calls bounds a survey. */
export const MAX_THREADS = 4;
/** Top-level folders of `repositories/` in one piece of work. */
const DIRS_PER_PIECE = 32;
/** `<hex2>` folders of the blob store in one piece of work. */
const FOLDERS_PER_PIECE = 16;

/** The threads a survey reads with on this machine by default (1: a survey would only add work). */
export function defaultSurveyThreads(): number {
  return Math.min(availableParallelism(), MAX_THREADS);
}

/**
 * `inv` answering the mark's and the sweep's reads from a survey of the tree under `o.root`
 * (surveyTree, surveyedInventory). @throws what surveyTree throws
 */
export async function readAhead(inv: Inventory, o: SurveyOptions): Promise<Inventory> {
  return surveyedInventory(inv, await surveyTree(o));
}

/**
 * Reads the tree under `o.root` with `o.threads` threads (the main thread and workers).
 * @throws the first failure a thread reports, or a worker's own failure to start
 */
export async function surveyTree(o: SurveyOptions): Promise<Survey> {
  const root = resolve(o.root);
  const driver = createDriver({ kind: 'filesystem', root, blocking: true });
  const call: CallOptions = o.signal ? { signal: o.signal } : {};
  const pieces: SurveyWork[] = [];
  const top = ((await unlessNotFound(() => driver.list(paths.repositoriesUnder(''), call))) ?? []).filter((p) => !baseName(p).startsWith('_'));
  const leftovers = o.leftovers === true;
  for (let i = 0; i < top.length; i += DIRS_PER_PIECE) pieces.push({ kind: 'repositories', dirs: top.slice(i, i + DIRS_PER_PIECE), tags: o.tags, leftovers });
  const folders: string[] = [];
  for (const alg of (await unlessNotFound(() => driver.list(paths.blobsRoot, call))) ?? []) {
    if (!isDigestAlgorithmFolder(alg)) continue;
    folders.push(...((await unlessNotFound(() => driver.list(alg, call))) ?? []));
  }
  for (let i = 0; i < folders.length; i += FOLDERS_PER_PIECE) pieces.push({ kind: 'blobs', folders: folders.slice(i, i + FOLDERS_PER_PIECE), leftovers });

  // The temporary files outside the pieces' folders (the folders above them, and anything beside).
  const temps: Leftover[] = leftovers ? await leftoversOutside(driver, new Set([...top, ...folders]), call) : [];
  const found = await readPieces(root, pieces, Math.max(1, o.threads ?? defaultSurveyThreads()), o.signal);
  const repositories: RepositorySurvey[] = [];
  const blobDigests: Digest[] = [];
  for (const f of found) {
    if ('repositories' in f) repositories.push(...f.repositories);
    else blobDigests.push(...f.digests);
    temps.push(...(f.leftovers ?? []));
  }
  repositories.sort((a, b) => compareStrings(a.name, b.name));
  return { repositories, blobDigests, ...(leftovers && { leftovers: temps }) };
}

/** The driver's temporary files in the registry tree but not under `skip` (none when the tree is not there yet). */
async function leftoversOutside(driver: StorageDriver, skip: ReadonlySet<string>, o: CallOptions): Promise<Leftover[]> {
  const found: Leftover[] = [];
  try {
    for await (const f of driver.leftovers?.(paths.root, { ...o, skip }) ?? []) found.push({ path: f.path, modTime: f.modTime.getTime() });
  } catch (err) {
    if (!isDriverError(err, 'PATH_NOT_FOUND')) throw err;
  }
  return found;
}

/** `blobs/<alg>` folders of the algorithms Berth knows, as Inventory.blobDigests lists them. */
function isDigestAlgorithmFolder(path: string): boolean {
  const alg = baseName(path);
  return alg === 'sha256' || alg === 'sha512';
}

/**
 * What each piece found, in the pieces' order: read by this thread and `threads - 1` workers, each
 * taking the next piece from the shared counter (takePiece) when it is done with one, until none is left.
 */
function readPieces(root: string, pieces: readonly SurveyWork[], threads: number, signal?: AbortSignal): Promise<SurveyFound[]> {
  const found: SurveyFound[] = new Array<SurveyFound>(pieces.length);
  const next = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  return new Promise<SurveyFound[]>((resolveAll, reject) => {
    const workers: Worker[] = [];
    let answered = 0;
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      // No thread takes another piece; the workers have nothing left to do.
      Atomics.store(new Int32Array(next), 0, pieces.length);
      for (const w of workers) void w.terminate();
      if (err === undefined) resolveAll(found);
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onAbort = (): void => finish(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (id: number, f: SurveyFound): void => {
      found[id] = f;
      answered += 1;
      if (answered === pieces.length) finish();
    };
    if (pieces.length === 0) return finish();
    for (let i = 1; i < Math.min(threads, pieces.length); i++) {
      const w = startWorker({ root, pieces, next });
      workers.push(w);
      let through = false;
      w.on('message', (reply: SurveyReply) => {
        if (settled) return;
        if ('done' in reply) through = true;
        else if ('error' in reply) finish(new Error(`garbage collection survey: ${reply.error}`));
        else done(reply.id, JSON.parse(reply.found) as SurveyFound);
      });
      w.on('error', (err) => finish(err));
      // A worker exits once no piece is left to take (survey-worker.ts), after its last answer (Node
      // delivers a worker's messages before its exit); any other exit may have taken a piece unanswered.
      w.on('exit', (code) => {
        if (!through) finish(new Error(`garbage collection survey: a worker exited (code ${code}) before the survey was done`));
      });
    }
    // This thread reads too, a piece at a time, letting the workers' answers in between (each piece is
    // blocking calls: without the turn of the event loop their messages would wait until the end).
    const read = surveyReader(root);
    const readHere = async (): Promise<void> => {
      for (let id = takePiece(next, pieces.length); id !== undefined && !settled; id = takePiece(next, pieces.length)) {
        done(id, await read(pieces[id]!));
        await new Promise<void>((turn) => setImmediate(turn));
      }
    };
    readHere().catch((err: unknown) => finish(err));
  });
}

/**
 * The worker from the same build as this module: `survey-worker.js` beside it (the bundle's own entry
 * point in dist/), or, when this runs from the TypeScript sources (tsx, vitest), `survey-worker.ts`
 * loaded through tsx's ESM hooks, registered in the worker first (the sources only ever run through tsx).
 */
function startWorker(data: SurveyWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./survey-worker.js', import.meta.url), { workerData: data });
  const entry = JSON.stringify(new URL('./survey-worker.ts', import.meta.url).href);
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${entry}); });`;
  return new Worker(boot, { eval: true, workerData: data });
}

/**
 * `inv`, but answering `repositories`, `contents` (without times), `references` and `tags` of the
 * surveyed repositories and `blobDigests` from `survey`, and, when it looked for them, `leftovers`
 * and `unfinishedTags` (each tag it found unfinished looked at again, just before it is answered, by
 * Inventory.unfinishedTag); every other call goes to `inv`. A repository's contents and tags are
 * answered from the survey once (the mark asks once) and from `inv` after that.
 */
export function surveyedInventory(inv: Inventory, survey: Survey): Inventory {
  const contents = new Map<RepoName, RepositoryContents>();
  const tags = new Map<RepoName, readonly TagEntry[]>();
  const references = new Map<Digest, ManifestReferences>();
  const unfinished = new Map<RepoName, readonly Tag[]>();
  for (const r of survey.repositories) {
    contents.set(r.name, r.contents);
    if (r.tags !== undefined) tags.set(r.name, r.tags);
    if (r.unfinished !== undefined) unfinished.set(r.name, r.unfinished);
    for (const [d, refs] of r.references) references.set(d, refs);
  }
  const names = survey.repositories.map((r) => r.name);
  return {
    ...inv,
    async *repositories() {
      yield* names;
    },
    async contents(name, o) {
      const surveyed = o?.times === true ? undefined : contents.get(name);
      if (surveyed === undefined) return inv.contents(name, o);
      contents.delete(name);
      return surveyed;
    },
    async references(d, o) {
      return references.get(d) ?? inv.references(d, o);
    },
    async *tags(name, o) {
      const surveyed = tags.get(name);
      if (surveyed === undefined) {
        yield* inv.tags(name, o);
        return;
      }
      tags.delete(name);
      yield* surveyed;
    },
    async *blobDigests() {
      yield* survey.blobDigests;
    },
    async *leftovers(o) {
      if (survey.leftovers === undefined) yield* inv.leftovers(o);
      else yield* survey.leftovers;
    },
    async *unfinishedTags(name, o) {
      const surveyed = unfinished.get(name);
      if (surveyed === undefined) {
        yield* inv.unfinishedTags(name, o);
        return;
      }
      for (const tag of surveyed) {
        const still = await inv.unfinishedTag(name, tag, o);
        if (still !== undefined) yield still;
      }
    },
  };
}
