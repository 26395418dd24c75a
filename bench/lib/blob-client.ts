/**
 * The mirror bench's blob client: HTTP/1.1 GETs of blobs over keep-alive connections, each body hashed
 * with sha256 as it arrives and checked against the digest asked for, as docker and containerd check what
 * they pull. What makes it cheaper than a node:http client is only how it reads: each connection reads
 * into one reused buffer of READ_BYTES (net's `onread`), so 50 MB of body is ~50 large reads into the same
 * memory instead of ~800 fresh 64 KiB Buffers a request stream hands over (which also cost the client
 * garbage collections). Every byte is still received and hashed; the server side sees an ordinary
 * keep-alive client.
 *
 * With `length()` instead of `blob()` the body is not hashed, only counted and checked against the size
 * the manifest gave: the client then costs next to nothing, and a pull measures the servers (the mirror
 * bench's unhashed lines; the hashed ones stay, since real clients verify digests).
 *
 * It understands what both registries answer to a blob GET: a 200 with a Content-Length. Anything else
 * (another status, a chunked body, a redirect) is an error naming the answer: the bench must not quietly
 * measure something else. Bench code only; never part of Berth.
 */
import { createHash, type Hash } from 'node:crypto';
import { type Socket, connect } from 'node:net';

/** Bytes read from the socket at once, into the connection's one buffer. */
const READ_BYTES = 1024 * 1024;

/**
 * A connection idle this long is closed rather than reused: Node servers (Berth) close idle keep-alive
 * connections after 5 s, and a request sent as the server closes gets a reset instead of an answer.
 */
export const IDLE_CLOSE_MS = 4000;

/** The most header bytes an answer may have. */
const MAX_HEAD_BYTES = 64 * 1024;

interface Pending {
  readonly path: string;
  readonly resolve: (r: { size: number; digest: string }) => void;
  readonly reject: (err: Error) => void;
  /** Undefined when the body is only counted (`BlobClient.length`). */
  readonly hash: Hash | undefined;
  /** The header bytes so far, until the blank line. */
  head: Buffer | undefined;
  /** Body bytes still to come; undefined until the headers are in. */
  left: number | undefined;
  size: number;
  /** When the request was written, its headers were in and its last byte was in (performance.now()). */
  readonly sentAt: number;
  headAt: number;
}

/** One GET's times (performance.now()), as `BlobClient.times` records them. */
export interface GetTimes {
  readonly path: string;
  readonly sentAt: number;
  readonly headAt: number;
  readonly endAt: number;
}

/** One keep-alive connection, one request at a time. */
class Connection {
  /** When its last answer ended (performance.now()). */
  idleSince = 0;
  /** Where each answered GET's times go, when the client records them. */
  onTimes: ((t: GetTimes) => void) | undefined;
  private socket: Socket | undefined;
  private pending: Pending | undefined;
  private readonly buffer = Buffer.allocUnsafe(READ_BYTES);

  constructor(private readonly host: string, private readonly port: number) {}

  /** GETs `path`; resolves with the body's size and `sha256:<hex>` (when `hashing`, else '') once the whole body is in. */
  async get(path: string, hashing: boolean): Promise<{ size: number; digest: string }> {
    if (this.pending !== undefined) throw new Error('blob client: one request at a time per connection');
    const socket = this.socket ?? (await this.open());
    return new Promise((resolve, reject) => {
      this.pending = { path, resolve, reject, hash: hashing ? createHash('sha256') : undefined, head: undefined, left: undefined, size: 0, sentAt: performance.now(), headAt: 0 };
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nUser-Agent: berth-bench\r\n\r\n`);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: this.host,
        port: this.port,
        noDelay: true,
        onread: { buffer: this.buffer, callback: (n: number, buf: Uint8Array) => this.onRead(buf, n) },
      });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
      socket.on('error', (err) => this.fail(err));
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
        this.fail(new Error('the connection closed'));
      });
      this.socket = socket;
    });
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    this.socket?.destroy();
    this.socket = undefined;
    p?.reject(new Error(`GET ${p.path}: ${err.message}`));
  }

  /** Bytes `buf[0, n)` arrived (the buffer is reused: everything is taken before this returns). */
  private onRead(buf: Uint8Array, n: number): boolean {
    const p = this.pending;
    if (p === undefined) {
      this.fail(new Error(`${n} bytes nobody asked for`));
      return false;
    }
    let body = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (p.left === undefined) {
      const head = p.head === undefined ? Buffer.from(body) : Buffer.concat([p.head, body]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) this.fail(new Error('headers too long'));
        else p.head = head;
        return true;
      }
      const text = head.subarray(0, end).toString('latin1');
      const status = text.slice(9, 12);
      const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(text)?.[1];
      if (status !== '200' || length === undefined) {
        this.fail(new Error(`answered ${status}${length === undefined ? ' without a Content-Length' : ''}: ${text.split('\r\n')[0] ?? ''}`));
        return false;
      }
      p.head = undefined;
      p.left = Number(length);
      p.headAt = performance.now();
      body = head.subarray(end + 4);
    }
    if (body.length > p.left) {
      this.fail(new Error(`more bytes than the Content-Length of ${p.size + p.left}`));
      return false;
    }
    p.hash?.update(body);
    p.left -= body.length;
    p.size += body.length;
    if (p.left === 0) {
      this.pending = undefined;
      this.idleSince = performance.now();
      this.onTimes?.({ path: p.path, sentAt: p.sentAt, headAt: p.headAt, endAt: this.idleSince });
      p.resolve({ size: p.size, digest: p.hash === undefined ? '' : `sha256:${p.hash.digest('hex')}` });
    }
    return true;
  }
}

/** Keep-alive connections to each server asked, each used by one request at a time. */
export class BlobClient {
  private readonly idle = new Map<string, Connection[]>();
  private readonly all = new Set<Connection>();
  /** When set, each answered GET's times are appended here (the mirror family's MIRROR_TRACE). */
  times: GetTimes[] | undefined;

  /**
   * GETs `url` (http://host:port/path) and checks the body against `digest` (undefined: hashed all the
   * same, not checked; for a server sending bytes of no digest, the client's floor). @returns its size.
   * @throws on any other answer or a mismatch
   */
  async blob(url: string, digest: string | undefined): Promise<number> {
    const got = await this.get(url, true);
    if (digest !== undefined && got.digest !== digest) throw new Error(`GET ${url}: ${got.size} bytes with ${got.digest}, want ${digest}`);
    return got.size;
  }

  /**
   * GETs `url` without hashing the body, only counting it: the body must be `size` bytes (the size the
   * manifest gave). @returns its size. @throws on any other answer or length
   */
  async length(url: string, size: number): Promise<number> {
    const got = await this.get(url, false);
    if (got.size !== size) throw new Error(`GET ${url}: ${got.size} bytes, want ${size}`);
    return got.size;
  }

  private async get(url: string, hashing: boolean): Promise<{ size: number; digest: string }> {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`blob client: http only, not ${url}`);
    const idle = this.idle.get(u.host) ?? [];
    this.idle.set(u.host, idle);
    let c = idle.pop();
    if (c !== undefined && performance.now() - c.idleSince > IDLE_CLOSE_MS) {
      c.close();
      this.all.delete(c);
      c = undefined;
    }
    c ??= this.add(u.hostname, Number(u.port || 80));
    const got = await c.get(`${u.pathname}${u.search}`, hashing).catch((err: unknown) => {
      this.all.delete(c);
      throw err;
    });
    idle.push(c);
    return got;
  }

  close(): void {
    for (const c of this.all) c.close();
    this.all.clear();
    this.idle.clear();
  }

  private add(host: string, port: number): Connection {
    const c = new Connection(host, port);
    c.onTimes = (t) => this.times?.push(t);
    this.all.add(c);
    return c;
  }
}
