/**
 * The wrapper every driver is used through (distribution registry/storage/driver/base/base.go): it
 * validates each path before the driver sees it, turns any stray error into a DriverError naming the
 * driver, and reports each call to an optional observer, which is where metrics plug in.
 */
import { DriverError, InvalidOffsetError, InvalidPathError } from './driver.js';
import type { CallOptions, DriverErrorCode, FileInfo, FileWriter, StorageDriver } from './driver.js';

/** The driver operations, as reported to a {@link DriverCallObserver}. */
export type DriverOp =
  | 'getContent'
  | 'putContent'
  | 'createContent'
  | 'reader'
  | 'writer'
  | 'stat'
  | 'list'
  | 'move'
  | 'delete'
  | 'walk'
  | 'redirectUrl';

/** One finished driver call. `outcome` is `ok`, the DriverError code, or `aborted`. */
export interface DriverCall {
  readonly driver: string;
  readonly op: DriverOp;
  readonly seconds: number;
  readonly outcome: 'ok' | 'aborted' | DriverErrorCode;
}

/**
 * Told about every call once it settles (for `reader` and `writer`, once the stream is open; for `walk`,
 * once the iteration ends). The metrics module supplies one; it must not throw.
 */
export type DriverCallObserver = (call: DriverCall) => void;

/** `/`-separated segments of `[A-Za-z0-9._-]`, none of them `.` or `..`: checked on every driver call, in one pass. */
const PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/;

/**
 * True when `path` is a valid driver path: `/`-separated segments of `[A-Za-z0-9._-]`, none of them
 * `.` or `..`; `/` alone only when `allowRoot` (list and walk). Such a path cannot leave the root.
 */
export function isValidPath(path: string, allowRoot = false): boolean {
  if (path === '/') return allowRoot;
  return PATH.test(path);
}

/**
 * Wraps `driver` so that every call first validates its paths and offset and checks its signal, then
 * delegates. The result rejects with InvalidPathError(driver.name, path) or InvalidOffsetError before
 * the driver is called; a non-DriverError from the driver becomes a DRIVER_FAILURE DriverError (with the
 * original as `cause`), except the rejection of an aborted call, which passes through unchanged.
 * Errors that streams emit later (reader, writer) are not wrapped.
 */
export function instrument(driver: StorageDriver, observe?: DriverCallObserver): StorageDriver {
  type Fn<T> = () => Promise<T>;
  const call = <T>(op: DriverOp, paths: readonly string[], o: CallOptions | undefined, fn: Fn<T>): Promise<T> =>
    timed(driver.name, op, observe, o, async () => {
      for (const p of paths) checkPath(driver.name, p, false);
      o?.signal?.throwIfAborted();
      return fn();
    });
  const wrapped: StorageDriver = {
    name: driver.name,
    ...(driver.capabilities && { capabilities: driver.capabilities }),
    getContent: (p, o) => call('getContent', [p], o, () => driver.getContent(p, o)),
    putContent: (p, data, o) => call('putContent', [p], o, () => driver.putContent(p, data, o)),
    reader: (p, offset, o) =>
      call('reader', [p], o, () => {
        if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOffsetError(driver.name, p, offset);
        return driver.reader(p, offset, o);
      }),
    writer: (p, o): Promise<FileWriter> => call('writer', [p], o, () => driver.writer(p, o)),
    stat: (p, o) => call('stat', [p], o, () => driver.stat(p, o)),
    list: (p, o) =>
      timed(driver.name, 'list', observe, o, async () => {
        checkPath(driver.name, p, true);
        o?.signal?.throwIfAborted();
        return driver.list(p, o);
      }),
    move: (from, to, o) => call('move', [from, to], o, () => driver.move(from, to, o)),
    delete: (p, o) => call('delete', [p], o, () => driver.delete(p, o)),
    walk: (p, o) => walkChecked(driver, p, o, observe),
  };
  const leftovers = driver.leftovers?.bind(driver);
  if (leftovers !== undefined) {
    wrapped.leftovers = async function* (p, o) {
      checkPath(driver.name, p, true);
      yield* leftovers(p, o);
    };
  }
  const exists = driver.exists?.bind(driver);
  // Reported as a stat: it is one, answered as a yes or no.
  if (exists !== undefined) wrapped.exists = (p, o) => call('stat', [p], o, () => exists(p, o));
  const tree = driver.tree?.bind(driver);
  if (tree !== undefined) {
    wrapped.tree = async function* (p, o) {
      checkPath(driver.name, p, true);
      yield* tree(p, o);
    };
  }
  // The writers' records are bookkeeping, not calls on the tree: passed through as they are.
  if (driver.during) wrapped.during = driver.during.bind(driver);
  if (driver.writers) wrapped.writers = driver.writers.bind(driver);
  if (driver.forgetWriter) wrapped.forgetWriter = driver.forgetWriter.bind(driver);
  const createContent = driver.createContent?.bind(driver);
  if (createContent !== undefined) {
    wrapped.createContent = (p, data, o) => call('createContent', [p], o, () => createContent(p, data, o));
  }
  const redirectUrl = driver.redirectUrl?.bind(driver);
  if (redirectUrl !== undefined) {
    wrapped.redirectUrl = (p, method) => call('redirectUrl', [p], undefined, () => redirectUrl(p, method));
  }
  return wrapped;
}

function checkPath(driver: string, path: string, allowRoot: boolean): void {
  if (typeof path !== 'string' || !isValidPath(path, allowRoot)) throw new InvalidPathError(driver, path);
}

/** Validates lazily, so that every error (invalid path included) surfaces on iteration. */
async function* walkChecked(
  driver: StorageDriver,
  path: string,
  o: CallOptions | undefined,
  observe: DriverCallObserver | undefined,
): AsyncGenerator<FileInfo> {
  const started = performance.now();
  let outcome: DriverCall['outcome'] = 'ok';
  try {
    checkPath(driver.name, path, true);
    o?.signal?.throwIfAborted();
    yield* driver.walk(path, o);
  } catch (err) {
    const e = normalise(driver.name, err, o);
    outcome = outcomeOf(e, o);
    throw e;
  } finally {
    observe?.({ driver: driver.name, op: 'walk', seconds: (performance.now() - started) / 1000, outcome });
  }
}

/** Runs `fn`, normalises what it throws and reports the call. This is the metrics seam. */
async function timed<T>(
  driver: string,
  op: DriverOp,
  observe: DriverCallObserver | undefined,
  o: CallOptions | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  if (observe === undefined) {
    // Nobody to tell (the offline commands): no clock read around each call.
    try {
      return await fn();
    } catch (err) {
      throw normalise(driver, err, o);
    }
  }
  const started = performance.now();
  let outcome: DriverCall['outcome'] = 'ok';
  try {
    return await fn();
  } catch (err) {
    const e = normalise(driver, err, o);
    outcome = outcomeOf(e, o);
    throw e;
  } finally {
    observe({ driver, op, seconds: (performance.now() - started) / 1000, outcome });
  }
}

function normalise(driver: string, err: unknown, o: CallOptions | undefined): unknown {
  if (err instanceof DriverError || o?.signal?.aborted) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new DriverError('DRIVER_FAILURE', driver, message, { cause: err });
}

function outcomeOf(err: unknown, o: CallOptions | undefined): DriverCall['outcome'] {
  if (o?.signal?.aborted) return 'aborted';
  return err instanceof DriverError ? err.code : 'DRIVER_FAILURE';
}
