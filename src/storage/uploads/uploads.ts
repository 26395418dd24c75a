/**
 * Blob upload sessions of one repository: `_uploads/<uuid>/{data,startedat}`.
 *
 * Bytes are hashed while they are written. The running hash is kept in memory between requests (keyed
 * by session and offset); when it is missing or stale (a restart, another replica, a failed request)
 * the commit hashes `data` again from the start, as registry:2 does when it has no hash state.
 *
 * Commit: verify the digest, move `data` to the blob path (or drop it when the blob already exists),
 * write the `_layers` link, remove the session. Requests on one session are serialised in-process.
 */
import { randomUUID } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { asStorageFull, blobUploadUnknown, digestInvalid, isRegistryError, rangeInvalid } from '../../errors.js';
import type { BlobInfo, BlobStore } from '../blobs/blobs.js';
import { type Digest, Digester, digestAlgorithm } from '../digest.js';
import type { CallOptions, StorageDriver } from '../driver/driver.js';
import type { LinkGate } from '../maintenance/link-gate.js';
import type { LinkedBlobStore } from '../blobs/linked-blobs.js';
import { deleteIfExists, unlessNotFound } from '../driver/not-found.js';
import { formatStartedAt, paths } from '../paths.js';
import type { RepoName, UploadId } from '../reference.js';
import type { UploadSessions } from './upload-sessions.js';
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
  /** Appends a request body. @throws BLOB_UPLOAD_UNKNOWN, RANGE_INVALID (offset is not the current size) */
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
  ingestVerified(d: Digest, body: Readable, o?: CallOptions): Promise<BlobInfo>;
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

  /**
   * Writes `body` after the current end, hashing it unless `verified` (the caller checks the bytes);
   * `final` also commits the writer. Caller holds the session lock.
   */
  const write = async (id: UploadId, body: Readable | undefined, o: AppendOptions, final: boolean, verified = false): Promise<UploadStatus> => {
    const current = await status(id, o);
    if (o.expectedOffset !== undefined && o.expectedOffset !== current.size) {
      throw rangeInvalid(`upload is at offset ${current.size}, not ${o.expectedOffset}`);
    }
    const digester = verified ? undefined : sessions.takeHash(key(id), current.size);
    const writer = await driver.writer(paths.uploadData(name, id), { append: true, ...signalOf(o) });
    try {
      if (body && verified) await pipeline(body, writer, signalOf(o));
      else if (body) await pipeline(body, hashing(digester), writer, signalOf(o));
      else await new Promise<void>((resolve, reject) => writer.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (final) await writer.commit();
    } catch (err) {
      writer.destroy();
      throw asStorageFull(err) ?? err; // the hash is dropped: it may have seen bytes the file did not keep
    }
    if (digester) sessions.keepHash(key(id), digester);
    return { ...current, size: writer.size };
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
      sessions.exclusive(key(id), () => write(id, body, o, false)),
    commit: (id, d, body, o = {}) =>
      sessions.exclusive(key(id), async () => {
        const { size } = await write(id, body, o, true);
        const actual = await digestOfUpload(opts, id, d, size, o);
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
          const writer = await driver.writer(paths.uploadData(name, id), { append: true, ...signalOf(o) });
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

/** The digest of the session's data in `d`'s algorithm: from the running hash when it is current, else re-read. */
async function digestOfUpload(
  opts: UploadStoreOptions,
  id: UploadId,
  d: Digest,
  size: number,
  o: CallOptions,
): Promise<Digest> {
  const alg = digestAlgorithm(d);
  const running = opts.sessions.peekHash(paths.upload(opts.name, id), size);
  if (running && running.algorithm === alg) return running.digest();
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

/** A pass-through stream that feeds every chunk to `digester` (when there is one). */
function hashing(digester: Digester | undefined): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      digester?.update(chunk);
      callback(null, chunk);
    },
  });
}

function signalOf(o: CallOptions): CallOptions {
  return o.signal ? { signal: o.signal } : {};
}
