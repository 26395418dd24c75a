/**
 * Part of the `s3` family (issue #18): listings on one bucket of the Ceph RGW, served by three Berth
 * replicas with the listing index in Redis (the client sends each request to the next one), and by docker-registry 2.8.2
 * on the very same bucket (which walks it).
 *
 * The bucket: one image pushed through Berth, then `listing-tags` tags of it in `bench/tags` and
 * `listing-repos` repositories of one tag each, written straight into the registry:2 layout with the
 * SDK (what a pushed tag leaves: `current/link` and `index/…/link`). The replicas start after that, so
 * their index is built by the rebuild walk (timed and reported), with a fresh Redis.
 * Timed: `GET /v2/_catalog?n=100` (the first page) and `GET /v2/bench/tags/tags/list` (every tag),
 * alternating servers per round. The answers are checked against each other first (same tags; same
 * first catalog page).
 *
 * The client is what a real one is: node:http over one keep-alive connection per server (Berth's
 * replicas one each), opened by the untimed checks and kept. Each GET is timed alone, from the request
 * to its body's last byte, and a sample is the median of `listing-gets` GETs one after another (to each
 * replica in turn for Berth), after `listing-warmup` untimed GETs of each path to each server (the
 * warm-up from s3-listing-2026-12-07-3.md on). Up to s3-listing-2026-12-07.md and s3-2026-12-07-9.md a
 * sample was the mean of 5 GETs through the global `fetch` (undici), which cost 1-3 ms a request more
 * here (`GET /v2/` 4.34 against 1.16 ms on Berth in s3-listing-2026-12-07-2.md); that measure is still
 * taken, one sample per server and round, and printed in the notes beside the new one. What the client
 * and loopback cost alone is in the notes too: `GET /v2/` (no storage, no Redis) from both servers, and
 * the same tag-list body sent from memory by a bare Node server in another process (the floor).
 * Berth only (registry:2 has no such API), from the index in Redis: usage figures (`GET
 * /berth/v1/usage?n=100`, and `bench/tags`' usage, whose tag count is a ZCARD), and three repository
 * deletes, each followed at once by a usage page that only a complete index answers (503 otherwise).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type CephServer, createBucket, testS3Client } from '../test/helpers/ceph-server.js';
import { startRedis } from '../test/helpers/redis.js';
import { uploadMonolithic } from './lib/client.js';
import { type Server, freePort, startServer, which } from './lib/proc.js';
import { type RunContext, opt, profileFlags } from './lib/family.js';
import { type Goal, type Row, alternate, formatMs, formatValue, median, timed } from './lib/report.js';
import { REPO_ROOT, type Target, TARGET_LABEL, configTail, registry2Binary, waitForV2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const BUCKET = 'bench-listing';
const ROOT = 'bench';
const TAGS_REPO = 'bench/tags';
const V2 = `${ROOT}/docker/registry/v2`;

const hundredfold: Goal = {
  label: '≥ 100×',
  judge: (berth, reg) => ({ met: reg / berth >= 100, miss: reg / berth >= 100 ? '' : `${(reg / berth).toFixed(1)}×` }),
};

function config(ceph: CephServer, port: number, extra: readonly string[], level: string): string {
  return [
    'version: 0.1', 'log:', `  level: ${level}`, '  accesslog:', '    disabled: true', 'storage:', '  s3:',
    `    region: ${ceph.region}`, `    regionendpoint: ${ceph.endpoint}`, `    bucket: ${BUCKET}`, `    accesskey: ${ceph.accessKey}`,
    `    secretkey: ${ceph.secretKey}`, `    rootdirectory: /${ROOT}`, '    secure: false',
    ...configTail(port, ['health:', '  storagedriver:', '    enabled: false', ...extra], 'berth-bench-listing-secret'),
  ].join('\n');
}

/** Writes `keys` (each holding `body`) into the bucket, 32 at a time. */
async function putAll(ceph: CephServer, keys: readonly string[], body: string): Promise<void> {
  const client = testS3Client(ceph);
  try {
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(keys.slice(i, i + 32).map((Key) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: body }))));
    }
  } finally {
    client.destroy();
  }
}

/** The tag folder keys of one tag pointing at `digest`. */
const tagKeys = (repo: string, tag: string, digest: string): string[] => [
  `${V2}/repositories/${repo}/_manifests/tags/${tag}/current/link`,
  `${V2}/repositories/${repo}/_manifests/tags/${tag}/index/sha256/${digest.slice(7)}/link`,
];

/** A repository of one tag, with a `_layers` link too (registry:2 2.8 lists only those in its catalog). */
const repoKeys = (repo: string, digest: string): string[] => [
  ...tagKeys(repo, 'latest', digest),
  `${V2}/repositories/${repo}/_layers/sha256/${digest.slice(7)}/link`,
];

/** Pushes one image to `base` (config blob and manifest); answers the manifest digest. */
async function pushOne(base: string, repo: string): Promise<string> {
  const config = await uploadMonolithic(base, repo, 18_400, 64);
  const manifest = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 64 }, layers: [],
  });
  const res = await fetch(`${base}/v2/${repo}/manifests/seed`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  const digest = res.headers.get('docker-content-digest');
  if (res.status !== 201 || digest === null) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
  return digest;
}

/** The earlier measure (up to s3-listing-2026-12-07.md), kept for the notes: GETs through the global fetch. */
const FETCH_REPEATS = 5;

/** A GET's status, body and time (ms, from the request to the body's last byte). */
interface Got {
  readonly status: number;
  readonly body: Buffer;
  readonly ms: number;
}

/**
 * The timing client: node:http over `agent` (keep-alive, one socket per server), so every GET after
 * the first to a server reuses its open connection, as a registry client's do.
 */
function getOver(agent: Agent, url: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - start }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** Times `gets` GETs of a path one after another, each to the next base (each must answer 200). */
export interface Timer {
  /** The median ms of `gets` GETs of `path`, each on the next of `bases`, and the last body. */
  median(bases: readonly string[], path: string): Promise<{ ms: number; body: string }>;
  /** The same GETs through the global fetch, FETCH_REPEATS of them: their mean ms (the earlier measure). */
  fetchMean(bases: readonly string[], path: string): Promise<number>;
}

export function timer(agent: Agent, gets: number): Timer {
  return {
    async median(bases, path) {
      const times: number[] = [];
      let body = '';
      for (let i = 0; i < gets; i++) {
        const url = `${bases[i % bases.length] ?? ''}${path}`;
        const got = await getOver(agent, url);
        body = got.body.toString('utf8');
        if (got.status !== 200) throw new Error(`GET ${url}: ${got.status} ${body.slice(0, 200)}`);
        times.push(got.ms);
      }
      return { ms: median(times), body };
    },
    async fetchMean(bases, path) {
      const { ms } = await timed(async () => {
        for (let i = 0; i < FETCH_REPEATS; i++) {
          const url = `${bases[i % bases.length] ?? ''}${path}`;
          const res = await fetch(url);
          const body = await res.text();
          if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
        }
      });
      return ms / FETCH_REPEATS;
    },
  };
}

/**
 * Starts a bare Node server in another process answering every GET with the bytes of `file` (JSON)
 * from memory: what the timing client and loopback cost for a body of that size, with no registry behind it.
 */
export async function startFloorServer(file: string): Promise<{ url: string; stop(): void }> {
  const script = "const b=require('node:fs').readFileSync(process.argv[1]);const s=require('node:http').createServer((q,r)=>{" +
    "r.writeHead(200,{'Content-Type':'application/json; charset=utf-8','Content-Length':b.length});r.end(b);});" +
    "s.keepAliveTimeout=120000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port));";
  const child = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the floor server exited (${String(code)})`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => void child.kill() };
}

/** Usage from the index in Redis through the replicas, and repository deletes that leave it complete (Berth only). */
async function usageOnReplicas(
  time: Timer, bases: readonly string[], rounds: number, nTags: number, ctx: RunContext,
): Promise<{ scenario: string; samples: number[]; note: string }[]> {
  const noApi = 'registry:2 has no usage API: Berth alone';
  const repeat = async (path: string): Promise<number[]> => {
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) samples.push((await time.median(bases, path)).ms);
    return samples;
  };
  const page = await repeat('/berth/v1/usage?n=100');
  const one = await repeat(`/berth/v1/repositories/${TAGS_REPO}/usage`);
  const deletes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const base = bases[i % bases.length] ?? '';
    const { ms } = await timed(async () => {
      const res = await fetch(`${base}/berth/v1/repositories/bench/cat-${String(i).padStart(4, '0')}`, { method: 'DELETE' });
      if (res.status !== 202) throw new Error(`repository delete: ${res.status} ${await res.text()}`);
    });
    // Only a complete index answers usage: a delete that sent it back to a rebuild fails the run here.
    const after = await fetch(`${bases[(i + 1) % bases.length] ?? ''}/berth/v1/usage?n=1`);
    if (after.status !== 200) throw new Error(`usage right after a repository delete: ${after.status} ${await after.text()}`);
    deletes.push(ms);
  }
  ctx.log(`  usage first page ${formatMs(median(page))}, ${TAGS_REPO} usage ${formatMs(median(one))}, repository delete ${formatMs(median(deletes))}`);
  return [
    { scenario: 'usage, first page (n=100)', samples: page, note: `${noApi}; to each replica in turn` },
    { scenario: `usage of ${TAGS_REPO} (${nTags + 1} tags counted)`, samples: one, note: noApi },
    { scenario: 'repository delete (one tag), index complete at once', samples: deletes, note: `${noApi}; the DELETE, then a usage page answered by the index from another replica` },
  ];
}

/** What the listing rounds measured, per server: the rows' samples and the notes' comparisons. */
interface Measured {
  readonly catalog: Record<Target, number[]>;
  readonly tags: Record<Target, number[]>;
  /** `GET /v2/`: the client's and the server's least cost. */
  readonly ping: Record<Target, number[]>;
  /** The same three through fetch, mean of FETCH_REPEATS (the earlier measure). */
  readonly fetched: { readonly catalog: Record<Target, number[]>; readonly tags: Record<Target, number[]>; readonly ping: Record<Target, number[]> };
  /** The tag-list body from a bare Node server, the same client: the floor. */
  readonly floor: number[];
}

/** The timed rounds (after the answers were checked): each measure alternating servers, round by round. */
async function measureListings(
  time: Timer, url: Record<Target, readonly string[]>, paths: { catalog: string; tags: string }, floorUrl: string, rounds: number, ctx: RunContext,
): Promise<Measured> {
  const measure = (what: string, path: string): Promise<Record<Target, number[]>> => alternate(rounds, TARGETS, async (t) => {
    const { ms } = await time.median(url[t], path);
    ctx.log(`  ${what}, ${TARGET_LABEL[t]}: ${formatMs(ms)}`);
    return ms;
  });
  const viaFetch = (path: string): Promise<Record<Target, number[]>> => alternate(rounds, TARGETS, (t) => time.fetchMean(url[t], path));
  const catalog = await measure('catalog first page', paths.catalog);
  const tags = await measure('tag list', paths.tags);
  const ping = await measure('GET /v2/', '/v2/');
  const fetched = { catalog: await viaFetch(paths.catalog), tags: await viaFetch(paths.tags), ping: await viaFetch('/v2/') };
  const floor: number[] = [];
  for (let r = 0; r < rounds; r++) floor.push((await time.median([floorUrl], '/')).ms);
  return { catalog, tags, ping, fetched, floor };
}

/** "Berth x ms, registry:2 y ms (z×)" of two sample sets' medians. */
function pair(s: Record<Target, number[]>): string {
  const [b, r] = [median(s.berth), median(s.registry2)];
  return `Berth ${formatValue(b, 'ms')}, registry:2 ${formatValue(r, 'ms')} (${(r / b).toFixed(1)}×)`;
}

/** Runs the listing scenarios; answers their rows and notes. */
export async function listingOnS3(ceph: CephServer, work: string, o: Readonly<Record<string, number>>, ctx: RunContext): Promise<{ rows: Row[]; notes: string[] }> {
  const nTags = opt(o, 'listing-tags');
  const nRepos = opt(o, 'listing-repos');
  const gets = opt(o, 'listing-gets');
  const servers: Server[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const time = timer(agent, gets);
  let floorServer: { url: string; stop(): void } | undefined;
  const redis = await startRedis();
  try {
    await createBucket(ceph, BUCKET);
    const start = async (name: string, extra: readonly string[], flags: readonly string[] = []): Promise<Server> => {
      const port = await freePort();
      const file = join(work, `${name}.yml`);
      await writeFile(file, config(ceph, port, extra, name === 'registry2' ? 'error' : 'info'));
      const url = `http://127.0.0.1:${port}`;
      const server = name === 'registry2'
        ? startServer(which('env') ?? '/usr/bin/env', ['-u', 'AWS_CA_BUNDLE', registry2Binary(), 'serve', file], url)
        : startServer(ctx.berth.cmd, [...flags, ...ctx.berth.args, 'serve', file], url, REPO_ROOT);
      servers.push(server);
      await waitForV2(server, 120_000);
      return server;
    };
    const seeder = await start('registry2', []);
    const digest = await pushOne(seeder.url, TAGS_REPO);
    ctx.log(`s3 listing: writing ${nTags} tags and ${nRepos} repositories into ${BUCKET} …`);
    const { ms: seedMs } = await timed(async () => {
      const tags = Array.from({ length: nTags }, (_, i) => `t${String(i).padStart(5, '0')}`);
      await putAll(ceph, tags.flatMap((t) => tagKeys(TAGS_REPO, t, digest)), digest);
      await putAll(ceph, Array.from({ length: nRepos }, (_, i) => repoKeys(`bench/cat-${String(i).padStart(4, '0')}`, digest)).flat(), digest);
    });
    const berthStart = performance.now();
    const redisSection = ['redis:', `  addr: ${redis.addr}`];
    const replicas = [];
    // With --cpu-prof the first replica is profiled (berth-s3-listing.cpuprofile).
    for (let i = 0; i < 3; i++) replicas.push(await start(`berth-${i}`, redisSection, i === 0 ? profileFlags(ctx, 's3-listing') : []));
    while ((await redis.command('HGET berth:idx:meta state')) !== '$8\r\ncomplete\r\n') {
      if (performance.now() - berthStart > 600_000) throw new Error('the index in redis was not complete after 10 minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
    const indexMs = performance.now() - berthStart;
    // Berth: each request to the next replica in turn (as a round-robin balancer would send them).
    const url = { berth: replicas.map((r) => r.url), registry2: [seeder.url] } satisfies Record<Target, string[]>;
    const paths = { tags: `/v2/${TAGS_REPO}/tags/list`, catalog: '/v2/_catalog?n=100' };
    // Same answers first (registry:2 2.8 lists every tag whatever the order of its walk: compare sorted).
    // These untimed GETs also open the keep-alive connections the timed ones reuse.
    const tagsBody = { berth: '', registry2: '' };
    for (const t of TARGETS) tagsBody[t] = (await time.median(url[t], paths.tags)).body;
    const [bt, rt] = TARGETS.map((t) => (JSON.parse(tagsBody[t]) as { tags: string[] }).tags.sort());
    if (bt?.length !== nTags + 1 || JSON.stringify(bt) !== JSON.stringify(rt)) throw new Error(`tag lists differ: Berth ${bt?.length}, registry:2 ${rt?.length}`);
    const [bc, rc] = [(await time.median(url.berth, paths.catalog)).body, (await time.median(url.registry2, paths.catalog)).body];
    if (JSON.stringify(JSON.parse(bc)) !== JSON.stringify(JSON.parse(rc))) throw new Error(`first catalog pages differ: ${bc.slice(0, 200)} / ${rc.slice(0, 200)}`);
    const floorFile = join(work, 'floor-tags.json');
    await writeFile(floorFile, tagsBody.berth);
    const floor = await startFloorServer(floorFile);
    floorServer = floor;
    await time.median([floor.url], '/');
    // The same untimed warm-up for both: `listing-warmup` GETs of each timed path (Berth's JIT-compiled
    // code is cold for the first few hundred requests; registry:2's is compiled ahead).
    const warmup = opt(o, 'listing-warmup');
    const warm = timer(agent, warmup);
    const { ms: warmMs } = await timed(async () => {
      for (const t of TARGETS) for (const path of [paths.catalog, paths.tags, '/v2/']) await warm.median(url[t], path);
      await warm.median([floor.url], '/');
    });
    const rounds = opt(o, 'rounds');
    const m = await measureListings(time, url, paths, floor.url, rounds, ctx);
    const usage = await usageOnReplicas(time, url.berth, rounds, nTags, ctx);
    ctx.log(`  catalog first page: ${pair(m.catalog)}; tags: ${pair(m.tags)}; GET /v2/: ${pair(m.ping)}; floor (tag list from memory) ${formatMs(median(m.floor))}`);
    if (ctx.cpuProfDir !== undefined) await profileLoop(url.berth[0] ?? '', paths, ctx);
    const rows: Row[] = [
      { scenario: `S3 (Ceph RGW), 3 replicas + Redis index: catalog first page (n=100) of ${nRepos + 1} repositories`, unit: 'ms', samples: m.catalog, goal: hundredfold },
      { scenario: `S3 (Ceph RGW), 3 replicas + Redis index: ${nTags + 1}-tag list`, unit: 'ms', samples: m.tags, goal: hundredfold },
      ...usage.map((u) => ({ scenario: `S3 (Ceph RGW), 3 replicas + Redis index: ${u.scenario}`, unit: 'ms' as const, samples: { berth: u.samples, registry2: [] }, note: u.note, noRatio: true })),
    ];
    const notes = [
      `listing: one bucket for both; ${nTags} tags (+1 pushed) in ${TAGS_REPO} and ${nRepos} repositories of one tag written with the SDK in ${formatMs(seedMs)}; ` +
        `Berth: 3 replicas with one Redis, requests sent to each in turn, index rebuilt from the bucket at start in ${formatMs(indexMs)} (start included); registry:2 walks the bucket`,
      `listing client: node:http, one keep-alive connection per server (each replica its own) opened by the untimed checks and reused; each GET timed alone (request to last body byte); a sample is the median of ${gets} GETs one after another; before the rounds, ${warmup} untimed GETs of each timed path to each server (${formatMs(warmMs)} in all)`,
      'listing answers checked first: the same tags (sorted) and the same first catalog page from both',
      `baseline, GET /v2/ (no storage, no Redis), the same client: ${pair(m.ping)}`,
      `floor: Berth's ${nTags + 1}-tag body (${tagsBody.berth.length} bytes) from a bare Node server in another process sending it from memory, the same client: ${formatValue(median(m.floor), 'ms')}`,
      `the earlier measure (up to s3-listing-2026-12-07.md and s3-2026-12-07-9.md; one sample per server and round, the mean of ${FETCH_REPEATS} GETs through the global fetch): ` +
        `catalog first page ${pair(m.fetched.catalog)}; tag list ${pair(m.fetched.tags)}; GET /v2/ ${pair(m.fetched.ping)}`,
    ];
    return { rows, notes };
  } finally {
    floorServer?.stop();
    agent.destroy();
    const grace = ctx.cpuProfDir !== undefined ? 60_000 : 5_000;
    for (const s of servers) await s.stop(grace).catch(() => undefined);
    await redis.stop();
  }
}

/** How many GETs of each listing the profiled replica gets after the timed rounds (with --cpu-prof). */
const PROFILE_GETS = 3000;

/** With --cpu-prof: a loop of listing GETs on the profiled replica alone, so its profile shows them. */
async function profileLoop(base: string, paths: { catalog: string; tags: string }, ctx: RunContext): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const loop = timer(agent, PROFILE_GETS);
  const tags = await loop.median([base], paths.tags);
  const catalog = await loop.median([base], paths.catalog);
  agent.destroy();
  ctx.log(`  profiled replica alone, ${PROFILE_GETS} GETs each: tag list median ${formatMs(tags.ms)}, catalog first page ${formatMs(catalog.ms)}`);
}
