/**
 * A tiny load balancer for replica tests: every request goes to the next replica that is up, in turn
 * (node:http, method, path, headers and body streamed both ways; the Host header is kept, so Location
 * URLs point back at the proxy). Each response says which replica served it in `X-Test-Replica`.
 *
 * A replica is taken out of the rotation when connecting to it fails (as a load balancer's passive
 * health check does) or when the test says so, and put back with `up(i)`. A request whose replica
 * fails before answering gets 502; one that fails mid-answer has its connection cut. `onUpload`
 * hears how many body bytes of each blob upload request have gone to which replica, so a test can kill
 * a replica in the middle of a push.
 */
import { Agent, type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { Transform } from 'node:stream';

export interface ProxyUpstream {
  readonly port: number;
  down: boolean;
  /** Requests sent to it so far. */
  served: number;
}

export interface RoundRobinProxy {
  readonly url: string;
  readonly port: number;
  readonly upstreams: readonly ProxyUpstream[];
  /** Told as body bytes of a blob upload request (POST, PATCH, PUT under /blobs/uploads/) go to replica `i`. */
  onUpload: ((i: number, bytesSoFar: number) => void) | undefined;
  down(i: number): void;
  up(i: number): void;
  close(): Promise<void>;
}

export interface RoundRobinProxyOptions {
  readonly ports: readonly number[];
}

export async function startRoundRobinProxy(o: RoundRobinProxyOptions): Promise<RoundRobinProxy> {
  const upstreams: ProxyUpstream[] = o.ports.map((port) => ({ port, down: false, served: 0 }));
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let turn = 0;
  const self = { onUpload: undefined as RoundRobinProxy['onUpload'] };
  const next = (): number | undefined => {
    for (let k = 0; k < upstreams.length; k++) {
      const i = (turn + k) % upstreams.length;
      if (!upstreams[i]!.down) {
        turn = i + 1;
        return i;
      }
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const i = next();
    if (i === undefined) {
      res.writeHead(502).end('no replica is up');
      return;
    }
    const up = upstreams[i]!;
    up.served += 1;
    const upstream = request({ host: '127.0.0.1', port: up.port, method: req.method, path: req.url, headers: req.headers, agent });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'x-test-replica': String(i) });
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') up.down = true;
      if (!res.headersSent) res.writeHead(502, { 'x-test-replica': String(i) }).end(`replica ${i}: ${err.message}`);
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    const isUpload = req.url?.includes('/blobs/uploads/') === true && req.method !== 'GET' && req.method !== 'DELETE';
    if (isUpload && self.onUpload) {
      let bytes = 0;
      req.pipe(new Transform({
        transform(chunk: Buffer, _enc, callback) {
          bytes += chunk.length;
          self.onUpload?.(i, bytes);
          callback(null, chunk);
        },
      })).pipe(upstream);
    } else {
      req.pipe(upstream);
    }
  };

  const server: Server = createServer(forward);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return Object.assign(self, {
    url: `http://127.0.0.1:${port}`,
    port,
    upstreams,
    down: (i: number) => void (upstreams[i]!.down = true),
    up: (i: number) => void (upstreams[i]!.down = false),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  });
}
