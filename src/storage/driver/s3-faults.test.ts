/**
 * The s3 driver under faults: a proxy between the driver and Ceph RGW answers 503 SlowDown or 500,
 * drops connections before answering, or cuts a response body short, for chosen requests. What is
 * safe to retry is retried (and the proxy sees the retries); what is not becomes a DriverError that
 * says what happened and what to check.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DriverError, isSendable } from './driver.js';
import { instrument } from './instrument.js';
import { createS3Driver } from './s3.js';
import { RAW_BUFFERS, RAW_BUFFER_BYTES } from './s3-raw-get.js';
import type { S3DriverOptions } from './s3.js';
import { readAll, sha256, unusedPort, writeAndEnd } from './suite/helpers.js';
import { describeWithS3 } from './suite/s3-describe.js';
import { deleteBucket, s3DriverOptions } from './suite/s3-settings.js';

const MiB = 1024 * 1024;

type FaultKind = 'slowdown' | 'internal-error' | 'drop' | 'cut-body';

interface Fault {
  readonly kind: FaultKind;
  /** Which requests: method and a test of the URL (path and query). */
  readonly method: string;
  readonly url: RegExp;
  /** How many matching requests get the fault (the rest pass). */
  times: number;
}

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
  readonly ifMatch: string | undefined;
  readonly fault: FaultKind | undefined;
}

/** An HTTP proxy to `target` that injects `faults` and records every request. */
class FaultProxy {
  readonly seen: Seen[] = [];
  faults: Fault[] = [];
  /** GETs whose response has not closed yet, and the most there were at once. */
  getsOpen = 0;
  maxGetsOpen = 0;
  readonly #idle = new EventEmitter();
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(target: URL): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => proxy?.handle(req, res, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new FaultProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  /** Requests of `method` whose URL matches. */
  count(method: string, url: RegExp): number {
    return this.seen.filter((s) => s.method === method && url.test(s.url)).length;
  }

  /** Resolves once no GET is open (at once when none is). */
  async noGetsOpen(): Promise<void> {
    if (this.getsOpen > 0) await once(this.#idle, 'idle');
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse, target: URL): void {
    const url = req.url ?? '/';
    const fault = this.faults.find((f) => f.times > 0 && f.method === req.method && f.url.test(url));
    if (fault) fault.times -= 1;
    this.seen.push({ method: req.method ?? '', url, range: req.headers.range, ifMatch: req.headers['if-match'], fault: fault?.kind });
    if (req.method === 'GET') {
      this.getsOpen += 1;
      this.maxGetsOpen = Math.max(this.maxGetsOpen, this.getsOpen);
      res.once('close', () => {
        this.getsOpen -= 1;
        if (this.getsOpen === 0) this.#idle.emit('idle');
      });
    }
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'slowdown' || fault?.kind === 'internal-error') {
      const [status, code] = fault.kind === 'slowdown' ? [503, 'SlowDown'] : [500, 'InternalError'];
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`);
      });
      return;
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (fault?.kind !== 'cut-body') {
          up.pipe(res);
          return;
        }
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          sent += chunk.length;
          res.write(chunk);
          if (sent >= MiB) {
            up.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  }
}

/** A destination that keeps a copy of every chunk (a raw GET's buffers are reused once called back for). */
function collectingSink(): { sink: Writable; received: Buffer[] } {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      received.push(Buffer.from(chunk));
      callback();
    },
  });
  return { sink, received };
}

describeWithS3('s3 driver faults and errors', (s3) => {
  let proxy: FaultProxy;
  const roots: string[] = [];
  const driver = (overrides: Partial<S3DriverOptions> = {}): ReturnType<typeof instrument> => {
    const root = `faults-${randomBytes(6).toString('hex')}`;
    roots.push(root);
    return instrument(createS3Driver(s3DriverOptions(s3, root, { regionEndpoint: proxy.url, ...overrides })));
  };
  beforeAll(async () => {
    proxy = await FaultProxy.start(new URL(s3.endpoint));
  });
  afterEach(() => {
    proxy.faults = [];
  });
  afterAll(async () => {
    await proxy.close();
    for (const root of roots) await deleteBucket(s3, s3.bucket, `${root}/`);
  });

  it('retries 503 SlowDown with backoff until the PutObject succeeds', async () => {
    const d = driver();
    proxy.faults = [{ kind: 'slowdown', method: 'PUT', url: /\/small(\?|$)/, times: 2 }];
    await d.putContent('/small', Buffer.from('content'));
    expect(proxy.count('PUT', /\/small(\?|$)/)).toBe(3);
    expect((await d.getContent('/small')).toString()).toBe('content');
  });

  it('retries a dropped connection during a part upload and a 500 on completion; the object is whole', async () => {
    const d = driver({ chunkSize: 5 * MiB });
    proxy.faults = [
      { kind: 'drop', method: 'PUT', url: /\/up\/data\?.*partNumber=2/, times: 1 },
      { kind: 'internal-error', method: 'POST', url: /\/up\/data\?uploadId=/, times: 1 },
    ];
    const data = randomBytes(12 * MiB);
    const w = await d.writer('/up/data', { append: false });
    await writeAndEnd(w, data);
    await w.commit();
    expect(proxy.count('PUT', /\/up\/data\?.*partNumber=2/)).toBe(2);
    expect(proxy.count('POST', /\/up\/data\?uploadId=/)).toBe(2);
    expect(sha256(await d.getContent('/up/data'))).toBe(sha256(data));
  });

  it('a reader whose connection drops mid-body re-requests the rest (If-Match) and delivers every byte once', async () => {
    const d = driver();
    const data = randomBytes(5 * MiB + 17);
    await d.putContent('/blob', data);
    proxy.faults = [{ kind: 'cut-body', method: 'GET', url: /\/blob(\?|$)/, times: 1 }];
    const got = await readAll(await d.reader('/blob', 3));
    expect(got.length).toBe(data.length - 3);
    expect(sha256(got)).toBe(sha256(data.subarray(3)));
    const gets = proxy.seen.filter((s) => s.method === 'GET' && /\/blob(\?|$)/.test(s.url));
    // The first piece (4 MiB from the offset), the cut one resumed, then the second piece.
    expect(gets.length).toBe(3);
    const pieceEnd = 3 + 4 * MiB - 1;
    expect(gets[0]?.range).toBe(`bytes=3-${pieceEnd}`);
    // The rest of the cut piece starts where it stopped: past the start, before the piece's end
    // (where exactly depends on how much had arrived when the proxy cut the body).
    const resumed = gets.map((g) => /^bytes=(\d+)-(\d+)$/.exec(g.range ?? '')).find((m) => m !== null && Number(m[2]) === pieceEnd && Number(m[1]) > 3);
    expect(Number(resumed?.[1])).toBeLessThan(pieceEnd);
    expect(gets.some((g) => g.range === `bytes=${pieceEnd + 1}-${data.length - 1}`)).toBe(true);
  });

  it('reads a large object as its first 4 MiB, then the rest as one GET (If-Match) read into reused buffers', async () => {
    const d = driver();
    const data = randomBytes(18 * MiB + 5);
    await d.putContent('/big', data);
    const got = await readAll(await d.reader('/big', 2));
    expect(sha256(got)).toBe(sha256(data.subarray(2)));
    const gets = proxy.seen.filter((s) => s.method === 'GET' && /\/big(\?|$)/.test(s.url));
    expect(gets.map((g) => g.range)).toEqual([`bytes=2-${4 * MiB + 1}`, `bytes=${4 * MiB + 2}-${data.length - 1}`]);
    expect(gets[1]?.url).toMatch(/X-Amz-Signature=/); // the raw GET: a presigned URL, sent by hand
    expect(gets[1]?.ifMatch).toMatch(/^"[0-9a-f]+"$/);
  });

  it('a raw GET cut mid-body is re-requested from the byte it stopped at; every byte arrives once', async () => {
    const d = driver();
    const data = randomBytes(12 * MiB + 3);
    await d.putContent('/cut-raw', data);
    proxy.faults = [{ kind: 'cut-body', method: 'GET', url: /\/cut-raw\?.*X-Amz-Signature=/, times: 1 }];
    const got = await readAll(await d.reader('/cut-raw', 0));
    expect(sha256(got)).toBe(sha256(data));
    const ranges = proxy.seen.filter((s) => s.method === 'GET' && /\/cut-raw(\?|$)/.test(s.url)).map((s) => s.range);
    expect(ranges).toHaveLength(3);
    expect(ranges.slice(0, 2)).toEqual([`bytes=0-${4 * MiB - 1}`, `bytes=${4 * MiB}-${data.length - 1}`]);
    const resumedAt = Number(/^bytes=(\d+)-(\d+)$/.exec(ranges[2] ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(4 * MiB); // the proxy passed at least 1 MiB before cutting
    expect(ranges[2]).toBe(`bytes=${resumedAt}-${data.length - 1}`);
  });

  it('sendTo reuses a raw GET\'s buffers only once the destination has called back for them', async () => {
    const d = driver();
    const data = randomBytes(24 * MiB + 11);
    await d.putContent('/lent', data);
    const r = await d.reader('/lent', 0);
    if (!isSendable(r)) throw new Error('the s3 reader is not sendable');
    // Hashes each chunk only when calling back for it, a turn later: a buffer reused before that
    // would hash bytes of a later read.
    const hash = createHash('sha256');
    let size = 0;
    const slow = new Writable({
      highWaterMark: 64 * MiB,
      write(chunk: Buffer, _encoding, callback) {
        setImmediate(() => {
          hash.update(chunk);
          size += chunk.length;
          callback();
        });
      },
    });
    await r.sendTo(slow);
    slow.end();
    await finished(slow); // every chunk called back for
    expect(size).toBe(data.length);
    expect(hash.digest('hex')).toBe(sha256(data));
  });

  it("sendTo writes a raw GET's reads without waiting for 'drain', holding at most the GET's buffers unsent", async () => {
    const d = driver();
    const data = randomBytes(24 * MiB + 7);
    await d.putContent('/piped', data);
    const r = await d.reader('/piped', 0);
    if (!isSendable(r)) throw new Error('the s3 reader is not sendable');
    // A destination whose every write asks for 'drain' (a 16 KiB high-water mark) and calls back a
    // turn later, as a socket does; it counts the 'drain' waits once the first piece (4 MiB) is in,
    // and the most bytes past it written and not yet called back for.
    const hash = createHash('sha256');
    let written = 0;
    let unsent = 0;
    let mostUnsent = 0;
    let drainWaitsAfterFirstPiece = 0;
    const dest = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        written += chunk.length;
        const raw = written > 4 * MiB ? chunk.length : 0;
        unsent += raw;
        mostUnsent = Math.max(mostUnsent, unsent);
        setImmediate(() => {
          unsent -= raw;
          callback();
        });
      },
    });
    dest.on('newListener', (event) => {
      if (event === 'drain' && written > 4 * MiB) drainWaitsAfterFirstPiece += 1;
    });
    await r.sendTo(dest);
    dest.end();
    await finished(dest);
    expect(written).toBe(data.length);
    expect(hash.digest('hex')).toBe(sha256(data));
    expect(drainWaitsAfterFirstPiece).toBe(0);
    expect(mostUnsent).toBeLessThanOrEqual(RAW_BUFFERS * RAW_BUFFER_BYTES);
  });

  it('sendTo of a raw GET cut mid-body re-requests the rest from the byte it stopped at; every byte arrives once', async () => {
    const d = driver();
    const data = randomBytes(12 * MiB + 3);
    await d.putContent('/cut-piped', data);
    proxy.faults = [{ kind: 'cut-body', method: 'GET', url: /\/cut-piped\?.*X-Amz-Signature=/, times: 1 }];
    const r = await d.reader('/cut-piped', 0);
    if (!isSendable(r)) throw new Error('the s3 reader is not sendable');
    const { sink, received } = collectingSink();
    await r.sendTo(sink);
    expect(sha256(Buffer.concat(received))).toBe(sha256(data));
    const ranges = proxy.seen.filter((s) => s.method === 'GET' && /\/cut-piped(\?|$)/.test(s.url)).map((s) => s.range);
    expect(ranges).toHaveLength(3);
    const resumedAt = Number(/^bytes=(\d+)-(\d+)$/.exec(ranges[2] ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(4 * MiB);
    expect(ranges[2]).toBe(`bytes=${resumedAt}-${data.length - 1}`);
  });

  it('sendTo to a destination destroyed mid-object (a client gone) rejects and asks nothing more', async () => {
    const d = driver();
    await d.putContent('/dest-gone', randomBytes(24 * MiB));
    const r = await d.reader('/dest-gone', 0);
    if (!isSendable(r)) throw new Error('the s3 reader is not sendable');
    let written = 0;
    const dest: Writable = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.length;
        callback();
        if (written > 8 * MiB && !dest.destroyed) dest.destroy();
      },
    });
    await expect(r.sendTo(dest)).rejects.toThrow();
    await proxy.noGetsOpen();
    const gets = proxy.seen.filter((s) => s.method === 'GET' && /\/dest-gone(\?|$)/.test(s.url));
    expect(gets).toHaveLength(2); // the first piece and the raw GET of the rest, never asked again
  });

  it('an object replaced after its first piece fails the read (If-Match), never splicing the new bytes in', async () => {
    const d = driver();
    await d.putContent('/replaced', randomBytes(10 * MiB));
    const r = await d.reader('/replaced', 0);
    await d.putContent('/replaced', randomBytes(10 * MiB));
    await expect(readAll(r)).rejects.toMatchObject({ code: 'DRIVER_FAILURE', message: expect.stringMatching(/PreconditionFailed|412/) });
  });

  it('a byte range with its length is one GET of exactly those bytes', async () => {
    const d = driver();
    const data = randomBytes(9 * MiB);
    await d.putContent('/ranged', data);
    const got = await readAll(await d.reader('/ranged', 5 * MiB + 1, { length: 1000 }));
    expect(got.equals(data.subarray(5 * MiB + 1, 5 * MiB + 1001))).toBe(true);
    const ranges = proxy.seen.filter((s) => s.method === 'GET' && /\/ranged(\?|$)/.test(s.url)).map((s) => s.range);
    expect(ranges).toEqual([`bytes=${5 * MiB + 1}-${5 * MiB + 1000}`]);
  });

  it('a reader destroyed mid-object (a client gone) closes every GET it had open', async () => {
    const d = driver();
    await d.putContent('/gone', randomBytes(24 * MiB));
    const r = await d.reader('/gone', 0);
    const [first] = (await once(r, 'data')) as [Buffer];
    expect(first.length).toBeGreaterThan(0);
    expect(proxy.getsOpen).toBeGreaterThan(0);
    r.destroy();
    await proxy.noGetsOpen();
    const gets = proxy.seen.filter((s) => s.method === 'GET' && /\/gone(\?|$)/.test(s.url));
    expect(gets.length).toBeLessThanOrEqual(5); // never more than the pieces in flight: nothing fetched after the destroy
  });

  it('gives up after maxAttempts on a server that keeps throttling, saying so', async () => {
    const d = driver({ maxAttempts: 3 });
    proxy.faults = [{ kind: 'slowdown', method: 'PUT', url: /\/throttled(\?|$)/, times: 1000 }];
    const err = await d.putContent('/throttled', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect(err).toMatchObject({ code: 'DRIVER_FAILURE', driver: 's3' });
    expect((err as Error).message).toMatch(/putContent \/throttled failed: SlowDown \(HTTP 503\).*after 3 attempts/);
    expect(proxy.count('PUT', /\/throttled(\?|$)/)).toBe(3);
  });

  it('does not retry a wrong secret key, and names the key to check', async () => {
    const d = driver({ secretKey: 'not-the-secret' });
    const before = proxy.seen.length;
    const err = await d.getContent('/anything').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as Error).message).toMatch(/^s3: getContent \/anything failed: SignatureDoesNotMatch \(HTTP 403\).*check storage\.s3\.secretkey/);
    expect(proxy.seen.length - before).toBe(1);
  });

  it('names a missing bucket', async () => {
    const d = driver({ bucket: 'no-such-bucket-here' });
    await expect(d.stat('/x')).rejects.toMatchObject({
      code: 'DRIVER_FAILURE',
      message: expect.stringMatching(/NoSuchBucket.*bucket "no-such-bucket-here" at http:\/\/127\.0\.0\.1/),
    });
  });

  it('says when the endpoint cannot be reached, after retrying', async () => {
    const port = await unusedPort();
    const d = instrument(createS3Driver(s3DriverOptions(s3, 'unreachable', { regionEndpoint: `http://127.0.0.1:${port}`, maxAttempts: 2 })));
    await expect(d.getContent('/x')).rejects.toMatchObject({
      code: 'DRIVER_FAILURE',
      message: expect.stringMatching(/ECONNREFUSED.*after 2 attempts; is the endpoint right and the server up\?/),
    });
  });
});

describe('s3 driver errors without a server', () => {
  it('turns an aborted call into its AbortError, not a DriverError', async () => {
    const port = await unusedPort();
    const d = instrument(createS3Driver({
      ...s3DriverOptions({ endpoint: `http://127.0.0.1:${port}`, accessKey: 'a', secretKey: 'b', region: 'us-east-1', bucket: 'b' }, ''),
      maxAttempts: 10,
    }));
    const ac = new AbortController();
    const pending = d.getContent('/x', { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });
});
