/**
 * The mirror bench's blob client (bench/lib/blob-client.ts) against a real node:http server: it must
 * check every byte it measures (a wrong digest, status or length is an error, never a sample), and
 * reuse its keep-alive connections.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BlobClient } from '../bench/lib/blob-client.js';

const blob = randomBytes(3 * 1024 * 1024 + 17);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
let server: Server;
let base = '';
const connections: unknown[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/blob') res.writeHead(200, { 'Content-Length': blob.length }).end(blob);
    else if (req.url === '/chunked') res.writeHead(200).end(blob); // no Content-Length: chunked
    else if (req.url === '/long-headers') res.writeHead(200, { 'Content-Length': blob.length, 'X-Padding': 'x'.repeat(8000) }).end(blob);
    else res.writeHead(404, { 'Content-Length': 0 }).end();
  });
  server.on('connection', (c) => connections.push(c));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

it('takes a blob whole, checks its digest, and reuses the connection for the next', async () => {
  const client = new BlobClient();
  try {
    expect(await client.blob(`${base}/blob`, digest)).toBe(blob.length);
    expect(await client.blob(`${base}/long-headers`, digest)).toBe(blob.length);
    const before = connections.length;
    expect(await Promise.all([client.blob(`${base}/blob`, digest), client.blob(`${base}/blob`, undefined)])).toEqual([blob.length, blob.length]);
    expect(connections.length - before).toBe(1); // one kept connection reused, one new for the parallel GET
  } finally {
    client.close();
  }
});

it('fails on a wrong digest, another status, or a body without a Content-Length', async () => {
  const client = new BlobClient();
  try {
    await expect(client.blob(`${base}/blob`, `sha256:${'0'.repeat(64)}`)).rejects.toThrow(/want sha256:0000/);
    await expect(client.blob(`${base}/missing`, digest)).rejects.toThrow(/answered 404/);
    await expect(client.blob(`${base}/chunked`, digest)).rejects.toThrow(/without a Content-Length/);
    expect(await client.blob(`${base}/blob`, digest)).toBe(blob.length); // and goes on working
  } finally {
    client.close();
  }
});

it('counts a body without hashing it (length): the manifest\'s size must match, and the status is checked as for blob()', async () => {
  const client = new BlobClient();
  try {
    expect(await client.length(`${base}/blob`, blob.length)).toBe(blob.length);
    await expect(client.length(`${base}/blob`, blob.length - 1)).rejects.toThrow(new RegExp(`more bytes than the Content-Length|${blob.length} bytes, want ${blob.length - 1}`));
    await expect(client.length(`${base}/blob`, blob.length + 1)).rejects.toThrow(`${blob.length} bytes, want ${blob.length + 1}`);
    await expect(client.length(`${base}/missing`, 0)).rejects.toThrow(/answered 404/);
    await expect(client.length(`${base}/chunked`, blob.length)).rejects.toThrow(/without a Content-Length/);
    expect(await client.length(`${base}/blob`, blob.length)).toBe(blob.length);
  } finally {
    client.close();
  }
});
