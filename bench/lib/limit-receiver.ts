/**
 * The machine's own limits for big blob transfers: a plain Node process with no registry logic.
 *
 * Upload: it receives a body over loopback, hashes it (sha256), writes it to a file and fsyncs it, as
 * a registry must before it acknowledges a blob, with as little JavaScript per chunk as plain Node
 * allows, so that it is a ceiling and not a strawman: each chunk is hashed in the request's 'data'
 * listener (no stream stages), the chunks are written in batches of about 1 MiB with one writev each
 * (one in flight; the request is paused while 4 MiB wait), and a background fdatasync starts every
 * 32 MiB so that the disk writes while bytes arrive instead of all at the final fsync (an earlier
 * version piped through a Transform into `createWriteStream({ flush: true })`, which left the whole
 * file dirty until the end and measured below Berth itself). It answers the spec's two requests so
 * that the bench's own client measures it exactly as it measures the registries: `POST …` gives 202
 * and a Location, and `PUT <location>?digest=…` streams the body to `<dir>/<n>`, fsyncs it, removes it
 * again and answers 201 with the computed digest in Docker-Content-Digest (400 when it differs).
 *
 * Download: `GET /file?path=<absolute path>` sends that file whole, `fs.createReadStream` with 1 MiB
 * reads piped to the response (what a bare Node server does; Node has no sendfile for sockets).
 *
 * Manifest (the `mixed` family's floor): started with a third argument, a JSON file
 * `{ "headers": {…}, "body": "…" }` (a registry's answer to a manifest GET, recorded by the bench), every
 * `GET /v2/…` is answered with exactly those headers and bytes, with nothing looked up per request, so
 * wrk measures what a plain Node server costs on this machine while the uploads run.
 *
 * Run as `node --import tsx bench/lib/limit-receiver.ts <dir> <port> [<manifest answer.json>]`; it
 * prints `listening` when ready.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { type IncomingMessage, createServer } from 'node:http';
import { join } from 'node:path';

const [dir, portText, manifestFile] = process.argv.slice(2);
if (dir === undefined || portText === undefined) throw new Error('usage: limit-receiver.ts <dir> <port> [<manifest answer.json>]');
let next = 0;

/** The recorded manifest answer (headers and bytes), when a third argument names one. */
const manifest = manifestFile === undefined ? undefined : await readManifestAnswer(manifestFile);

async function readManifestAnswer(file: string): Promise<{ headers: Record<string, string>; body: Buffer }> {
  const recorded = JSON.parse(await readFile(file, 'utf8')) as { headers: Record<string, string>; body: string };
  return { headers: recorded.headers, body: Buffer.from(recorded.body, 'utf8') };
}

const BATCH = 1 << 20;
const PAUSE_AT = 4 << 20;
const FLUSH_EVERY = 32 << 20;

const server = createServer((req, res) => {
  if (req.method === 'GET' && manifest !== undefined && req.url?.startsWith('/v2/') === true) {
    res.writeHead(200, manifest.headers).end(manifest.body);
    return;
  }
  const answer = (status: number, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'Content-Length': '0', ...headers }).end();
  };
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'POST') {
    req.resume();
    answer(202, { Location: `/upload/${next++}` });
    return;
  }
  if (req.method === 'GET') {
    const file = url.searchParams.get('path') ?? '';
    stat(file).then(
      (st) => {
        res.writeHead(200, { 'Content-Length': String(st.size), 'Content-Type': 'application/octet-stream' });
        createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
      },
      () => answer(404),
    );
    return;
  }
  const file = join(dir, url.pathname.replace(/\W/g, '_'));
  receive(req, file)
    .then((digest) => answer(digest === url.searchParams.get('digest') ? 201 : 400, { 'Docker-Content-Digest': digest }))
    .catch(() => answer(500));
});

/** Streams `body` into `file` (hashing, batched writev, background fdatasync), fsyncs it, removes it and answers the digest. */
async function receive(body: IncomingMessage, file: string): Promise<string> {
  const fh = await open(file, 'w');
  const received = new Body(body, fh);
  try {
    await received.done;
    await fh.sync();
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  return `sha256:${received.hash.digest('hex')}`;
}

/** One upload's receiving state. */
class Body {
  readonly done: Promise<void>;
  readonly hash = createHash('sha256');
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private position = 0;
  private unflushed = 0;
  private writing = false;
  private ended = false;
  private flushing: Promise<void> | undefined;
  private finish: (err?: unknown) => void = () => undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly fh: FileHandle,
  ) {
    const hash = this.hash;
    this.done = new Promise<void>((resolve, reject) => {
      this.finish = (err?: unknown) => (err === undefined ? resolve() : reject(err));
    });
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      this.waiting.push(chunk);
      this.waitingBytes += chunk.length;
      if (this.waitingBytes >= PAUSE_AT) req.pause();
      if (this.waitingBytes >= BATCH) this.write();
    });
    req.once('end', () => {
      this.ended = true;
      this.write();
    });
    req.once('error', (err) => this.finish(err));
  }

  private write(): void {
    if (this.writing) return;
    if (this.waiting.length === 0) {
      if (this.ended) void Promise.resolve(this.flushing).then(() => this.finish());
      return;
    }
    const batch = this.waiting;
    const bytes = this.waitingBytes;
    this.waiting = [];
    this.waitingBytes = 0;
    this.writing = true;
    this.req.resume();
    this.fh.writev(batch, this.position).then(
      ({ bytesWritten }) => {
        if (bytesWritten !== bytes) {
          this.finish(new Error('short write'));
          return;
        }
        this.position += bytes;
        this.unflushed += bytes;
        if (this.unflushed >= FLUSH_EVERY && this.flushing === undefined) {
          this.unflushed = 0;
          this.flushing = this.fh.datasync().then(
            () => {
              this.flushing = undefined;
            },
            (err: unknown) => this.finish(err),
          );
        }
        this.writing = false;
        if (this.ended || this.waitingBytes >= BATCH) this.write();
      },
      (err: unknown) => this.finish(err),
    );
  }
}

server.listen(Number(portText), '127.0.0.1', () => process.stdout.write('listening\n'));
