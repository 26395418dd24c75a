/**
 * The notifier against a real webhook receiver (node:http, suite/webhook.ts): delivery with
 * registry:2's request shape, retries and the circuit breaker, 3xx answers, filters, the queue bound,
 * metrics, and queues that outlive a stop while the receiver is down.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startWebhook, type Webhook } from './suite/webhook.js';
import { createLogger } from '../log.js';
import type { EndpointOptions } from './endpoint.js';
import { type EventOrigin, type EventSubject, EVENTS_MEDIA_TYPE } from './event.js';
import { type Notifier, type NotifierOptions, createNotifier, queueDirName } from './notifier.js';

const logLines: string[] = [];
const log = createLogger({ level: 'debug', format: 'json', write: (l) => logLines.push(l) });

const hooks: Webhook[] = [];
const notifiers: Notifier[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const n of notifiers.splice(0)) await n.stop();
  for (const h of hooks.splice(0)) await h.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  logLines.length = 0;
});

async function hook(port = 0): Promise<Webhook> {
  const h = await startWebhook(port);
  hooks.push(h);
  return h;
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'berth-notifier-'));
  dirs.push(d);
  return d;
}

function endpoint(name: string, url: string, o: Partial<EndpointOptions> = {}): EndpointOptions {
  return { name, url, headers: {}, timeoutMs: 1000, threshold: 10, backoffMs: 1000, ignoredMediaTypes: [], ignoredActions: [], ...o };
}

async function notifier(o: Partial<NotifierOptions> & Pick<NotifierOptions, 'endpoints'>): Promise<Notifier> {
  const n = await createNotifier({ includeReferences: false, dir: undefined, log, instanceId: 'instance-1', sourceAddr: 'host:5000', ...o });
  notifiers.push(n);
  return n;
}

const origin = (method: string): EventOrigin => ({
  request: { id: `req-${method}`, addr: '127.0.0.1:1234', host: 'localhost:5000', method, useragent: 'test-agent/1.0' },
  actor: 'alice',
  url: (path) => `http://localhost:5000${path}`,
});
const D = (c: string): string => `sha256:${c.repeat(64)}`;
const blobPush = (i: number): EventSubject => ({ kind: 'blob', action: 'push', repository: 'app', digest: D(String(i % 10)), size: 100 + i });
const manifestPull: EventSubject = {
  kind: 'manifest', action: 'pull', repository: 'app', digest: D('f'), tag: 'v1',
  content: Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}'),
};

describe('notifier', () => {
  it("POSTs one event per request, in order, as registry:2 does: envelope, media type, configured headers", async () => {
    const h = await hook();
    const n = await notifier({ endpoints: [endpoint('one', h.url, { headers: { Authorization: ['Bearer token-1'], 'X-Multi': ['a', 'b'] } })] });
    for (let i = 0; i < 5; i++) await n.sink.write(blobPush(i), origin('PUT'));
    await h.waitFor(() => h.requests.length === 5);
    expect(h.accepted().map((e) => e.target.size)).toEqual([100, 101, 102, 103, 104]);
    const first = h.requests[0];
    expect(first?.method).toBe('POST');
    expect(first?.path).toBe('/hook');
    expect(first?.headers['content-type']).toBe(EVENTS_MEDIA_TYPE);
    expect(first?.headers['authorization']).toBe('Bearer token-1');
    expect(first?.headers['x-multi']).toBe('a, b');
    expect(first?.events).toHaveLength(1);
    expect(first?.body.startsWith('{\n   "events": [\n      {\n         "id": ')).toBe(true);
    expect(first?.events[0]).toMatchObject({
      action: 'push',
      target: { mediaType: 'application/octet-stream', digest: D('0'), size: 100, length: 100, repository: 'app', url: `http://localhost:5000/v2/app/blobs/${D('0')}` },
      request: { id: 'req-PUT', addr: '127.0.0.1:1234', host: 'localhost:5000', method: 'PUT', useragent: 'test-agent/1.0' },
      actor: { name: 'alice' },
      source: { addr: 'host:5000', instanceID: 'instance-1' },
    });
    expect(new Set(h.accepted().map((e) => e.id)).size).toBe(5);
    await h.waitFor(() => n.pending()['one'] === 0, 5000);
  });

  it('retries a failing endpoint at once below the threshold, then once per backoff, until it accepts', async () => {
    const h = await hook();
    h.answer = ({ count }) => (count < 5 ? 500 : 202);
    const n = await notifier({ endpoints: [endpoint('flaky', h.url, { threshold: 2, backoffMs: 300 })] });
    await n.sink.write(blobPush(1), origin('PUT'));
    await h.waitFor(() => h.accepted().length === 1, 10_000);
    const at = h.requests.map((r) => r.at);
    expect(h.requests.map((r) => r.status)).toEqual([500, 500, 500, 500, 500, 202]);
    expect(new Set(h.requests.map((r) => r.events[0]?.id)).size).toBe(1); // the same event every time
    expect((at[1] ?? 0) - (at[0] ?? 0)).toBeLessThan(250); // the second try comes at once…
    for (let i = 2; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThanOrEqual(280); // …then one per backoff
    expect(logLines.some((l) => l.includes('notification endpoint failed') && l.includes('HTTP 500'))).toBe(true);
    await h.waitFor(() => logLines.some((l) => l.includes('accepts events again') && l.includes('"failedAttempts":5')), 5000);
  });

  it('counts a 3xx answer (after following the redirect) as delivered, and a timeout as a failure', async () => {
    const h = await hook();
    h.answer = ({ path }) => (path === '/hook' ? 307 : 200);
    const n = await notifier({ endpoints: [endpoint('redirected', h.url)] });
    await n.sink.write(blobPush(1), origin('PUT'));
    await h.waitFor(() => h.requests.length === 2);
    expect(h.requests.map((r) => [r.path, r.status])).toEqual([['/hook', 307], ['/final', 200]]);
    await new Promise((r) => setTimeout(r, 100));
    expect(h.requests).toHaveLength(2);

    const slow = await hook();
    const { createServer } = await import('node:http');
    const hanging = createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()));
    const address = hanging.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const registry = new Registry();
    const m = await notifier({ endpoints: [endpoint('slow', `http://127.0.0.1:${port}/`, { timeoutMs: 100, threshold: 1, backoffMs: 60_000 })], metricsRegistry: registry });
    await m.sink.write(blobPush(2), origin('PUT'));
    await slow.waitFor(() => logLines.some((l) => l.includes('"endpoint":"slow"') && l.includes('timed out')), 5000);
    expect(m.pending()).toEqual({ slow: 1 });
    const text = await registry.metrics();
    expect(text).toContain('berth_notifications_delivery_failures_total{endpoint="slow"} 1');
    expect(text).toContain('berth_notifications_events_pending{endpoint="slow"} 1');
    await m.stop();
    hanging.closeAllConnections();
    await new Promise<void>((resolve) => hanging.close(() => resolve()));
  });

  it('gives each endpoint only what it does not ignore (ignore.actions, ignoredmediatypes)', async () => {
    const h = await hook();
    const n = await notifier({
      endpoints: [
        endpoint('no-pulls', `${h.url}/a`, { ignoredActions: ['pull'] }),
        endpoint('no-blobs', `${h.url}/b`, { ignoredMediaTypes: ['application/octet-stream'] }),
      ],
    });
    await n.sink.write(blobPush(1), origin('PUT'));
    await n.sink.write(manifestPull, origin('GET'));
    await n.sink.write({ kind: 'delete', repository: 'app', digest: D('1') }, origin('DELETE'));
    await h.waitFor(() => h.requests.length === 4);
    const seen = (path: string): string[] => h.requests.filter((r) => r.path === path).flatMap((r) => r.events.map((e) => `${e.action}:${e.target.mediaType ?? '-'}`));
    expect(seen('/hook/a')).toEqual(['push:application/octet-stream', 'delete:-']);
    expect(seen('/hook/b')).toEqual(['pull:application/vnd.oci.image.manifest.v1+json', 'delete:-']);
  });

  it('drops new events while a queue is at its bound, counts and logs them, and keeps the queued ones', async () => {
    const registry = new Registry();
    const n = await notifier({ endpoints: [endpoint('down', 'http://127.0.0.1:9/never', { threshold: 1, backoffMs: 60_000 })], maxQueueBytes: 2000, metricsRegistry: registry });
    for (let i = 0; i < 10; i++) await n.sink.write(blobPush(i), origin('PUT'));
    const pending = n.pending()['down'] ?? 0;
    expect(pending).toBeGreaterThan(0);
    expect(pending).toBeLessThan(10);
    const text = await registry.metrics();
    expect(text).toContain(`berth_notifications_events_enqueued_total{endpoint="down"} ${pending}`);
    expect(text).toContain(`berth_notifications_events_dropped_total{endpoint="down",reason="queue_full"} ${10 - pending}`);
    expect(logLines.filter((l) => l.includes('notification queue is full'))).toHaveLength(1);
  });

  it('keeps events on disk while the endpoint is down, across a stop and a new start, then delivers each once with its id', async () => {
    const dir = await tempDir();
    const h = await hook();
    const port = h.port;
    await h.stop(); // the endpoint is down
    const first = await notifier({ endpoints: [endpoint('durable', h.url, { threshold: 1, backoffMs: 50 })], dir });
    for (let i = 0; i < 8; i++) await first.sink.write(blobPush(i), origin('PUT'));
    await new Promise((r) => setTimeout(r, 200)); // a few failed attempts
    expect(first.pending()).toEqual({ durable: 8 });
    await first.stop();
    notifiers.splice(notifiers.indexOf(first), 1);
    expect(logLines.some((l) => l.includes('kept for the next start') && l.includes('"pending":8'))).toBe(true);

    const again = await hook(port);
    const second = await notifier({ endpoints: [endpoint('durable', again.url)], dir, instanceId: 'instance-2' });
    await again.waitFor(() => again.accepted().length === 8);
    const events = again.accepted();
    expect(events.map((e) => e.target.size)).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
    expect(new Set(events.map((e) => e.id)).size).toBe(8);
    expect(events.every((e) => e.source.instanceID === 'instance-1')).toBe(true); // the event as it was made
    await again.waitFor(() => second.pending()['durable'] === 0, 5000);
    await new Promise((r) => setTimeout(r, 300));
    expect(again.requests).toHaveLength(8);
  });

  it('puts each queue in its own directory and warns about queues no endpoint uses any more', async () => {
    const dir = await tempDir();
    const old = await notifier({ endpoints: [endpoint('retired/hook', 'http://127.0.0.1:9/x', { threshold: 1, backoffMs: 60_000 })], dir });
    await old.sink.write(blobPush(1), origin('PUT'));
    await old.stop();
    notifiers.splice(notifiers.indexOf(old), 1);
    expect(queueDirName('retired/hook')).toMatch(/^retired_hook-[0-9a-f]{8}$/);
    expect(queueDirName('retired/hook')).not.toBe(queueDirName('retired_hook'));
    await notifier({ endpoints: [endpoint('current', 'http://127.0.0.1:9/y'), { ...endpoint('off', 'http://127.0.0.1:9/z'), disabled: true }], dir });
    expect(logLines.some((l) => l.includes('still holds events') && l.includes(queueDirName('retired/hook')))).toBe(true);
    expect(logLines.some((l) => l.includes('disabled, skipping') && l.includes('"endpoint":"off"'))).toBe(true);
  });

  it('answers a push once its event is on disk, a pull at once (without I/O), and takes nothing after stop', async () => {
    const dir = await tempDir();
    const n = await notifier({ endpoints: [endpoint('d', 'http://127.0.0.1:9/x', { threshold: 1, backoffMs: 60_000 })], dir });
    const onDisk = async (): Promise<string> => {
      const queueDir = join(dir, queueDirName('d'));
      const files = (await readdir(queueDir)).filter((f) => f.endsWith('.log'));
      return (await Promise.all(files.map((f) => readFile(join(queueDir, f), 'utf8')))).join('');
    };
    await n.sink.write(blobPush(3), origin('PUT'));
    expect(await onDisk()).toContain(D('3'));
    let pullAnswered = false;
    const pull = n.sink.write(manifestPull, origin('GET')).then(() => {
      pullAnswered = true;
    });
    await Promise.resolve();
    await Promise.resolve();
    expect(pullAnswered).toBe(true); // answered before any I/O could happen
    await pull;
    await n.stop();
    expect(await onDisk()).toContain(D('f'));
    await n.sink.write(blobPush(4), origin('PUT'));
    expect(n.pending()).toEqual({ d: 2 });
    expect(await onDisk()).not.toContain(D('4'));
  });
});
