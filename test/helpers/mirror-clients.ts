/**
 * Pieces of the pull-through cache (mirror) tests and benchmark, vitest-free so bench/ uses them too:
 *
 * - `startCountingProxy(target)`: a reverse proxy on 127.0.0.1 in front of an upstream registry that
 *   counts every request by method and path (query dropped), so a test can say how often the mirror
 *   asked the upstream for each blob. Closing it makes the upstream unreachable (connection refused).
 * - `mirrorImage(name, sizes)`: a linux/amd64 image of three layers of seeded incompressible data, and
 *   an OCI index over it and an arm64 sibling; `seedUpstream` pushes both (blobs, manifests, tags).
 * - `pullOverHttp(url, name, ref)`: what a client does to pull one image: manifest by tag (an index is
 *   resolved to linux/amd64), then config and layers, each streamed through sha256 and checked.
 */
import { createHash } from 'node:crypto';
import { Agent, type IncomingMessage, type Server, createServer, request } from 'node:http';
import { buildImage, layer, type BuiltImage } from './images.js';
import { type Blob, ACCEPT_ALL, MT, onLinux, platformIndex, pushBlobPostPut, putManifest, randomBytesSeeded } from './oci.js';

export interface CountingProxy {
  readonly url: string;
  readonly port: number;
  /** How many requests `METHOD /path` (no query) it forwarded since the last reset. */
  count(method: string, path: string): number;
  /** Every `METHOD /path` forwarded since the last reset, with its count. */
  counts(): ReadonlyMap<string, number>;
  reset(): void;
  /** Stops listening and cuts every connection: the upstream is then unreachable (connection refused). */
  stop(): Promise<void>;
  /** Listens on the same port again after `stop()`. */
  start(): Promise<void>;
  /** `stop()` for good. */
  close(): Promise<void>;
}

/** Starts a counting reverse proxy to `target` (`http://127.0.0.1:PORT`) on a free loopback port. */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const key = `${req.method ?? 'GET'} ${path}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const headers = { ...req.headers, host: t.host };
    const upstream = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers, agent });
    upstream.on('response', (answer: IncomingMessage) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502).end(`counting proxy: ${err.message}`);
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  const listen = (p: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stop = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };
  await listen(0);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    count: (method, path) => counts.get(`${method} ${path}`) ?? 0,
    counts: () => new Map(counts),
    reset: () => counts.clear(),
    stop,
    start: () => listen(port),
    async close() {
      await stop();
      agent.destroy();
    },
  };
}

export interface MirrorImage {
  /** linux/amd64, three layers. */
  readonly image: BuiltImage;
  /** linux/arm64, the same first two layers and its own third. */
  readonly arm64: BuiltImage;
  /** An OCI index over both. */
  readonly index: Blob;
}

function threeLayers(name: string, arch: string, sizes: readonly [number, number, number], seed: number): BuiltImage {
  const layers = sizes.map((size, i) => {
    const s = i < 2 ? seed * 10 + i + 1 : seed * 10 + i + 1 + (arch === 'amd64' ? 0 : 5);
    return layer([{ path: 'data' }, { path: `data/${name}-${i}-${arch}.bin`, content: randomBytesSeeded(size, s) }]);
  });
  return buildImage({ platform: { architecture: arch, os: 'linux' }, layers, labels: { 'org.example.berth.test': name } });
}

/**
 * A 3-layer linux/amd64 image whose layers hold `sizes` bytes of seeded random data (so they barely
 * compress), and an OCI index over it and an arm64 sibling. The same arguments give the same digests.
 */
export function mirrorImage(name: string, sizes: readonly [number, number, number] = [1 << 20, 512 << 10, 256 << 10], seed = 7): MirrorImage {
  const image = threeLayers(name, 'amd64', sizes, seed);
  const arm64 = threeLayers(name, 'arm64', sizes, seed);
  return { image, arm64, index: platformIndex(MT.ociIndex, [onLinux('amd64', image), onLinux('arm64', arm64)]) };
}

/** Every blob of `img` (config and layers). */
export function imageBlobs(img: BuiltImage): Blob[] {
  return [img.config, ...img.layers.map((l) => l.gzip)];
}

async function pushOne(base: string, repo: string, img: BuiltImage, tag: string | undefined): Promise<void> {
  for (const b of imageBlobs(img)) await pushBlobPostPut(base, repo, b);
  const res = await putManifest(base, repo, tag ?? img.manifest.digest, img.manifest, img.mediaType);
  if (res.status !== 201) throw new Error(`PUT manifest ${repo}:${tag ?? img.manifest.digest} answered ${res.status}: ${res.body.toString()}`);
}

/** Pushes `m` to the registry at `base` as `repo:<tag>` (the amd64 image) and `repo:<indexTag>` (the index). */
export async function seedUpstream(base: string, repo: string, m: MirrorImage, tag: string, indexTag: string): Promise<void> {
  await pushOne(base, repo, m.image, tag);
  await pushOne(base, repo, m.arm64, undefined);
  const res = await putManifest(base, repo, indexTag, m.index, MT.ociIndex);
  if (res.status !== 201) throw new Error(`PUT index ${repo}:${indexTag} answered ${res.status}: ${res.body.toString()}`);
}

export interface PullResult {
  /** The digest of the manifest the tag named (the index's, when it was one). */
  readonly digest: string;
  /** Bytes of blobs received (config and layers). */
  readonly blobBytes: number;
}

interface Got {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

function get(url: string, agent: Agent | undefined, accept?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: accept !== undefined ? { Accept: accept } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** GETs a blob, streaming it through sha256 (never held whole). @returns its size. @throws on a bad status or digest */
function getBlob(url: string, digest: string, agent: Agent | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url} answered ${String(res.statusCode)}`));
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      res.on('end', () => {
        const got = `sha256:${hash.digest('hex')}`;
        if (got === digest) resolve(size);
        else reject(new Error(`GET ${url}: ${size} bytes with sha256 ${got}`));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface ManifestDoc {
  readonly mediaType?: string;
  readonly config?: { readonly digest: string; readonly size: number };
  readonly layers?: readonly { readonly digest: string; readonly size: number }[];
  readonly manifests?: readonly { readonly digest: string; readonly platform?: { readonly architecture: string; readonly os: string } }[];
}

export interface PullOptions {
  /** A keep-alive agent to share between pulls. */
  readonly agent?: Agent;
  /** Appended as `?ns=<ns>` to every request, as containerd does for a mirror. */
  readonly ns?: string;
  /** GETs a blob and checks it against its digest (or its size, from the manifest), answering its size (default: node:http, streamed through sha256). */
  readonly getBlob?: (url: string, digest: string, size: number) => Promise<number>;
  /** GETs every blob (config and layers) at once and checks them, answering their sizes (instead of `getBlob` each). */
  readonly getBlobs?: (blobs: readonly PulledBlob[]) => Promise<number[]>;
}

/** A blob a pull GETs: where, and what the manifest says of it. */
export interface PulledBlob {
  readonly url: string;
  readonly digest: string;
  readonly size: number;
}

/**
 * Pulls `name:ref` from the registry at `base` as a client does: the manifest (an index resolved to its
 * linux/amd64 entry), then the config and every layer, in parallel, each checked against its digest.
 * @throws on any non-200 answer or digest mismatch
 */
export async function pullOverHttp(base: string, name: string, ref: string, o: PullOptions = {}): Promise<PullResult> {
  const q = o.ns !== undefined ? `?ns=${encodeURIComponent(o.ns)}` : '';
  const manifestUrl = (r: string): string => `${base}/v2/${name}/manifests/${r}${q}`;
  const first = await get(manifestUrl(ref), o.agent, ACCEPT_ALL);
  if (first.status !== 200) throw new Error(`GET ${manifestUrl(ref)} answered ${first.status}: ${first.body.toString()}`);
  const digest = `sha256:${createHash('sha256').update(first.body).digest('hex')}`;
  let doc = JSON.parse(first.body.toString('utf8')) as ManifestDoc;
  if (doc.manifests !== undefined) {
    const entry = doc.manifests.find((m) => m.platform?.architecture === 'amd64' && m.platform.os === 'linux');
    if (entry === undefined) throw new Error(`${name}:${ref}: no linux/amd64 entry in the index`);
    const child = await get(manifestUrl(entry.digest), o.agent, ACCEPT_ALL);
    if (child.status !== 200) throw new Error(`GET ${manifestUrl(entry.digest)} answered ${child.status}`);
    doc = JSON.parse(child.body.toString('utf8')) as ManifestDoc;
  }
  const blobs = [doc.config, ...(doc.layers ?? [])]
    .filter((b) => b !== undefined)
    .map((b) => ({ url: `${base}/v2/${name}/blobs/${b.digest}${q}`, digest: b.digest, size: b.size }));
  const fetchBlob = o.getBlob ?? ((url: string, d: string) => getBlob(url, d, o.agent));
  const sizes = await (o.getBlobs?.(blobs) ?? Promise.all(blobs.map((b) => fetchBlob(b.url, b.digest, b.size))));
  return { digest, blobBytes: sizes.reduce((a, b) => a + b, 0) };
}
