/**
 * The machine's own limit for a monolithic upload: a plain Node process with no registry logic that
 * receives a body over loopback, hashes it (sha256), writes it to a file and fsyncs it, as a registry
 * must before it acknowledges a blob. It answers the spec's two requests so that the bench's own
 * client measures it exactly as it measures the registries: `POST …` gives 202 and a Location, and
 * `PUT <location>?digest=…` streams the body to `<dir>/<n>`, fsyncs it, removes it again and answers
 * 201 with the computed digest in Docker-Content-Digest (400 when it differs from `digest`).
 *
 * Run as `node --import tsx bench/lib/limit-receiver.ts <dir> <port>`; it prints `listening` when ready.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const [dir, portText] = process.argv.slice(2);
if (dir === undefined || portText === undefined) throw new Error('usage: limit-receiver.ts <dir> <port>');
let next = 0;

const server = createServer((req, res) => {
  const answer = (status: number, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'Content-Length': '0', ...headers }).end();
  };
  if (req.method === 'POST') {
    req.resume();
    answer(202, { Location: `/upload/${next++}` });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const file = join(dir, url.pathname.replace(/\W/g, '_'));
  receive(req, file)
    .then((digest) => answer(digest === url.searchParams.get('digest') ? 201 : 400, { 'Docker-Content-Digest': digest }))
    .catch(() => answer(500));
});

/** Streams `body` into `file` through a sha256, fsyncs it (before close: `flush`), removes it and answers the digest. */
async function receive(body: NodeJS.ReadableStream, file: string): Promise<string> {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(body, hashing, createWriteStream(file, { flush: true, highWaterMark: 1 << 20 }));
  } finally {
    await rm(file, { force: true });
  }
  return `sha256:${hash.digest('hex')}`;
}

server.listen(Number(portText), '127.0.0.1', () => process.stdout.write('listening\n'));
