/**
 * One HTTP request to an upstream, over node:http and node:https with keep-alive agents (a blob body is
 * a plain Node stream of Buffers: no web stream in between, which cost the mirror a conversion per
 * chunk). The wait for the answer's headers is bounded (`timeoutMs`); the body then flows for as long
 * as its reader wants, unless it sends nothing for 5 minutes, and the caller's signal stops the request
 * at any point, body included.
 */
import { type Agent as HttpAgent, type IncomingMessage, Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';

/** Why an upstream request failed: no answer, too slow, an error status, or an answer that cannot be used. */
export type UpstreamFailure = 'unreachable' | 'timeout' | 'status' | 'invalid';

/** An upstream request that failed; `status` is the upstream's HTTP status for `status` failures. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(readonly kind: UpstreamFailure, message: string, readonly status?: number, options?: ErrorOptions) {
    super(message, options);
  }
}

/** An upstream's answer: its status, its headers, and its body (to read, or to `discard`). */
export interface UpstreamResponse {
  readonly status: number;
  /** A header's value (the first one of a repeated header); undefined when absent. */
  header(name: string): string | undefined;
  readonly body: Readable;
  /** Drops a small body unread (an error's, a redirect's), so the connection can be reused. */
  discard(): void;
}

export interface UpstreamRequest {
  readonly method: 'GET' | 'HEAD';
  readonly headers: Readonly<Record<string, string>>;
  /** Stops the request, and its body once it flows. */
  readonly signal: AbortSignal;
  /** How long the answer's headers may take. */
  readonly timeoutMs: number;
}

/** How long an answer's body may send nothing before the request is given up. */
const BODY_IDLE_MS = 5 * 60_000;

const agents = {
  http: new Agent({ keepAlive: true, maxSockets: 64 }) as HttpAgent,
  https: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
};

/** Sends `r` to `url` (http or https) and resolves with the answer once its headers are in. @throws UpstreamError, or the signal's reason */
export function sendUpstream(url: URL, r: UpstreamRequest): Promise<UpstreamResponse> {
  if (r.signal.aborted) return Promise.reject(r.signal.reason);
  const secure = url.protocol === 'https:';
  return new Promise<UpstreamResponse>((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(url, { method: r.method, headers: r.headers, agent: secure ? agents.https : agents.http });
    let answered: IncomingMessage | undefined;
    const onAbort = (): void => {
      const reason: unknown = r.signal.reason;
      const err = reason instanceof Error ? reason : new Error(String(reason));
      if (answered === undefined) reject(err);
      req.destroy(err);
      answered?.destroy(err);
    };
    r.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const err = new UpstreamError('timeout', `no answer from ${url.host} within ${r.timeoutMs} ms`);
      reject(err);
      req.destroy(err);
    }, r.timeoutMs);
    // A body that sends nothing this long is given up (registry:2's cachewritetimeout); the socket's idle timer.
    req.setTimeout(BODY_IDLE_MS, () => req.destroy(new UpstreamError('timeout', `${url.host} sent nothing for ${BODY_IDLE_MS / 1000} s`)));
    const done = (): void => r.signal.removeEventListener('abort', onAbort);
    req.on('error', (err) => {
      clearTimeout(timer);
      done();
      reject(err);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      answered = res;
      res.once('close', done);
      resolve({
        status: res.statusCode ?? 0,
        header: (name) => {
          const value = res.headers[name.toLowerCase()];
          return Array.isArray(value) ? value[0] : value;
        },
        body: res,
        discard: () => void res.resume(),
      });
    });
    req.end();
  });
}

/** The whole body, refused past `max` bytes (`tooLarge` makes the error). */
export async function readBody(res: UpstreamResponse, max: number, tooLarge: () => Error): Promise<Buffer> {
  const length = Number(res.header('Content-Length') ?? 0);
  if (length > max) {
    res.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    res.body.destroy();
    throw err;
  }
  return Buffer.concat(chunks);
}
