/**
 * A plain-HTTP GET of a range of an object, read into a few reused buffers (the s3 reader's bulk path
 * for `http://` endpoints, s3-reader.ts).
 *
 * Why not the SDK's client: Node's HTTP client (and the plain `net.Socket` under it) allocates a new
 * 64 KiB buffer for every socket read and hands it on; over a 1 GiB object that is 16,000 fresh
 * buffers the garbage collector frees only later, and the page faults of the fresh memory cost more
 * than the bytes' copy. Measured here (bench/results/s3-2026-12-07-4.md), reading 1 GiB from Ceph RGW
 * took 1.5-3 s of CPU through node:http or the SDK, about 0.4 s through a socket that reads into
 * reused buffers (`onread`), which also ran at curl's speed.
 *
 * How:
 * - The request is signed as a presigned URL (query-string SigV4, the same as redirectUrl's) and
 *   sent by hand on a new connection with `Connection: close`; `Range` and `If-Match` go as plain
 *   headers (S3 does not require them to be signed).
 * - The socket reads into buffers of `RAW_BUFFER_BYTES` taken from the GET's own pool. Each read's
 *   bytes are handed on as a Lease; the consumer releases it once the bytes are no longer needed (a
 *   socket has called back for them), and the buffer goes back to the pool. When `RAW_BUFFERS - 1`
 *   leases are out, the socket stops reading until one comes back: at most
 *   `RAW_BUFFERS × RAW_BUFFER_BYTES` per GET, and a slow client holds back RGW through TCP.
 * - Only a 206 (or a 200 for a range from 0) whose Content-Range and Content-Length are what was asked
 *   opens a body; any other answer rejects with RawGetStatusError (the caller asks again through the
 *   SDK, which turns S3's answers into its usual errors). A body that ends early, a socket error, an
 *   idle socket (`RAW_IDLE_MS`), the caller's abort or `destroy()` fail the body.
 * - `pipeTo(dest)` hands the bytes to a writable (the HTTP response) straight from the socket's read
 *   callback instead: no promise, no listener and no object but the write's per read. Its backpressure
 *   is the leases' (a buffer comes back when `dest` calls back for it), not 'drain': a write that
 *   returns false is not waited for, the next read just lands in another of the GET's buffers, and the
 *   socket stops once `RAW_BUFFERS - 1` are queued in `dest`. Per GiB served this took the server's
 *   user CPU from about 0.4 s to about 0.2 s here (a wait for 'drain' per read, and the chain of async
 *   iterators, cost 20-30 µs a read; bench/results/s3-2026-12-07-22.md).
 * - Once the socket has closed, its buffers are let go (s3-part-buffers.ts `letGo`) as they come back.
 * - Only for `http://` endpoints: TLS sockets are read through the SDK as before.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Context } from './s3-client.js';
import { letGo } from './s3-part-buffers.js';

/** Bytes per socket read buffer (a read returns what has arrived, usually 64-150 KiB here). */
export const RAW_BUFFER_BYTES = 256 * 1024;

/** Read buffers per GET: the most it holds is `RAW_BUFFERS × RAW_BUFFER_BYTES` (4 MiB). */
export const RAW_BUFFERS = 16;

/** A socket that neither receives nor accepts a byte this long fails the GET (the SDK's socketTimeout). */
const RAW_IDLE_MS = 120_000;

/** The largest response head accepted. */
const MAX_HEAD_BYTES = 64 * 1024;

/** How long a signature stays valid: it is used at once. */
const SIGNATURE_SECONDS = 15 * 60;

/** Bytes handed on by a RawBody; `release()` gives the buffer back once they are no longer needed. */
export interface Lease {
  readonly bytes: Buffer;
  release(): void;
}

/** The server answered something other than the range asked for (its status; 0 for a malformed head). */
export class RawGetStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'RawGetStatusError';
  }
}

/** Whether GETs of this context's bucket can go through raw GETs (a plain `http://` endpoint). */
export function rawGetsPossible(ctx: S3Context): boolean {
  return ctx.endpoint.startsWith('http://');
}

/** What a raw GET reads: bytes `[start, end)` of `key`, If-Match `etag` when given. */
export interface RawRange {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly etag: string | undefined;
}

/**
 * Sends the GET of `range` and answers its body once the response head said it is that range.
 * @throws RawGetStatusError for any other answer; the socket's error when it failed first
 */
export async function openRawGet(ctx: S3Context, range: RawRange, signal: AbortSignal): Promise<RawBody> {
  signal.throwIfAborted();
  const url = new URL(await getSignedUrl(ctx.client, new GetObjectCommand({ Bucket: ctx.bucket, Key: range.key }), { expiresIn: SIGNATURE_SECONDS }));
  const head = [
    `GET ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    `Range: bytes=${range.start}-${range.end - 1}`,
    ...(range.etag !== undefined ? [`If-Match: ${range.etag}`] : []),
    'Connection: close',
    '',
    '',
  ].join('\r\n');
  const body = new RawBody(range, signal);
  body.connect(url.hostname.replace(/^\[(.*)\]$/, '$1'), Number(url.port || 80), head);
  await body.opened;
  return body;
}

/** The body of one raw GET, as leases in order (see the file's comment). */
export class RawBody {
  /** Resolves once the head has been read and accepted; rejects otherwise. */
  readonly opened: Promise<void>;
  #open: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #socket: Socket | undefined;
  #head: Buffer | undefined = Buffer.alloc(0);
  /** Body bytes still to come. */
  #remaining = 0;
  readonly #ready: Lease[] = [];
  readonly #free: Buffer[] = [];
  #leased = 0;
  /** Where `pipeTo` sends the bytes; undefined while they are taken by `next()`. */
  #sink: Writable | undefined;
  #piped: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** Body bytes read so far (with a sink: written to it). */
  #handed = 0;
  #paused = false;
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onAbort = (): void => {
    const reason: unknown = this.signal.reason;
    this.destroy(reason instanceof Error ? reason : new Error('the GET was aborted'));
  };

  constructor(
    private readonly range: RawRange,
    private readonly signal: AbortSignal,
  ) {
    this.opened = new Promise((resolve, reject) => {
      this.#open = { resolve, reject };
    });
    this.opened.catch(() => undefined); // the caller awaits it; a failure after that is the body's
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Connects and sends `head` (the request). */
  connect(host: string, port: number, head: string): void {
    const socket = connect({
      host,
      port,
      onread: { buffer: () => this.#free.pop() ?? Buffer.allocUnsafeSlow(RAW_BUFFER_BYTES), callback: (n, buf) => this.#onRead(n, buf as Buffer) },
    });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(RAW_IDLE_MS, () => socket.destroy(new Error(`no byte from the S3 server in ${RAW_IDLE_MS / 1000} s`)));
    socket.once('connect', () => socket.write(head));
    socket.once('error', (err) => this.destroy(err));
    socket.once('close', () => {
      if (!this.#done) this.destroy(new Error(`the response for ${this.range.key} ended ${this.#remaining} bytes early`));
      // No read comes any more: the free buffers (and those released from now on) are let go, so
      // their memory goes at the next young-generation collection (s3-part-buffers.ts).
      for (const b of this.#free.splice(0)) letGo(b);
    });
  }

  /** The next bytes in order, or undefined at the end. @throws what failed the GET */
  async next(): Promise<Lease | undefined> {
    for (;;) {
      const lease = this.#ready.shift();
      if (lease !== undefined) return lease;
      if (this.#error !== undefined) throw this.#error;
      if (this.#done) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  /** Body bytes read so far; after `pipeTo(dest)`, every one of them has been written to `dest`. */
  get handed(): number {
    return this.#handed;
  }

  /**
   * Writes the rest of the body to `dest` as it arrives (see the file's comment), each write with a
   * callback that gives its buffer back. Resolves once the last byte was written (dest may still be
   * sending it; it is left open). Rejects when the GET fails, or when `dest` closes or fails first.
   * Call it at most once, instead of `next()`.
   */
  pipeTo(dest: Writable): Promise<void> {
    if (this.#sink !== undefined) throw new Error('pipeTo() was called already');
    const onClose = (): void => this.destroy(dest.errored ?? new Error('the destination was closed before the end'));
    const done = new Promise<void>((resolve, reject) => {
      this.#piped = { resolve, reject };
    }).finally(() => {
      dest.off('close', onClose);
      dest.off('error', onClose);
    });
    dest.once('close', onClose);
    dest.once('error', onClose);
    this.#sink = dest;
    for (let lease = this.#ready.shift(); lease !== undefined; lease = this.#ready.shift()) dest.write(lease.bytes, lease.release);
    if (dest.destroyed) onClose();
    this.#settlePipe();
    return done;
  }

  /** Closes the connection; a pending or later `next()` throws `err` (unless the body was complete). */
  destroy(err?: Error): void {
    this.signal.removeEventListener('abort', this.#onAbort);
    if (!this.#done && this.#error === undefined) this.#error = err ?? new Error('the GET was closed');
    this.#socket?.destroy();
    this.#open?.reject(this.#error ?? new Error('the GET was closed'));
    this.#open = undefined;
    this.#wakeUp();
    this.#settlePipe();
  }

  /** Settles `pipeTo`'s promise once the body is complete or has failed. */
  #settlePipe(): void {
    const piped = this.#piped;
    if (piped === undefined || (!this.#done && this.#error === undefined)) return;
    this.#piped = undefined;
    if (this.#done) piped.resolve();
    else piped.reject(this.#error ?? new Error('the GET was closed'));
  }

  /** One socket read of `n` bytes into `buf`; false stops reading until a lease comes back. */
  #onRead(n: number, buf: Buffer): boolean {
    let from = 0;
    if (this.#head !== undefined) {
      from = this.#takeHead(buf.subarray(0, n));
      if (from < 0) {
        this.#free.push(buf);
        return true;
      }
    }
    const take = Math.min(n - from, this.#remaining);
    if (take <= 0 || this.#error !== undefined) {
      this.#free.push(buf);
      return true;
    }
    this.#remaining -= take;
    this.#handed += take;
    this.#leased += 1;
    let released = false;
    const bytes = buf.subarray(from, from + take);
    const release = (): void => {
      if (released) return;
      released = true;
      this.#release(buf);
    };
    if (this.#sink === undefined) this.#ready.push({ bytes, release });
    else this.#sink.write(bytes, release);
    if (this.#remaining === 0) {
      this.#done = true;
      this.signal.removeEventListener('abort', this.#onAbort);
      this.#socket?.destroy();
      this.#settlePipe();
    }
    this.#wakeUp();
    this.#paused = this.#leased >= RAW_BUFFERS - 1;
    return !this.#paused;
  }

  #release(buf: Buffer): void {
    this.#leased -= 1;
    if (this.#socket?.closed === true) {
      letGo(buf);
      return;
    }
    this.#free.push(buf);
    if (this.#paused && this.#leased < RAW_BUFFERS - 1 && this.#socket?.destroyed === false) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  /**
   * Adds `bytes` to the head read so far; once it is complete, checks it and answers where the body
   * starts in `bytes`, or -1 while the head is incomplete (or was refused: the body is then destroyed).
   */
  #takeHead(bytes: Buffer): number {
    const before = this.#head?.length ?? 0;
    const head = Buffer.concat([this.#head ?? Buffer.alloc(0), bytes]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      this.#head = head;
      if (head.length > MAX_HEAD_BYTES) this.destroy(new RawGetStatusError(0, 'the response head is too large'));
      return -1;
    }
    this.#head = undefined;
    try {
      this.#remaining = this.#check(head.subarray(0, end).toString('latin1'));
    } catch (err) {
      this.destroy(err as Error);
      return -1;
    }
    this.#open?.resolve();
    this.#open = undefined;
    return end + 4 - before;
  }

  /** The body's length from a response head that answers the range asked for. @throws RawGetStatusError */
  #check(head: string): number {
    const [statusLine = '', ...lines] = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const { start, end, key } = this.range;
    const length = Number(headers.get('content-length') ?? Number.NaN);
    const range = /^bytes (\d+)-(\d+)\//.exec(headers.get('content-range') ?? '');
    const rangeOk = status === 206 ? Number(range?.[1]) === start && Number(range?.[2]) === end - 1 : status === 200 && start === 0;
    if (!rangeOk || length !== end - start || headers.has('transfer-encoding')) {
      throw new RawGetStatusError(status, `GET ${key} bytes ${start}-${end - 1} answered ${statusLine || 'no status line'}`);
    }
    return length;
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
