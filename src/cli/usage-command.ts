/**
 * `berth usage [prefix] [config.yml]`: the usage figures of every repository (whose name starts with
 * `prefix`), as the management API gives them, in a table, largest exclusive bytes first (what
 * deleting the repository would free: the question an operator short of disk asks), then largest
 * logical bytes, then by name.
 *
 * Where the figures come from. They live in the listing index, which one process holds at a time:
 * - A Berth serving the root holds it, and its figures are live, so the command asks that server, at
 *   `http.addr` of the same configuration (127.0.0.1 for a wildcard address, `http.prefix`, https when
 *   `http.tls` is set), page by page through `GET /berth/v1/usage`. When the server asks for
 *   credentials, BERTH_USERNAME and BERTH_PASSWORD answer it (Basic, or a token from its realm for
 *   `registry:catalog:*`).
 * - When nobody serves the root, the command opens the index itself, rebuilds it from the tree (as a
 *   server does at every start: a database found on disk is never trusted) and reads the figures.
 * - With `redis` (replicas) the figures are in the replicas' index in Redis: the command reads them
 *   there (with the push and pull times beside them), once the index is complete (it waits up to 30 s
 *   for a replica's rebuild; else it says so and exits 1).
 * - In-memory storage keeps nothing: the command says so and exits 1.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../config/parse.js';
import type { Config } from '../config/schema.js';
import { formatBytes } from '../gc/report.js';
import { openIndexDb } from '../indexdb/index-db.js';
import { createUpstreamAuth, parseChallenge } from '../mirror/upstream-auth.js';
import { sendUpstream } from '../mirror/upstream-http.js';
import { createIndexSource } from '../storage/indexing/index-source.js';
import { type RepoUsage, createRegistry } from '../storage/registry.js';
import { createDriver } from '../storage/driver/factory.js';
import { CommandError } from './command-error.js';
import { RegistryError } from '../errors.js';
import { type CommandIo, processIo } from './offline.js';
import { describeHolder, indexLocation, otherHolder, recordHolder } from './root-holder.js';
import { parseAddr } from './serve-addr.js';
import { driverFor, loggerFor } from './setup.js';
import { startRedisIndex, startRedisTimes } from './index-command.js';
import { startReplicas } from './replicas.js';

export const USAGE_USAGE = 'usage: berth usage [prefix] [config.yml]\n';

/** How long the command waits for the index in Redis to be complete. */
const READY_WAIT_MS = 30_000;

/** How many repositories one request to a server asks for. */
const PAGE = 1000;

export interface UsageArgs {
  readonly prefix: string | undefined;
  readonly file: string | undefined;
}

/** The command line after `usage`, or what is wrong with it. */
export function parseUsageArgs(args: readonly string[]): UsageArgs | string {
  const files = args.filter((a) => /\.ya?ml$/.test(a));
  const others = args.filter((a) => !/\.ya?ml$/.test(a));
  if (others.some((a) => a.startsWith('-'))) return `usage: unknown option ${JSON.stringify(others.find((a) => a.startsWith('-')))}`;
  if (files.length > 1 || others.length > 1) return 'usage takes at most one prefix and one configuration file';
  return { prefix: others[0], file: files[0] };
}

/**
 * Runs `berth usage`; answers the exit code (0, or 1 when the figures cannot be had).
 * @throws ConfigError from the configuration, for main to print
 */
export async function usageCommand(cmd: UsageArgs, env: Record<string, string | undefined>, given?: CommandIo): Promise<number> {
  const io = given ?? processIo();
  const warnings: string[] = [];
  const config = await loadConfig({ file: cmd.file, env, warn: (m) => warnings.push(m) });
  const log = loggerFor(config, (line) => io.stderr(`${line}\n`));
  for (const w of warnings) log.warn(w);
  try {
    const table = usageTable(await figuresFor(config, cmd.prefix, env, io));
    // main exits as soon as this answers: a long table into a pipe must have left the process first.
    if (given) given.stdout(table);
    else await new Promise<void>((done) => process.stdout.write(table, () => done()));
    return 0;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    io.stderr(`berth usage: ${err.message}\n`);
    return 1;
  }
}

async function figuresFor(config: Config, prefix: string | undefined, env: Record<string, string | undefined>, io: CommandIo): Promise<UsageRow[]> {
  if (config.redis !== undefined) return readRedisIndex(config, prefix, io);
  if (config.storage.driver !== 'filesystem') throw new CommandError(`${config.storage.driver} storage keeps no index, and so no usage figures`);
  const other = await otherHolder(config);
  if (other !== undefined) {
    io.stderr(`berth usage: asking the server holding the root, ${describeHolder(other.holder)}\n`);
    return askServer(config, prefix, env);
  }
  return readIndex(config, config.storage.rootdirectory, prefix, io);
}

/** Opens the root's index (nobody else holds it), rebuilds it from the tree and reads every figure. */
async function readIndex(config: Config, rootdirectory: string, prefix: string | undefined, io: CommandIo): Promise<RepoUsage[]> {
  const root = resolve(rootdirectory);
  const location = indexLocation(root);
  const log = loggerFor(config, (line) => io.stderr(`${line}\n`));
  const driver = createDriver({ kind: 'filesystem', root });
  const index = await openIndexDb({ location, source: createIndexSource(driver), log });
  if (!index) throw new CommandError(`cannot open the index at ${location} (see the log above)`);
  const forget = await recordHolder(location, 'usage');
  try {
    io.stderr(`berth usage: no server holds ${root}; rebuilding its index from the tree\n`);
    if (!(await index.rebuild())) throw new CommandError(`the rebuild of ${location} failed (see the log above)`);
    const registry = createRegistry({ driver, deleteEnabled: false, index, times: index.times });
    return await registry.management.usages({ prefix });
  } finally {
    await forget();
    await index.close();
  }
}

/** Reads every figure from the replicas' index in Redis, once it is complete. */
async function readRedisIndex(config: Config, prefix: string | undefined, io: CommandIo): Promise<RepoUsage[]> {
  const log = loggerFor(config, (line) => io.stderr(`${line}\n`));
  const replicas = await startReplicas(config, log, false);
  if (replicas === undefined) throw new CommandError('redis is not configured');
  try {
    const driver = await driverFor(config.storage);
    const index = await startRedisIndex(replicas, driver, log, false);
    const times = await startRedisTimes(replicas, log);
    try {
      if (!(await index.ready(READY_WAIT_MS))) {
        throw new CommandError(`the index in redis (${replicas.client.where}) is not complete: a replica rebuilds it when it notices, or run \`berth index rebuild\``);
      }
      const registry = createRegistry({ driver, deleteEnabled: false, index, times });
      return await registry.management.usages({ prefix }).catch((err: unknown) => {
        // The index is complete but may not answer usage (a repository's links could not be read).
        if (err instanceof RegistryError) throw new CommandError(`the index in redis cannot answer: ${err.message}`);
        throw err;
      });
    } finally {
      await times.close();
      await index.close();
    }
  } finally {
    await replicas.close();
  }
}

/** The server's base URL from its configuration: loopback for a wildcard address. */
export function serverUrl(config: Config): string {
  const { host, port } = parseAddr(config.http.addr);
  const loopback = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const name = loopback.includes(':') ? `[${loopback}]` : loopback;
  return `${config.http.tls ? 'https' : 'http'}://${name}:${port}${config.http.prefix}`;
}

/** Every page of `GET /berth/v1/usage?prefix=` from the server holding the root. */
async function askServer(config: Config, prefix: string | undefined, env: Record<string, string | undefined>): Promise<UsageRow[]> {
  const base = serverUrl(config);
  const username = env['BERTH_USERNAME'];
  const password = env['BERTH_PASSWORD'] ?? '';
  const auth = createUpstreamAuth(
    async () => (username === undefined ? undefined : { username, password }),
    (url, init) => sendUpstream(new URL(url), { method: 'GET', ...init, timeoutMs: 30_000 }),
  );
  const signal = AbortSignal.timeout(120_000);
  const scope = 'registry:catalog:*';
  const out: UsageRow[] = [];
  let next: string | undefined = `${base}/berth/v1/usage?n=${PAGE}${prefix === undefined ? '' : `&prefix=${encodeURIComponent(prefix)}`}`;
  while (next !== undefined) {
    const url: string = next;
    const get = async (authorization: string | undefined): Promise<Response> =>
      fetch(url, { headers: authorization === undefined ? {} : { Authorization: authorization }, signal }).catch((err: unknown) => {
        throw new CommandError(`cannot reach the server at ${base} (${err instanceof Error ? err.message : String(err)})`);
      });
    let res = await get(await auth.known(scope, signal));
    const challenge = res.status === 401 ? parseChallenge(res.headers.get('www-authenticate')) : undefined;
    if (challenge !== undefined) {
      await res.body?.cancel();
      const header = await auth.answer(challenge, scope, signal);
      if (header === undefined) throw new CommandError(`the server at ${base} asks for credentials: set BERTH_USERNAME and BERTH_PASSWORD`);
      res = await get(header);
    }
    if (!res.ok) throw new CommandError(`the server at ${base} answered ${res.status}: ${await errorText(res)}`);
    const body = (await res.json()) as { repositories?: unknown };
    if (!Array.isArray(body.repositories)) throw new CommandError(`the server at ${base} answered no repositories`);
    for (const item of body.repositories) out.push(fromJson(item));
    next = nextPage(res.headers.get('link'), url);
  }
  return out;
}

/** The message of an OCI error body, or the body itself. */
async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const doc = JSON.parse(text) as { errors?: { message?: unknown }[] };
    const message = doc.errors?.[0]?.message;
    return typeof message === 'string' ? message : text;
  } catch {
    return text;
  }
}

/** The `rel="next"` target of a Link header, resolved against the page's URL. */
function nextPage(link: string | null, current: string): string | undefined {
  const m = link === null ? null : /<([^>]+)>;\s*rel="?next"?/.exec(link);
  return m?.[1] === undefined ? undefined : new URL(m[1], current).href;
}

/** One row of the table: a repository's figures (a name as the server gave it). */
export type UsageRow = Omit<RepoUsage, 'name'> & { readonly name: string };

function fromJson(item: unknown): UsageRow {
  const o = new Map(Object.entries(typeof item === 'object' && item !== null ? item : {}));
  const num = (k: string): number => {
    const v: unknown = o.get(k);
    return typeof v === 'number' ? v : 0;
  };
  const date = (k: string): Date | undefined => {
    const v: unknown = o.get(k);
    return typeof v === 'string' ? new Date(v) : undefined;
  };
  return {
    name: String(o.get('name')),
    logicalBytes: num('logicalBytes'),
    sharedBytes: num('sharedBytes'),
    exclusiveBytes: num('exclusiveBytes'),
    tags: num('tags'),
    manifests: num('manifests'),
    lastPush: date('lastPush'),
    lastPull: date('lastPull'),
  };
}

/** The table: largest exclusive bytes first, then largest logical bytes, then by name; a total line. */
export function usageTable(figures: readonly UsageRow[]): string {
  const sorted = [...figures].sort((a, b) => b.exclusiveBytes - a.exclusiveBytes || b.logicalBytes - a.logicalBytes || (a.name < b.name ? -1 : 1));
  const when = (d: Date | undefined): string => (d === undefined ? '-' : `${d.toISOString().slice(0, 19)}Z`);
  const rows = [
    ['REPOSITORY', 'EXCLUSIVE', 'SHARED', 'LOGICAL', 'TAGS', 'MANIFESTS', 'LAST PUSH', 'LAST PULL'],
    ...sorted.map((u) => [
      u.name, formatBytes(u.exclusiveBytes), formatBytes(u.sharedBytes), formatBytes(u.logicalBytes), String(u.tags), String(u.manifests),
      when(u.lastPush), when(u.lastPull),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const right = new Set([1, 2, 3, 4, 5]);
  const lines = rows.map((r) => r.map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
  const exclusive = figures.reduce((sum, u) => sum + u.exclusiveBytes, 0);
  lines.push(`${figures.length} repositories, ${formatBytes(exclusive)} exclusive in all`);
  return `${lines.join('\n')}\n`;
}
