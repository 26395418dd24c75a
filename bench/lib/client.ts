/**
 * The benchmark's HTTP client for uploads and checks: node:http over keep-alive sockets, bodies
 * written piece by piece from a generator with backpressure (never a whole blob in memory), answers
 * read whole (they are small). Whole-blob downloads go through curl instead (see `curlGet`), which
 * costs the machine less CPU than a Node client and so measures the server rather than the client.
 */
import { createHash } from 'node:crypto';
import { Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders, request } from 'node:http';
import { once } from 'node:events';
import { blobDigest, blobPieces, blobRange } from './blobdata.js';
import { run } from './proc.js';

const agent = new Agent({ keepAlive: true, maxSockets: 512 });

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * Sends one request, its body (if any) written piece by piece as the socket drains, and answers the
 * response. @throws on a network error, or when no answer came within `timeoutMs`.
 */
export function send(
  url: string,
  method: string,
  headers: OutgoingHttpHeaders,
  body: Iterable<Uint8Array> | undefined,
  timeoutMs = 600_000,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    const req = request(url, { method, headers, agent });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    const write = async (): Promise<void> => {
      for (const piece of body ?? []) {
        if (answered || req.destroyed) return; // an early answer (an error): stop sending
        if (!req.write(piece)) await once(req, 'drain');
      }
      req.end();
    };
    write().catch((err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))));
  });
}

function expect(a: Answer, status: number, what: string): void {
  if (a.status !== status) throw new Error(`${what}: expected ${status}, got ${a.status} ${a.body.slice(0, 500)}`);
}

function location(base: string, a: Answer, what: string): URL {
  const loc = a.headers.location;
  if (loc === undefined) throw new Error(`${what}: no Location in the answer`);
  return new URL(loc, base);
}

/** POST /v2/<repo>/blobs/uploads/: a new session's Location. */
async function startUpload(base: string, repo: string): Promise<URL> {
  const a = await send(`${base}/v2/${repo}/blobs/uploads/`, 'POST', { 'Content-Length': 0 }, undefined);
  expect(a, 202, `POST upload to ${base}`);
  return location(base, a, 'POST upload');
}

/**
 * Uploads blob (`seed`, `size`) as the spec's monolithic upload: POST for a session, then one PUT
 * `?digest=` carrying all the bytes. @throws unless the registry answers 201 with the digest.
 */
export async function uploadMonolithic(base: string, repo: string, seed: number, size: number): Promise<string> {
  const digest = blobDigest(seed, size);
  const url = await startUpload(base, repo);
  url.searchParams.set('digest', digest);
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': size };
  const a = await send(url.toString(), 'PUT', headers, blobPieces(seed, size));
  expect(a, 201, `PUT ${size} bytes`);
  if (a.headers['docker-content-digest'] !== digest) throw new Error(`PUT: Docker-Content-Digest ${String(a.headers['docker-content-digest'])}, expected ${digest}`);
  return digest;
}

/** Uploads blob (`seed`, `size`) in PATCH chunks of `chunk` bytes (with Content-Range), then PUT `?digest=` with no body. */
export async function uploadChunked(base: string, repo: string, seed: number, size: number, chunk: number): Promise<string> {
  const digest = blobDigest(seed, size);
  let url = await startUpload(base, repo);
  for (let start = 0; start < size; start += chunk) {
    const end = Math.min(size, start + chunk);
    const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start, 'Content-Range': `${start}-${end - 1}` };
    const a = await send(url.toString(), 'PATCH', headers, blobRange(seed, size, start, end));
    expect(a, 202, `PATCH ${start}-${end - 1}`);
    url = location(base, a, 'PATCH');
  }
  url.searchParams.set('digest', digest);
  const a = await send(url.toString(), 'PUT', { 'Content-Length': 0 }, undefined);
  expect(a, 201, 'PUT ?digest= after the chunks');
  return digest;
}

/** GET (of a blob, or a range with `headers`) through node:http, hashing the body: its sha256 and size (the untimed checks). */
export async function fetchDigest(url: string, headers: OutgoingHttpHeaders = {}): Promise<{ digest: string; size: number; status: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      res.once('error', reject);
      res.once('end', () => resolve({ digest: `sha256:${hash.digest('hex')}`, size, status: res.statusCode ?? 0 }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** sha256 of bytes [start, end) of blob (`seed`, `size`). */
export function rangeDigest(seed: number, size: number, start: number, end: number): string {
  const hash = createHash('sha256');
  for (const piece of blobRange(seed, size, start, end)) hash.update(piece);
  return `sha256:${hash.digest('hex')}`;
}

/** GET with curl into /dev/null: status, bytes received and curl's own total time in ms. */
export async function curlGet(url: string, timeoutMs = 600_000): Promise<{ status: number; bytes: number; ms: number }> {
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { timeoutMs });
  const [status, bytes, seconds] = r.stdout.trim().split(' ').map(Number);
  return { status: status ?? 0, bytes: bytes ?? 0, ms: (seconds ?? Number.NaN) * 1000 };
}

/** Pushes a small OCI image manifest (one config, one layer) as `repo:tag`; answers its digest. */
export async function pushSmallImage(base: string, repo: string, tag: string, seed: number): Promise<string> {
  const layerSize = 4096;
  const layer = await uploadMonolithic(base, repo, seed, layerSize);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] }, config: { Labels: { seed: String(seed) } } }));
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const url = await startUpload(base, repo);
  url.searchParams.set('digest', configDigest);
  expect(await send(url.toString(), 'PUT', { 'Content-Length': config.length, 'Content-Type': 'application/octet-stream' }, [config]), 201, 'PUT config');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: layerSize }],
    }),
  );
  const headers = { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': manifest.length };
  const a = await send(`${base}/v2/${repo}/manifests/${tag}`, 'PUT', headers, [manifest]);
  expect(a, 201, 'PUT manifest');
  return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
}
