/**
 * Blob upload sessions of one repository: `_uploads/<uuid>/{data,startedat,hashstates/sha256/<offset>}`.
 *
 * Bytes are hashed while they are written. A request that ends the upload in one go (a monolithic PUT)
 * uses Node's native SHA-256, and so do PATCHes when this process is alone on its storage (the running
 * hash is kept in memory between them). When other processes may take the next request (replicas, S3:
 * `sessions.saveHashStates`), a PATCH uses a resumable SHA-256 (resumable-sha256.ts) and, before it is
 * answered, saves its state where registry:2 saves its own, `hashstates/sha256/<offset>` (Go's format),
 * also keeping it in memory. The next PATCH or the commit, here, on another replica or after a restart,
 * takes up the state saved for the data's current size (a state is trusted only for the offset in its
 * name, which its own length must match), and goes on saving. With none that fits (a restart of a lone
 * process, a write failed, a state is unreadable) the commit hashes `data` again, as registry:2 does.
 *
 * Commit: verify the digest, move `data` to the blob path (or drop it when the blob already exists),
 * write the `_layers` link, remove the session. Requests on one session are serialised in-process.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { asStorageFull, blobUploadUnknown, digestInvalid, isRegistryError, rangeInvalid } from '../../errors.js';
import type { BlobInfo, BlobStore } from '../blobs/blobs.js';
import { type Digest, Digester, type RunningHash, digestAlgorithm } from '../digest.js';
import { type CallOptions, InvalidOffsetError, type StorageDriver } from '../driver/driver.js';
import type { LinkGate } from '../maintenance/link-gate.js';
import type { LinkedBlobStore } from '../blobs/linked-blobs.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { formatStartedAt, paths } from '../paths.js';
import type { RepoName, UploadId } from '../reference.js';
import type { UploadSessions } from './upload-sessions.js';
import { ResumableSha256 } from './resumable-sha256.js';
import { type BodyPacer, feed } from './body-feed.js';
import type { DeclaredBlob, Quotas } from '../quotas/quota-port.js';

/** Where an upload session stands. */
export interface UploadStatus {
  readonly id: UploadId;
  /** Bytes received so far. */
  readonly size: number;
  readonly startedAt: Date;
}

/** Options of append and commit. */
export interface AppendOptions extends CallOptions {
  /** Where the client says its bytes start (Content-Range, or the offset of its `_state`). */
  readonly expectedOffset?: number;
  /** The body's length when the client declared it (Content-Length): a hint for the storage driver's writer. */
  readonly length?: number | undefined;
  /** Told of every chunk of the body before it is taken, and may hold it back a while (body-feed.ts). */
  readonly pacer?: BodyPacer | undefined;
}

/** Options of an upload's start. */
export interface StartOptions extends CallOptions {
  /** The blob a monolithic upload declares (its digest and Content-Length), checked against the quotas. */
  readonly declared?: DeclaredBlob | undefined;
}

/** The upload sessions of one repository. */
export interface UploadStore {
  /** @throws RegistryError DENIED when a quota refuses the upload (quotas.ts) */
  start(o?: StartOptions): Promise<UploadStatus>;
  /** @throws RegistryError BLOB_UPLOAD_UNKNOWN */
  status(id: UploadId, o?: CallOptions): Promise<UploadStatus>;
  /**
   * Appends a request body. The body is read, never destroyed: when the write fails midway, what is left
   * of it is still in it (paused), for the caller. @throws BLOB_UPLOAD_UNKNOWN, RANGE_INVALID (offset is
   * not the current size)
   */
  append(id: UploadId, body: Readable, o?: AppendOptions): Promise<UploadStatus>;
  /**
   * Appends `body` if given, then verifies and publishes the blob. @throws DIGEST_INVALID and append's
   * errors, DENIED when a quota refuses the blob (the session is then removed)
   */
  commit(id: UploadId, d: Digest, body: Readable | undefined, o?: AppendOptions): Promise<BlobInfo>;
  /** @throws BLOB_UPLOAD_UNKNOWN */
  cancel(id: UploadId, o?: CallOptions): Promise<void>;
}

/** A repository's upload sessions as a pull-through cache also uses them. */
export interface CacheUploads extends UploadStore {
  /**
   * Stores blob `d` from `body` in one go (a new session, written, made durable, published and linked)
   * without hashing it: the caller verifies `body` against `d` as it streams, and `body` must end only
   * when its bytes match `d` and fail otherwise (a pull-through cache hashes what it fetches once).
   * Nothing is kept when `body` fails. @throws the body's error, STORAGE_FULL, DENIED (storage.quotas)
   */
  ingestVerified(d: Digest, body: Readable, o?: IngestOptions): Promise<BlobInfo>;
}

export interface IngestOptions extends CallOptions {
  /**
   * Told, once the session's file is open, how to read back what has been written to it so far (from
   * `start` to the file's current end; nothing while the file is shorter than `start`) before the commit, for readers that would rather not wait for it.
   * Only where the driver can read a file while it is written (`capabilities.readsWhileWriting`); the
   * reads fail once the commit has moved the file.
   */
  readonly onWriting?: (readWritten: (start: number) => Promise<Readable>) => void;
}

/** What an upload store needs from its repository and registry. */
export interface UploadStoreOptions {
  readonly driver: StorageDriver;
  readonly name: RepoName;
  readonly blobs: BlobStore;
  readonly linked: LinkedBlobStore;
  readonly sessions: UploadSessions;
  readonly gate: LinkGate;
  readonly quotas: Quotas;
  readonly now?: () => Date;
}

/** The upload store of one repository. */
export function createUploadStore(opts: UploadStoreOptions): CacheUploads {
  const { driver, name, sessions } = opts;
  const key = (id: UploadId): string => paths.upload(name, id);

  const status = async (id: UploadId, o?: CallOptions): Promise<UploadStatus> => {
    const startedAt = await unlessNotFound(() => driver.getContent(paths.uploadStartedAt(name, id), o));
    const data = await unlessNotFound(() => driver.stat(paths.uploadData(name, id), o));
    if (startedAt === undefined || data === undefined || data.isDir) throw blobUploadUnknown(id);
    const parsed = new Date(startedAt.toString('utf8').trim());
    return { id, size: data.size, startedAt: Number.isNaN(parsed.getTime()) ? new Date(0) : parsed };
  };

  /** The SHA-256 state saved in storage for the session at `size` bytes; undefined when none can be read. */
  const storedHashState = async (id: UploadId, size: number, o: CallOptions): Promise<Buffer | undefined> => {
    try {
      return await driver.getContent(paths.uploadHashState(name, id, 'sha256', size), o);
    } catch (err) {
      if (o.signal?.aborted === true) throw err;
      return undefined; // missing or unreadable: the commit reads the data instead
    }
  };

  /**
   * The running hash of a session whose data is `size` bytes long: a new one at 0 (Node's native hash
   * for a request that ends the upload or when no state is saved, else the resumable one), else the
   * hash kept in memory or the state saved at exactly `size`. Undefined when none fits: the commit then
   * reads the data back.
   */
  const runningHash = async (id: UploadId, size: number, final: boolean, o: CallOptions): Promise<RunningHash | undefined> => {
    if (size === 0) return final || !sessions.saveHashStates ? Digester.create() : ResumableSha256.create();
    const kept = sessions.takeHash(key(id), size);
    if (kept instanceof Digester) return kept;
    const state = kept?.state ?? (await storedHashState(id, size, o));
    return state === undefined ? undefined : ResumableSha256.resume(state, size);
  };

  /**
   * Saves `hash`'s state at `hashstates/sha256/<size>` and in memory. A state that cannot be written
   * costs the next request on another process a re-read, so a failure here does not fail the PATCH,
   * whose bytes are already stored; nor does the client going away stop it.
   */
  const saveHashState = async (id: UploadId, hash: ResumableSha256): Promise<void> => {
    const saved = { size: hash.size, state: hash.state() };
    await driver.putContent(paths.uploadHashState(name, id, 'sha256', saved.size), saved.state).catch(() => undefined);
    sessions.keepHash(key(id), saved);
  };

  /**
   * Writes `body` after the current end, hashing it; `final` also commits the writer. Answers the new
   * status and the hash of all the data, when there is one. Caller holds the session lock.
   */
  const write = async (
    id: UploadId,
    body: Readable | undefined,
    o: AppendOptions,
    final: boolean,
  ): Promise<{ status: UploadStatus; hash: RunningHash | undefined }> => {
    const current = await status(id, o);
    if (o.expectedOffset !== undefined && o.expectedOffset !== current.size) {
      throw rangeInvalid(`upload is at offset ${current.size}, not ${o.expectedOffset}`);
    }
    const hash = await runningHash(id, current.size, final, o);
    const expected = body === undefined ? 0 : o.length;
    const writer = await driver.writer(paths.uploadData(name, id), {
      append: true, ...signalOf(o), ...(expected !== undefined && { expectedBytes: expected }),
    });
    try {
      if (body) await feed(body, writer, { hash, pacer: o.pacer, signal: o.signal });
      else await new Promise<void>((resolve, reject) => writer.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (final) await writer.commit();
    } catch (err) {
      writer.destroy();
      throw asStorageFull(err) ?? err; // no state is saved: the hash may have seen bytes the file did not keep
    }
    const whole = hash?.size === writer.size ? hash : undefined;
    // Kept for the next request here (a commit refused for its digest may be tried again); a PATCH's
    // resumable state is saved in storage for the other processes too.
    if (whole instanceof Digester) sessions.keepHash(key(id), whole);
    else if (whole instanceof ResumableSha256 && final) sessions.keepHash(key(id), { size: whole.size, state: whole.state() });
    else if (whole instanceof ResumableSha256) await saveHashState(id, whole);
    return { status: { ...current, size: writer.size }, hash: whole };
  };

  const start = async (o: StartOptions = {}): Promise<UploadStatus> => {
    await opts.quotas.checkStart(name, o.declared, signalOf(o));
    const id = randomUUID() as UploadId;
    const startedAt = (opts.now ?? (() => new Date()))();
    // Both files are durable before the session is answered; written side by side, their fsyncs overlap.
    await Promise.all([
      driver.putContent(paths.uploadStartedAt(name, id), Buffer.from(formatStartedAt(startedAt)), o),
      driver.putContent(paths.uploadData(name, id), new Uint8Array(0), o),
    ]).catch(async (err: unknown) => {
      const full = asStorageFull(err);
      if (full === undefined) throw err;
      await deleteIfExists(driver, paths.upload(name, id)).catch(() => undefined); // no half-made session left
      throw full;
    });
    return { id, size: 0, startedAt };
  };

  return {
    start,
    status,
    append: (id, body, o = {}) =>
      sessions.exclusive(key(id), async () => (await write(id, body, o, false)).status),
    commit: (id, d, body, o = {}) =>
      sessions.exclusive(key(id), async () => {
        const { status: { size }, hash } = await write(id, body, o, true);
        const actual = await digestOfUpload(opts, id, d, hash, o);
        if (actual !== d) throw digestInvalid('uploaded content does not match the digest', { expected: d, actual });
        // Verified: this is the commit point. A client that goes away now must not leave the blob
        // moved but unlinked, so publishing no longer listens to the request's signal.
        try {
          await opts.quotas.admitLink(name, d, size, () => publish(opts, id, d, {}));
        } catch (err) {
          if (isRegistryError(err, 'DENIED')) {
            sessions.forget(key(id));
            await deleteIfExists(driver, paths.upload(name, id)).catch(() => undefined); // refused bytes are not kept
          }
          throw asStorageFull(err) ?? err;
        }
        sessions.forget(key(id));
        return { digest: d, size };
      }),
    async ingestVerified(d, body, o = {}) {
      const { id } = await start(o);
      try {
        return await sessions.exclusive(key(id), async () => {
          // A session just made, and nobody else's: written from its start without reading its state back.
          const data = paths.uploadData(name, id);
          const writer = await driver.writer(data, { append: true, ...signalOf(o) });
          if (o.onWriting !== undefined && driver.capabilities?.readsWhileWriting === true) o.onWriting((start) => readWritten(driver, data, start));
          try {
            await pipeline(body, writer, signalOf(o));
            await writer.commit();
          } catch (err) {
            writer.destroy();
            throw err;
          }
          const size = writer.size;
          await opts.quotas.admitLink(name, d, size, () => publish(opts, id, d, {}));
          return { digest: d, size };
        });
      } catch (err) {
        await deleteIfExists(driver, paths.upload(name, id)).catch(() => undefined); // nothing of it is kept
        throw asStorageFull(err) ?? err;
      }
    },
    async cancel(id, o) {
      await sessions.exclusive(key(id), async () => {
        sessions.forget(key(id));
        if (!(await deleteIfExists(driver, paths.upload(name, id), o))) throw blobUploadUnknown(id);
      });
    },
  };
}

/**
 * The digest of the session's data in `d`'s algorithm: from the hash of all of it when there is one,
 * else read back. A resumable hash that disagrees with `d` is checked against the data too: it may have
 * been taken up from a state that is corrupt in a way its size cannot show.
 */
async function digestOfUpload(
  opts: UploadStoreOptions,
  id: UploadId,
  d: Digest,
  whole: RunningHash | undefined,
  o: CallOptions,
): Promise<Digest> {
  const alg = digestAlgorithm(d);
  if (whole?.algorithm === alg) {
    const running = whole.digest();
    if (running === d || !(whole instanceof ResumableSha256)) return running;
  }
  const digester = Digester.create(alg);
  const reader = await opts.driver.reader(paths.uploadData(opts.name, id), 0, o);
  for await (const chunk of reader as AsyncIterable<Buffer>) digester.update(chunk);
  return digester.digest();
}

/** Moves verified data to the blob path (unless the blob exists), links it, removes the session. */
async function publish(opts: UploadStoreOptions, id: UploadId, d: Digest, o: CallOptions): Promise<void> {
  const { driver, name } = opts;
  // Inside the gate: the collector cannot delete the blob between "it exists, keep ours out" and the link.
  await opts.gate.link([d], async () => {
    if ((await opts.blobs.stat(d, o)) === undefined) await driver.move(paths.uploadData(name, id), paths.blobData(d), o);
    await opts.linked.link(d, o);
  });
  await deleteIfExists(driver, paths.upload(name, id), o);
}

/** The bytes of the file at `path` from `start` to its current end; none while it is shorter than that. */
async function readWritten(driver: StorageDriver, path: string, start: number): Promise<Readable> {
  try {
    return await driver.reader(path, start);
  } catch (err) {
    if (err instanceof InvalidOffsetError) return Readable.from([]);
    throw err;
  }
}

function signalOf(o: CallOptions): CallOptions {
  return o.signal ? { signal: o.signal } : {};
}
