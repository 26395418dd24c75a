/**
 * The s3 storage driver: the StorageDriver contract over an S3 bucket (AWS S3, Ceph RGW, MinIO…)
 * through @aws-sdk/client-s3, with registry:2's s3 driver's key layout (s3-client.ts), so a bucket
 * written by one is served by the other.
 *
 * - Files are objects; directories are implicit (a directory exists while a key lies below it).
 * - putContent is one PutObject, so a reader sees the old object or the new one, never a part.
 * - Writers are multipart uploads kept open between writers until commit, resumable from any process
 *   (s3-writer.ts). While one is open, the object at its key is empty: `stat` of an empty object
 *   counts the parts of an upload open there, and `reader`, `getContent` and `move` of one complete
 *   that upload first (the writer's content is then the object, as after commit). Pending-part objects
 *   (`<key>~pending`) are never listed or walked.
 * - move is a server-side copy (CopyObject; UploadPartCopy in parts above the copy threshold, 5 GiB
 *   by default, CopyObject's limit), guarded by the source's ETag, then a delete of the source.
 * - delete lists the prefix (ListObjectsV2, 1000 keys a page) and removes it with DeleteObjects, and
 *   aborts uploads in progress below it, so a cancelled or purged upload leaves no hidden parts.
 * - list and walk page through ListObjectsV2 (with and without the `/` delimiter).
 * - reader fetches the object in ranged GetObjects, several at once, handed on in order (s3-reader.ts);
 *   a connection dropped mid-stream is resumed from the byte it stopped at (with If-Match, so a
 *   replaced object is never spliced in).
 * - redirectUrl presigns a GET or HEAD valid for 20 minutes (registry:2's expiry), unless disabled.
 */
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { HeadObjectCommandOutput, ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { DriverError, InvalidOffsetError, PathNotFoundError } from './driver.js';
import type { CallOptions, DriverCapabilities, FileInfo, FileWriter, ReaderOptions, StorageDriver, WriterOptions } from './driver.js';
import { REDIRECT_EXPIRY_SECONDS, createS3Context, headObject, s3Status } from './s3-client.js';
import type { S3Context, S3DriverOptions } from './s3-client.js';
import { abortUpload, isPendingKey, multipartCopy, openUploadAt, pendingKey, settleOpenUpload, uploadsUnder } from './s3-multipart.js';
import { EmptyReader, openS3Reader } from './s3-reader.js';
import type { S3Reader } from './s3-reader.js';
import { openS3Writer } from './s3-writer.js';

export type { S3DriverOptions } from './s3-client.js';
export { S3_DEFAULTS } from './s3-limits.js';

/** The s3 driver over `options.bucket`. Makes no request until it is used. */
export function createS3Driver(options: S3DriverOptions): StorageDriver {
  return new S3Driver(createS3Context(options));
}

/** The abort signal of `o`, as the SDK's send() options. */
function abortOf(o: CallOptions | undefined): { abortSignal?: AbortSignal } {
  return o?.signal ? { abortSignal: o.signal } : {};
}

class S3Driver implements StorageDriver {
  readonly name = 's3';
  /** Readers are S3Readers or EmptyReaders (s3-reader.ts). */
  readonly capabilities: DriverCapabilities = { sendableReaders: true };

  constructor(private readonly ctx: S3Context) {}

  async getContent(path: string, o?: CallOptions): Promise<Buffer> {
    const key = this.ctx.key(path);
    const get = async (): Promise<Buffer> => {
      const out = await this.ctx.client.send(new GetObjectCommand({ Bucket: this.ctx.bucket, Key: key }), abortOf(o));
      return Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array(0));
    };
    try {
      const content = await get();
      return content.length === 0 && (await settleOpenUpload(this.ctx, key, o?.signal)) ? await get() : content;
    } catch (err) {
      throw this.ctx.fail('getContent', path, err, o);
    }
  }

  async putContent(path: string, data: Uint8Array, o?: CallOptions): Promise<void> {
    try {
      await this.ctx.client.send(
        new PutObjectCommand({
          Bucket: this.ctx.bucket, Key: this.ctx.key(path), Body: data, ContentLength: data.length, ...this.ctx.createParams,
        }),
        abortOf(o),
      );
    } catch (err) {
      throw this.ctx.fail('putContent', path, err, o);
    }
  }

  async createContent(path: string, data: Uint8Array, o?: CallOptions): Promise<boolean> {
    try {
      await this.ctx.client.send(
        new PutObjectCommand({
          Bucket: this.ctx.bucket, Key: this.ctx.key(path), Body: data, ContentLength: data.length, IfNoneMatch: '*', ...this.ctx.createParams,
        }),
        abortOf(o),
      );
      return true;
    } catch (err) {
      // 412: the object exists. 409 (ConditionalRequestConflict): another conditional write of it is
      // under way; it will win or fail, and the caller reads back either way.
      const status = s3Status(err);
      if (status === 412 || status === 409) return false;
      throw this.ctx.fail('createContent', path, err, o);
    }
  }

  async reader(path: string, offset: number, o?: ReaderOptions): Promise<Readable> {
    const target = { path, key: this.ctx.key(path), offset, length: o?.length };
    const open = (): Promise<S3Reader | undefined> => openS3Reader(this.ctx, target, o?.signal);
    try {
      let reader: S3Reader | undefined;
      try {
        reader = await open();
      } catch (err) {
        // An offset past an empty object: the content may be in an upload still open there.
        if (!(err instanceof InvalidOffsetError) || !(await settleOpenUpload(this.ctx, target.key, o?.signal))) throw err;
        reader = await open();
      }
      if (offset === 0 && (reader?.objectSize ?? 0) === 0 && (await settleOpenUpload(this.ctx, target.key, o?.signal))) {
        reader?.destroy();
        reader = await open();
      }
      return reader ?? new EmptyReader();
    } catch (err) {
      throw this.ctx.fail('reader', path, err, o);
    }
  }

  writer(path: string, o: WriterOptions): Promise<FileWriter> {
    return openS3Writer(this.ctx, path, o);
  }

  async stat(path: string, o?: CallOptions): Promise<FileInfo> {
    try {
      const key = this.ctx.key(path);
      const head = await this.#head(key, o);
      if (head !== undefined) {
        const size = head.ContentLength ?? 0;
        // An empty object may stand for a writer's upload still open at its key: its parts count.
        const open = size === 0 ? await openUploadAt(this.ctx, key, o?.signal) : undefined;
        return { path, size: open?.size ?? size, modTime: head.LastModified ?? new Date(0), isDir: false };
      }
      const page = await this.#listPage(this.ctx.dirPrefix(path), undefined, undefined, 1, o);
      const first = page.Contents?.[0];
      if (first === undefined) throw new PathNotFoundError('s3', path);
      return { path, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
    } catch (err) {
      throw this.ctx.fail('stat', path, err, o);
    }
  }

  async list(path: string, o?: CallOptions): Promise<string[]> {
    const prefix = this.ctx.dirPrefix(path);
    const children: string[] = [];
    try {
      let token: string | undefined;
      do {
        const page = await this.#listPage(prefix, '/', token, 1000, o);
        for (const c of page.Contents ?? []) {
          if (c.Key !== undefined && c.Key !== prefix && !c.Key.endsWith('/') && !isPendingKey(c.Key)) children.push(this.ctx.pathOf(c.Key));
        }
        for (const p of page.CommonPrefixes ?? []) {
          if (p.Prefix !== undefined && p.Prefix.length > prefix.length + 1) children.push(this.ctx.pathOf(p.Prefix.slice(0, -1)));
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw this.ctx.fail('list', path, err, o);
    }
    if (children.length === 0 && path !== '/') throw new PathNotFoundError('s3', path);
    return children;
  }

  async move(from: string, to: string, o?: CallOptions): Promise<void> {
    const fromKey = this.ctx.key(from);
    const toKey = this.ctx.key(to);
    let head: HeadObjectCommandOutput | undefined;
    try {
      head = await this.#head(fromKey, o);
      if (head?.ContentLength === 0 && (await settleOpenUpload(this.ctx, fromKey, o?.signal))) head = await this.#head(fromKey, o);
    } catch (err) {
      throw this.ctx.fail('move', from, err, o);
    }
    if (head === undefined) throw new PathNotFoundError('s3', from);
    if (fromKey === toKey) return;
    const size = head.ContentLength ?? 0;
    try {
      if (size > 0 && size > this.ctx.options.multipartCopyThresholdSize) {
        await multipartCopy(this.ctx, fromKey, toKey, size, head.ETag, o?.signal);
      } else {
        const { StorageClass, ACL } = this.ctx.createParams;
        await this.ctx.client.send(
          new CopyObjectCommand({
            Bucket: this.ctx.bucket, Key: toKey, CopySource: this.ctx.copySource(fromKey),
            ...(head.ETag !== undefined && { CopySourceIfMatch: head.ETag }),
            ...(StorageClass !== undefined && { StorageClass }),
            ...(ACL !== undefined && { ACL }),
          }),
          abortOf(o),
        );
      }
      await this.ctx.client.send(new DeleteObjectCommand({ Bucket: this.ctx.bucket, Key: fromKey }), abortOf(o));
    } catch (err) {
      throw this.ctx.fail('move', from, err, o);
    }
  }

  async delete(path: string, o?: CallOptions): Promise<void> {
    const key = this.ctx.key(path);
    try {
      const [file, uploads] = await Promise.all([this.#head(key, o), uploadsUnder(this.ctx, key, false, o?.signal)]);
      await Promise.all(uploads.map((u) => abortUpload(this.ctx, u.key, u.uploadId)));
      let found = 0;
      if (file !== undefined) {
        await this.#deleteKeys([key, pendingKey(key)], path, o);
        found += 1;
      }
      let token: string | undefined;
      do {
        const page = await this.#listPage(`${key}/`, undefined, token, 1000, o);
        const keys = (page.Contents ?? []).flatMap((c) => (c.Key === undefined ? [] : [c.Key]));
        if (keys.length > 0) await this.#deleteKeys(keys, path, o);
        found += keys.length;
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      if (found === 0) throw new PathNotFoundError('s3', path);
    } catch (err) {
      throw this.ctx.fail('delete', path, err, o);
    }
  }

  async *walk(path: string, o?: CallOptions): AsyncIterable<FileInfo> {
    const prefix = this.ctx.dirPrefix(path);
    const base = path === '/' ? '' : path;
    // Keys come sorted, so the keys below a directory are contiguous: a directory is reported once,
    // just before the first key below it, by comparing each key's directories with the previous key's.
    let open: string[] = [];
    let any = false;
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#listPage(prefix, undefined, token, 1000, o);
      } catch (err) {
        throw this.ctx.fail('walk', path, err, o);
      }
      for (const c of page.Contents ?? []) {
        if (c.Key === undefined || c.Key.endsWith('/') || isPendingKey(c.Key)) continue;
        any = true;
        const modTime = c.LastModified ?? new Date(0);
        const segments = c.Key.slice(prefix.length).split('/');
        const dirs = segments.slice(0, -1).map((_, i) => `${base}/${segments.slice(0, i + 1).join('/')}`);
        let same = 0;
        while (same < dirs.length && dirs[same] === open[same]) same += 1;
        for (const dir of dirs.slice(same)) yield { path: dir, size: 0, modTime, isDir: true };
        open = dirs;
        yield { path: `${base}/${segments.join('/')}`, size: c.Size ?? 0, modTime, isDir: false };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (!any && path !== '/') throw new PathNotFoundError('s3', path);
  }

  async redirectUrl(path: string, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    if (!this.ctx.options.redirect) return undefined;
    const input = { Bucket: this.ctx.bucket, Key: this.ctx.key(path) };
    try {
      return method === 'HEAD'
        ? await getSignedUrl(this.ctx.client, new HeadObjectCommand(input), { expiresIn: REDIRECT_EXPIRY_SECONDS })
        : await getSignedUrl(this.ctx.client, new GetObjectCommand(input), { expiresIn: REDIRECT_EXPIRY_SECONDS });
    } catch (err) {
      throw this.ctx.fail('redirectUrl', path, err);
    }
  }

  /** HeadObject, or undefined when there is no object at `key`. */
  #head(key: string, o?: CallOptions): Promise<HeadObjectCommandOutput | undefined> {
    return headObject(this.ctx, key, o?.signal);
  }

  #listPage(prefix: string, delimiter: string | undefined, token: string | undefined, max: number, o?: CallOptions): Promise<ListObjectsV2CommandOutput> {
    return this.ctx.client.send(
      new ListObjectsV2Command({
        Bucket: this.ctx.bucket, Prefix: prefix, MaxKeys: max,
        ...(delimiter !== undefined && { Delimiter: delimiter }),
        ...(token !== undefined && { ContinuationToken: token }),
      }),
      abortOf(o),
    );
  }

  async #deleteKeys(keys: readonly string[], path: string, o?: CallOptions): Promise<void> {
    const out = await this.ctx.client.send(
      new DeleteObjectsCommand({ Bucket: this.ctx.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
      abortOf(o),
    );
    const failed = out.Errors?.[0];
    if (failed !== undefined) {
      const why = `${failed.Code ?? 'error'}: ${failed.Message ?? ''}`;
      throw new DriverError('DRIVER_FAILURE', 's3', `delete ${path} failed: ${failed.Key ?? '?'}: ${why} (${this.ctx.endpoint})`);
    }
  }
}
