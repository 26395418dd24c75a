/**
 * The global, content-addressed blob store: `blobs/<alg>/<hex2>/<hex>/data`. It knows nothing of
 * repositories; whether a repository may serve a blob is decided by its links (repository.ts).
 */
import { Readable, type Writable } from 'node:stream';
import { blobUnknown, tooLarge } from '../errors.js';
import { type Digest, digestOf, digestAlgorithm } from './digest.js';
import type { CallOptions, StorageDriver } from './driver/driver.js';
import { unlessNotFound } from './links.js';
import { paths } from './paths.js';

/** What a blob is: its digest and size in bytes. */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** A byte range, both ends inclusive, already checked against the blob's size. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * A blob stream that can do more than Readable (the filesystem driver's readers can): `cap(n)` limits it
 * to n bytes, and `sendTo(dest)` writes it to a writable that drops each chunk once it has called back
 * for it (a socket, an HTTP response) through a couple of reused buffers, then closes it; it rejects if
 * the transfer stops short. Used only before the stream has been read.
 */
export interface SendableStream extends Readable {
  cap(length: number): this;
  sendTo(dest: Writable): Promise<void>;
}

/** Whether `s` offers `cap` and `sendTo` (see SendableStream). */
export function isSendable(s: Readable): s is SendableStream {
  const maybe = s as Partial<SendableStream>;
  return typeof maybe.cap === 'function' && typeof maybe.sendTo === 'function';
}

/** The global blob store: bytes by digest, shared by every repository. */
export interface BlobStore {
  /** The blob's size, or undefined when the store has no such blob. */
  stat(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  /** A stream of the blob (or of `range`); it may be a SendableStream. @throws RegistryError BLOB_UNKNOWN */
  open(d: Digest, range?: ByteRange, o?: CallOptions): Promise<Readable>;
  /** Whole content of a small blob (a manifest). @throws BLOB_UNKNOWN, TooLargeError (SIZE_INVALID, 413) above `maxBytes` */
  readSmall(d: Digest, maxBytes: number, o?: CallOptions): Promise<Buffer>;
  /** Stores `content` under its digest (in `d`'s algorithm) unless it is already there. */
  putSmall(d: Digest, content: Uint8Array, o?: CallOptions): Promise<void>;
  /** A URL to fetch the blob from directly, when the driver offers one. */
  redirectUrl(d: Digest, method: 'GET' | 'HEAD'): Promise<string | undefined>;
}

/** A blob store over `driver`'s `blobs/` tree. */
export function createBlobStore(driver: StorageDriver): BlobStore {
  const stat = async (d: Digest, o?: CallOptions): Promise<BlobInfo | undefined> => {
    const info = await unlessNotFound(() => driver.stat(paths.blobData(d), o));
    return info === undefined || info.isDir ? undefined : { digest: d, size: info.size };
  };
  return {
    stat,
    async open(d, range, o) {
      const stream = await unlessNotFound(() => driver.reader(paths.blobData(d), range?.start ?? 0, o));
      if (stream === undefined) throw blobUnknown(d);
      if (range === undefined) return stream;
      const length = range.end - range.start + 1;
      return isSendable(stream) ? stream.cap(length) : limitStream(stream, length);
    },
    async readSmall(d, maxBytes, o) {
      const info = await stat(d, o);
      if (info === undefined) throw blobUnknown(d);
      if (info.size > maxBytes) throw tooLarge(maxBytes);
      const content = await unlessNotFound(() => driver.getContent(paths.blobData(d), o));
      if (content === undefined) throw blobUnknown(d);
      return content;
    },
    async putSmall(d, content, o) {
      if (digestOf(content, digestAlgorithm(d)) !== d) throw new Error(`content does not match ${d}`);
      if ((await stat(d, o)) !== undefined) return;
      await driver.putContent(paths.blobData(d), content, o);
    },
    async redirectUrl(d, method) {
      return driver.redirectUrl?.(paths.blobData(d), method);
    },
  };
}

/** Ends `source` after `length` bytes (a ranged read), destroying it so the file handle closes. */
async function* takeBytes(source: Readable, length: number): AsyncGenerator<Buffer> {
  let left = length;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (chunk.length >= left) {
        yield chunk.subarray(0, left);
        return;
      }
      left -= chunk.length;
      yield chunk;
    }
  } finally {
    source.destroy();
  }
}

function limitStream(source: Readable, length: number): Readable {
  // Readable.from keeps backpressure: the generator is pulled only as the consumer reads.
  return Readable.from(takeBytes(source, length), { objectMode: false });
}
