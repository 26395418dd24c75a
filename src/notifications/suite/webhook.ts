/**
 * Test support (a suite/ file: tests only, never the server). A webhook receiver for the notification
 * tests (the notifier's own, and test/'s through test/helpers/webhook.ts): a real node:http server on 127.0.0.1 that records
 * every request (path, headers, body, the envelope's events) and answers with a status the test
 * chooses per request. It can be stopped and started again on the same port, to play an endpoint
 * that is down for a while.
 */
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** An event as the receiver got it (registry:2's JSON). */
export interface WebhookEvent {
  id: string;
  timestamp: string;
  action: string;
  target: {
    mediaType?: string;
    size?: number;
    digest?: string;
    length?: number;
    repository?: string;
    fromRepository?: string;
    url?: string;
    tag?: string;
    references?: { mediaType?: string; size?: number; digest?: string }[];
  };
  /** Berth's `quota` events only. */
  quota?: { name: string; key: string; repositories: string[]; namespace: string; kind: string; usage: number; previous: number; limit: number; threshold: number };
  request: { id: string; addr?: string; host?: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr?: string; instanceID?: string };
}

export interface WebhookRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The envelope's events; empty when the body was not an envelope. */
  readonly events: WebhookEvent[];
  /** The status it was answered with. */
  readonly status: number;
  readonly at: number;
}

export interface Webhook {
  readonly port: number;
  /** `http://127.0.0.1:<port>/hook` */
  readonly url: string;
  /** Every request received, in order, across restarts. */
  readonly requests: WebhookRequest[];
  /** Events of the requests answered 2xx, in order. */
  accepted(): WebhookEvent[];
  /** Decides each answer (default 200); a 3xx answer gets `Location: /final`. */
  answer: (req: { path: string; count: number }) => number;
  /** Waits until `pred` holds, polling; throws with what was received after `timeoutMs`. */
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
  /** Stops listening (the port then refuses connections). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

/** Starts a receiver on `port` (0: a free one). */
export async function startWebhook(port = 0): Promise<Webhook> {
  const requests: WebhookRequest[] = [];
  let server: Server | undefined;
  let boundPort = port;
  const hook: Webhook = {
    get port() {
      return boundPort;
    },
    get url() {
      return `http://127.0.0.1:${boundPort}/hook`;
    },
    requests,
    accepted: () => requests.filter((r) => r.status >= 200 && r.status < 300).flatMap((r) => r.events),
    answer: () => 200,
    async waitFor(pred, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > deadline) {
          throw new Error(`webhook: condition not met in ${timeoutMs} ms; received ${requests.length} requests: ${JSON.stringify(requests.map((r) => ({ path: r.path, status: r.status, events: r.events.map((e) => `${e.action} ${e.target.repository ?? ''} ${e.target.tag ?? e.target.digest ?? ''}`) })))}`);
        }
        await sleep(20);
      }
    },
    async stop() {
      const s = server;
      server = undefined;
      if (s === undefined) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
    async start() {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const path = req.url ?? '';
          const status = hook.answer({ path, count: requests.length });
          let events: WebhookEvent[] = [];
          try {
            events = (JSON.parse(body) as { events?: WebhookEvent[] }).events ?? [];
          } catch {
            events = [];
          }
          requests.push({ method: req.method ?? '', path, headers: req.headers, body, events, status, at: Date.now() });
          if (status >= 300 && status < 400) res.setHeader('Location', '/final');
          res.statusCode = status;
          res.end();
        });
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(boundPort, '127.0.0.1', () => resolve());
      });
      boundPort = (s.address() as AddressInfo).port;
      server = s;
    },
  };
  await hook.start();
  return hook;
}
