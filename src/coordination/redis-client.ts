/**
 * Berth's connection to Redis: one ioredis client multiplexing every command over one connection, and
 * Lua scripts run by their SHA1 (EVALSHA; the script is sent once, on NOSCRIPT).
 *
 * It fails rather than waits: commands are not queued while the connection is down and not retried
 * when it drops, so a lock operation fails at once and its caller fails closed (a push answers 503;
 * a collection stops). The client keeps reconnecting in the background, and every `error` event goes
 * to `onError` (the caller throttles the log).
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

/** Where Redis is and how long to wait for it. */
export interface RedisClientOptions {
  readonly host: string;
  readonly port: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly db: number;
  readonly connectTimeoutMs: number;
  /** How long one command may wait for its answer. */
  readonly commandTimeoutMs: number;
  /** TLS with the system's CAs. */
  readonly tls: boolean;
  /** Told of connection errors after the first connect (reconnects go on in the background). */
  readonly onError?: (err: Error) => void;
}

/** A Lua script and its SHA1. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/** Makes a LuaScript of `source`. */
export function luaScript(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** A value a script takes as an argument. */
export type ScriptArg = string | number;

/** What the rest of Berth needs of Redis. */
export interface RedisClient {
  /** Where it connects, for logs: `host:port/db`. */
  readonly where: string;
  /** Runs `script` atomically with `keys` and `args`; answers its reply. @throws when Redis fails or cannot be reached */
  run(script: LuaScript, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown>;
  /** Sends one command (`call('XADD', key, '*', 'f', 'v')`); answers its reply. @throws when Redis fails or cannot be reached */
  call(command: string, ...args: readonly ScriptArg[]): Promise<unknown>;
  /** A server setting (`CONFIG GET`), or undefined when the server does not say (managed Redis often refuses CONFIG). */
  setting(name: string): Promise<string | undefined>;
  /** Closes the connection (commands in flight are answered first). */
  close(): Promise<void>;
}

/**
 * Connects, resolving once Redis answers. @throws Error naming the address when it cannot connect
 * (refused, unreachable, bad password, bad db) within `connectTimeoutMs`.
 */
export async function connectRedis(o: RedisClientOptions): Promise<RedisClient> {
  const where = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}/${o.db}`;
  const client = new Redis({
    host: o.host,
    port: o.port,
    db: o.db,
    ...(o.username !== undefined && { username: o.username }),
    ...(o.password !== undefined && { password: o.password }),
    ...(o.tls && { tls: { servername: o.host } }),
    connectTimeout: o.connectTimeoutMs,
    commandTimeout: o.commandTimeoutMs,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(50 * times, 2_000),
    connectionName: 'berth',
  });
  let connected = false;
  client.on('error', (err: Error) => {
    if (connected) o.onError?.(err);
  });
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    throw new Error(`cannot connect to Redis at ${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  connected = true;
  return {
    where,
    async run(script, keys, args) {
      try {
        return await client.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return client.eval(script.source, keys.length, ...keys, ...args);
      }
    },
    call: (command, ...args) => client.call(command, ...args),
    async setting(name) {
      try {
        const reply = await client.config('GET', name);
        return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
      } catch {
        return undefined;
      }
    },
    async close() {
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
}
