/**
 * A private Redis for tests: `redis-server` on a free loopback port, nothing saved to disk, in the
 * foreground as a child of the test process (stopped by its PID, and killed by it if the test process
 * exits first). `redisAvailability()` is what describeWithTool takes; `.ci/run` installs redis-server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { type ToolAvailability, freePort, hasExited, killAtExit, sleep, stopChild, toolAvailable } from './process.js';

export interface TestRedis {
  readonly port: number;
  /** `127.0.0.1:<port>`, as `redis.addr` takes it. */
  readonly addr: string;
  readonly child: ChildProcess;
  /** Sends one command (inline protocol) and answers the raw reply, e.g. `FLUSHALL` → `+OK\r\n`. */
  command(line: string): Promise<string>;
  /** SIGTERM by PID, SIGKILL if it lingers. */
  stop(): Promise<void>;
}

export function redisAvailability(): ToolAvailability {
  return toolAvailable('redis-server', 'redis-server');
}

/** Starts redis-server (on `port`, e.g. to restart one, else a free one) and resolves once it answers PING (and, with `aofDir`, has loaded its file). */
export async function startRedis(port?: number, o: { readonly aofDir?: string } = {}): Promise<TestRedis> {
  port ??= await freePort();
  // With `aofDir`: every write fsync'd to an append-only file there, so a restart on it keeps the data.
  const persistence = o.aofDir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', o.aofDir];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killAtExit(child);
  let log = '';
  const collect = (c: Buffer): void => {
    log = (log + c.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const at = port;
  const command = (line: string): Promise<string> => send(at, line);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (hasExited(child)) throw new Error(`redis-server exited before it answered:\n${log}`);
    const pong = await command('PING').catch(() => '');
    if (pong.startsWith('+PONG')) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`redis-server did not answer PING within 10 s:\n${log}`);
    }
    await sleep(20);
  }
  return { port, addr: `127.0.0.1:${port}`, child, command, stop: () => stopChild(child) };
}

/** One inline command on a fresh connection; resolves with the first reply line(s) received. */
function send(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(2_000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (c: Buffer) => {
      reply += c.toString('utf8');
      if (reply.endsWith('\r\n')) {
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', reject);
  });
}
