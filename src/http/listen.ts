/**
 * Serving an app: `listen()` binds an HTTP or HTTPS server (with client certificates when asked) and
 * answers a RunningServer that drains gracefully on close.
 */
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureVersion } from 'node:tls';

/**
 * How long an idle keep-alive connection stays open. Node's default (5 s) is shorter than the idle
 * timeouts of the clients that reuse connections (Go's http.Transport, which docker, containerd, skopeo
 * and podman use: 90 s), so a client could send its next request on a connection Berth was closing and
 * get a reset; registry:2 never closes idle connections. Longer than the clients' own, so they close
 * first, and than the 60 s of the usual load balancers in front.
 */
export const KEEP_ALIVE_IDLE_MS = 120_000;

export interface RunningServer {
  readonly server: Server;
  /** `http://127.0.0.1:<port>` (or `https://…`) style base URL of the listening socket. */
  readonly url: string;
  /**
   * Stops accepting connections, closes idle ones, and waits up to `drainMs` (default 0) for requests in
   * flight to finish before cutting the connections that remain.
   */
  close(o?: { drainMs?: number }): Promise<void>;
  /** Requests whose responses are not over yet. */
  readonly inFlight: number;
}

/** HTTPS settings: PEM contents, already read. */
export interface TlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA certificates client certificates must chain to; when given, a client certificate is required. */
  readonly clientCas?: readonly Buffer[];
  readonly minVersion: SecureVersion;
}

/** Listens on `host:port` (port 0 picks a free one) and resolves once the socket is bound. */
export async function listen(app: { callback(): RequestListener }, host: string, port: number, tls?: TlsOptions): Promise<RunningServer> {
  const handler = app.callback();
  const server: Server = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          minVersion: tls.minVersion,
          ...(tls.clientCas && tls.clientCas.length > 0 && { ca: [...tls.clientCas], requestCert: true, rejectUnauthorized: true }),
        },
        handler,
      )
    : createHttpServer(handler);
  server.requestTimeout = 0; // uploads may take as long as they take; idle sockets still time out
  server.keepAliveTimeout = KEEP_ALIVE_IDLE_MS;
  const active = new Set<ServerResponse>();
  let drained: (() => void) | undefined;
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    res.once('close', () => {
      active.delete(res);
      if (active.size === 0) drained?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = tls ? 'https' : 'http';
  return {
    server,
    url: `${scheme}://${shownHost === '0.0.0.0' || shownHost === '[::]' ? '127.0.0.1' : shownHost}:${address.port}`,
    get inFlight() {
      return active.size;
    },
    async close(o = {}) {
      const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
      server.closeIdleConnections();
      const drainMs = o.drainMs ?? 0;
      if (drainMs > 0 && active.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, drainMs);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
