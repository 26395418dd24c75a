import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RequestScope } from './request-state.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handle: Handler = () => undefined;
const server = createServer((req, res) => handle(req, res));
let port = 0;

beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Sends a request whose client goes away once the server has it; resolves with the server's response. */
async function clientGoesAway(): Promise<ServerResponse> {
  const arrived = new Promise<ServerResponse>((resolve) => {
    handle = (_req, res) => resolve(res);
  });
  const req = request({ port, host: '127.0.0.1', method: 'GET', path: '/' });
  req.on('error', () => undefined);
  req.end();
  const res = await arrived;
  req.destroy();
  return res;
}

it('gives a signal that aborts when the client goes away before the response is done', async () => {
  const res = await clientGoesAway();
  const scope = new RequestScope(res);
  const { signal } = scope;
  expect(signal.aborted).toBe(false);
  if (!res.closed) await once(res, 'close');
  expect(signal.aborted).toBe(true);
  expect(scope.signal).toBe(signal); // one controller per request
});

it('gives an aborted signal when first read after the response closed unfinished', async () => {
  const res = await clientGoesAway();
  if (!res.closed) await once(res, 'close');
  expect(new RequestScope(res).signal.aborted).toBe(true);
});

it('gives a signal that stays quiet for a response sent in full', async () => {
  let scope: RequestScope | undefined;
  let closed: Promise<unknown> = Promise.resolve();
  handle = (_req, res) => {
    scope = new RequestScope(res);
    void scope.signal;
    closed = once(res, 'close');
    res.end('ok');
  };
  const answered = await fetch(`http://127.0.0.1:${port}/`);
  expect(await answered.text()).toBe('ok');
  await closed;
  expect(scope?.signal.aborted).toBe(false);
});
