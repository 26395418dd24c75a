/**
 * The test helper `freePort()` hands children ports outside the kernel's ephemeral range, where the suite's
 * own outgoing connections take their local ports (a port handed out from inside it was once taken by one
 * before the child could bind it: `listen EADDRINUSE` in CI). The suite runs on Linux (its daemons need it),
 * where the range is in /proc.
 */
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './helpers/process.js';

const [ephemeralLow = Number.NaN] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);

const listening: Server[] = [];
afterEach(async () => {
  await Promise.all(listening.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
    listening.push(server);
  });
}

describe('freePort', () => {
  it('answers ports below the ephemeral range, distinct when asked for at once, each one bindable', async () => {
    const ports = await Promise.all(Array.from({ length: 40 }, () => freePort()));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) expect(port).toBeLessThan(ephemeralLow);
    await Promise.all(ports.map((port) => listenOn(port)));
  });

  it('skips a port something is listening on', async () => {
    const first = await freePort();
    await listenOn(first);
    // The walk wraps around its slice: asking for a whole slice's worth never answers the held port.
    const answers = new Set<number>();
    for (let i = 0; i < 500; i += 1) answers.add(await freePort());
    expect(answers.has(first)).toBe(false);
  });
});
