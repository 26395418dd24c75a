/**
 * The global, content-addressed blob store: `blobs/<alg>/<hex2>/<hex>/data`. It knows nothing of
 * repositories; whether a repository may serve a blob is decided by its links (repository.ts).
 */
import { Readable } from 'node:stream';
import { blobUnknown, tooLarge } from '../../errors.js';
import { type Digest, digestOf, digestAlgorithm } from '../digest.js';
import { type CallOptions, type StorageDriver, isSendable } from '../driver/driver.js';
import { unlessNotFound } from '../driver/not-found.js';
import { paths } from '../paths.js';

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

/** The global blob store: bytes by digest, shared by every repository. */
export interface BlobStore {
  /** The blob's size, or undefined when the store has no such blob. */
  stat(d: Digest, o?: CallOptions): Promise<BlobInfo | undefined>;
  /** A stream of the blob (or of `range`); a SendableReader when the driver's are (driver.ts). @throws RegistryError BLOB_UNKNOWN */
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
      const length = range === undefined ? undefined : range.end - range.start + 1;
      const options = length === undefined ? o : { ...o, length };
      const stream = await unlessNotFound(() => driver.reader(paths.blobData(d), range?.start ?? 0, options));
      if (stream === undefined) throw blobUnknown(d);
      if (length === undefined) return stream;
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
