/**
 * Hand-run probe (not a family; issue #18): where a listing GET's time goes with replicas. Three Berth
 * replicas over one filesystem root with the index in one Redis (the listing path is the same as on
 * S3: once the index is complete, a tag list or catalog page is one script in Redis), the `listing`
 * family's tree (`tags-10k`: 10,000 tags; PROBE_REPOS repositories). Per round, alternating the order,
 * the s3 family's client (s3-listing.ts: node:http over one kept keep-alive connection per server, each
 * GET timed alone, the median of PROBE_GETS) times:
 *   rr3   each GET to the next replica in turn (what the s3 bench does),
 *   one   every GET to replica 0,
 *   floor the same body from a bare Node server in another process,
 * for the tag list, the catalog's first page and `GET /v2/`.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-listing-replicas.ts path/to/dist/main.js [more/dist/main.js …]
 * Several builds: each gets its own three replicas on a copy of the tree and one Redis each, all
 * running together, the builds taking turns within each round. PROBE_ROUNDS (5), PROBE_GETS (200),
 * PROBE_REPOS (200), PROBE_PROF=<dir>: replica 0 of each build runs with --cpu-prof there.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:http';
import { startRedis, type TestRedis } from '../test/helpers/redis.js';
import { generate } from './listing.js';
import { type Server, freePort, startServer } from './lib/proc.js';
import { REPO_ROOT, configTail, waitForV2 } from './lib/servers.js';
import { startFloorServer, timer } from './s3-listing.js';

const rounds = Number(process.env['PROBE_ROUNDS'] ?? 5);
const gets = Number(process.env['PROBE_GETS'] ?? 200);
const repos = Number(process.env['PROBE_REPOS'] ?? 200);
const prof = process.env['PROBE_PROF'];
const mains = process.argv.slice(2);
if (mains.length === 0) throw new Error('usage: probe-listing-replicas.ts path/to/dist/main.js …');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface Build {
  readonly name: string;
  readonly replicas: Server[];
  readonly redis: TestRedis;
}

const work = await mkdtemp(join(tmpdir(), 'berth-probe-listing-'));
const servers: Server[] = [];
const redises: TestRedis[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const time = timer(agent, gets);
let floor: { url: string; stop(): void } | undefined;
try {
  const tree = join(work, 'tree');
  await generate(tree, { repos, tags: 10_000 });
  const builds: Build[] = [];
  for (const [b, main] of mains.entries()) {
    const root = join(work, `root-${b}`);
    await cp(tree, root, { recursive: true });
    const redis = await startRedis();
    redises.push(redis);
    const replicas: Server[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const file = join(work, `b${b}-r${i}.yml`);
      await writeFile(file, ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${root}`,
        ...configTail(port, ['redis:', `  addr: ${redis.addr}`])].join('\n'));
      const flags = prof !== undefined && i === 0 ? ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `berth-listing-b${b}.cpuprofile`] : [];
      const server = startServer(process.execPath, [...flags, main, 'serve', file], `http://127.0.0.1:${port}`, REPO_ROOT);
      servers.push(server);
      replicas.push(server);
      await waitForV2(server, 60_000);
    }
    while ((await redis.command('HGET berth:idx:meta state')) !== '$8\r\ncomplete\r\n') await new Promise((r) => setTimeout(r, 100));
    builds.push({ name: `${b}:${main}`, replicas, redis });
  }
  const paths = { tags: '/v2/tags-10k/tags/list', catalog: '/v2/_catalog?n=100', ping: '/v2/' };
  const first = builds[0];
  if (first === undefined) throw new Error('no build');
  const body = (await time.median([first.replicas[0]?.url ?? ''], paths.tags)).body;
  await writeFile(join(work, 'floor.json'), body);
  floor = await startFloorServer(join(work, 'floor.json'));
  const samples = new Map<string, number[]>();
  const add = (key: string, ms: number): void => void samples.set(key, [...(samples.get(key) ?? []), ms]);
  for (const b of builds) for (const r of b.replicas) for (const p of Object.values(paths)) await time.median([r.url], p); // open every connection
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    for (const b of order) {
      const urls = b.replicas.map((r) => r.url);
      for (const [what, path] of Object.entries(paths)) {
        const modes: [string, string[]][] = [['rr3', urls], ['one', urls.slice(0, 1)]];
        for (const [mode, bases] of round % 2 === 0 ? modes : [...modes].reverse()) add(`${b.name} ${what} ${mode}`, (await time.median(bases, path)).ms);
      }
    }
    add('floor tags', (await time.median([floor.url], '/')).ms);
    process.stderr.write(`round ${round + 1}/${rounds} done\n`);
  }
  for (const [key, xs] of samples) console.log(`${key.padEnd(60)} median ${median(xs).toFixed(3)} ms  [${xs.map((x) => x.toFixed(3)).join(', ')}]`);
} finally {
  floor?.stop();
  agent.destroy();
  for (const s of servers) await s.stop(prof !== undefined ? 60_000 : 5_000).catch(() => undefined);
  for (const r of redises) await r.stop();
  await rm(work, { recursive: true, force: true });
}
