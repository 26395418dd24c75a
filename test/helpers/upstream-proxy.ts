/**
 * A recording reverse proxy in front of a real upstream registry, for the mirror tests: every request
 * is forwarded (node:http, streamed both ways) and recorded as `METHOD path`, so a test can count what
 * the mirror asked its upstream. A test can also make the upstream misbehave: `down` (every connection
 * is cut at once, as a dead host), `status` (every request answered with that status), `hold` (answers
 * wait until released: a slow upstream), or `fault(path)` for one blob path: its body cut after some
 * bytes, its bytes changed, or a wrong Content-Length.
 */
import { Agent, type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import type { Socket } from 'node:net';

/** How one path's answer is spoiled. */
export type Fault =
  | { readonly kind: 'cut'; readonly afterBytes: number }
  | { readonly kind: 'flip'; readonly atByte: number }
  | { readonly kind: 'length'; readonly delta: number }
  | { readonly kind: 'redirect-loop' }
  | { readonly kind: 'huge-manifest'; readonly bytes: number }
  | { readonly kind: 'challenge'; readonly header: string };

export interface UpstreamProxy {
  readonly url: string;
  /** `METHOD path` of every request so far, in arrival order. */
  readonly requests: string[];
  /** How many recorded requests match `method` and `pathPart`. */
  count(method: string, pathPart: string): number;
  /** Resolves once `n` requests matching `method` and `pathPart` have arrived (counting those before). */
  arrived(method: string, pathPart: string, n?: number): Promise<void>;
  /** Cut every connection at once. */
  down: boolean;
  /** Answer every request with this status (and an OCI error body); undefined: forward. */
  status: number | undefined;
  /** While set, requests wait until it resolves. */
  hold: Promise<void> | undefined;
  /** Spoil the answers for paths containing `pathPart`. */
  fault(pathPart: string, fault: Fault | undefined): void;
  close(): Promise<void>;
}

export async function startUpstreamProxy(target: string): Promise<UpstreamProxy> {
  const to = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const faults = new Map<string, Fault>();
  const sockets = new Set<Socket>();
  const listeners = new Set<() => void>();
  const self = {
    requests: [] as string[],
    down: false,
    status: undefined as number | undefined,
    hold: undefined as Promise<void> | undefined,
  };

  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    self.requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    for (const l of [...listeners]) l();
    if (self.hold) await self.hold;
    if (self.down) {
      req.socket.destroy();
      return;
    }
    if (self.status !== undefined) {
      res.writeHead(self.status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'test' }] }));
      return;
    }
    const fault = [...faults].find(([part]) => req.url?.includes(part) === true)?.[1];
    if (fault?.kind === 'redirect-loop') {
      res.writeHead(307, { Location: req.url ?? '/' }).end();
      return;
    }
    if (fault?.kind === 'challenge') {
      res.writeHead(401, { 'WWW-Authenticate': fault.header, 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"test"}]}');
      return;
    }
    if (fault?.kind === 'huge-manifest') {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': String(fault.bytes) });
      res.end(Buffer.alloc(fault.bytes, 0x20));
      return;
    }
    const headers = { ...req.headers };
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers, agent });
    upstream.on('response', (answer) => relay(answer, res, fault));
    upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => void forward(req, res));
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const count = (method: string, pathPart: string): number => self.requests.filter((r) => r.startsWith(`${method} `) && r.includes(pathPart)).length;
  return Object.assign(self, {
    url: `http://127.0.0.1:${port}`,
    count,
    arrived: (method: string, pathPart: string, n = 1) => new Promise<void>((resolve) => {
      const check = (): void => {
        if (count(method, pathPart) < n) return;
        listeners.delete(check);
        resolve();
      };
      listeners.add(check);
      check();
    }),
    fault: (part: string, f: Fault | undefined) => void (f === undefined ? faults.delete(part) : faults.set(part, f)),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  });
}

/** Sends `answer` on, spoiled as `fault` says. */
function relay(answer: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void {
  const headers = { ...answer.headers };
  if (fault?.kind === 'length' && headers['content-length'] !== undefined) {
    headers['content-length'] = String(Number(headers['content-length']) + fault.delta);
  }
  res.writeHead(answer.statusCode ?? 502, headers);
  let sent = 0;
  answer.on('data', (chunk: Buffer) => {
    let out = chunk;
    if (fault?.kind === 'flip' && sent <= fault.atByte && fault.atByte < sent + chunk.length) {
      out = Buffer.from(chunk);
      out[fault.atByte - sent] = (out[fault.atByte - sent] ?? 0) ^ 0xff;
    }
    if (fault?.kind === 'cut' && sent + chunk.length > fault.afterBytes) {
      res.write(out.subarray(0, Math.max(0, fault.afterBytes - sent)));
      res.destroy();
      answer.destroy();
      return;
    }
    sent += chunk.length;
    res.write(out);
  });
  answer.on('end', () => {
    if (fault?.kind === 'length' && fault.delta > 0) res.destroy(); // promised more than it has: the connection ends short
    else res.end();
  });
  answer.on('error', () => res.destroy());
}
