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
 * each sample the mean of 5 requests one after another, alternating servers per round. The answers are
 * checked against each other first (same tags; same first catalog page).
 * Berth only (registry:2 has no such API), from the index in Redis: usage figures (`GET
 * /berth/v1/usage?n=100`, and `bench/tags`' usage, whose tag count is a ZCARD), and three repository
 * deletes, each followed at once by a usage page that only a complete index answers (503 otherwise).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type CephServer, createBucket, testS3Client } from '../test/helpers/ceph-server.js';
import { startRedis } from '../test/helpers/redis.js';
import { uploadMonolithic } from './lib/client.js';
import { type RunContext, opt } from './lib/family.js';
import { type Server, freePort, startServer, which } from './lib/proc.js';
import { type Goal, type Row, alternate, formatMs, formatValue, median, timed } from './lib/report.js';
import { REPO_ROOT, type Target, TARGET_LABEL, configTail, registry2Binary, waitForV2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const BUCKET = 'bench-listing';
const ROOT = 'bench';
const TAGS_REPO = 'bench/tags';
const REPEATS = 5;
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

/** Mean ms of REPEATS GETs of `path` (each must answer 200), each on the next of `bases`; answers it and the last body. */
async function timeGets(bases: readonly string[], path: string): Promise<{ ms: number; body: string }> {
  let body = '';
  const { ms } = await timed(async () => {
    for (let i = 0; i < REPEATS; i++) {
      const url = `${bases[i % bases.length] ?? ''}${path}`;
      const res = await fetch(url);
      body = await res.text();
      if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
    }
  });
  return { ms: ms / REPEATS, body };
}

/** Usage from the index in Redis through the replicas, and repository deletes that leave it complete (Berth only). */
async function usageOnReplicas(
  bases: readonly string[], rounds: number, nTags: number, ctx: RunContext,
): Promise<{ scenario: string; samples: number[]; note: string }[]> {
  const noApi = 'registry:2 has no usage API: Berth alone';
  const repeat = async (path: string): Promise<number[]> => {
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) samples.push((await timeGets(bases, path)).ms);
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
    { scenario: 'usage, first page (n=100)', samples: page, note: `${noApi}; each sample the mean of ${REPEATS} GETs, to each replica in turn` },
    { scenario: `usage of ${TAGS_REPO} (${nTags + 1} tags counted)`, samples: one, note: noApi },
    { scenario: 'repository delete (one tag), index complete at once', samples: deletes, note: `${noApi}; the DELETE, then a usage page answered by the index from another replica` },
  ];
}

/** Runs the listing scenarios; answers their rows and notes. */
export async function listingOnS3(ceph: CephServer, work: string, o: Readonly<Record<string, number>>, ctx: RunContext): Promise<{ rows: Row[]; notes: string[] }> {
  const nTags = opt(o, 'listing-tags');
  const nRepos = opt(o, 'listing-repos');
  const servers: Server[] = [];
  const redis = await startRedis();
  try {
    await createBucket(ceph, BUCKET);
    const start = async (name: string, extra: readonly string[]): Promise<Server> => {
      const port = await freePort();
      const file = join(work, `${name}.yml`);
      await writeFile(file, config(ceph, port, extra, name === 'registry2' ? 'error' : 'info'));
      const url = `http://127.0.0.1:${port}`;
      const server = name === 'registry2'
        ? startServer(which('env') ?? '/usr/bin/env', ['-u', 'AWS_CA_BUNDLE', registry2Binary(), 'serve', file], url)
        : startServer(ctx.berth.cmd, [...ctx.berth.args, 'serve', file], url, REPO_ROOT);
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
    for (let i = 0; i < 3; i++) replicas.push(await start(`berth-${i}`, redisSection));
    {
      while ((await redis.command('HGET berth:idx:meta state')) !== '$8\r\ncomplete\r\n') {
        if (performance.now() - berthStart > 600_000) throw new Error('the index in redis was not complete after 10 minutes');
        await new Promise((r) => setTimeout(r, 200));
      }
      const indexMs = performance.now() - berthStart;
      // Berth: each request to the next replica in turn (as a round-robin balancer would send them).
      const url = { berth: replicas.map((r) => r.url), registry2: [seeder.url] } satisfies Record<Target, string[]>;
      const tagsPath = `/v2/${TAGS_REPO}/tags/list`;
      const catalogPath = '/v2/_catalog?n=100';
      // Same answers first (registry:2 2.8 lists every tag whatever the order of its walk: compare sorted).
      const tagsOf = async (t: Target): Promise<string[]> => ((JSON.parse((await timeGets(url[t], tagsPath)).body) as { tags: string[] }).tags).sort();
      const [bt, rt] = [await tagsOf('berth'), await tagsOf('registry2')];
      if (bt.length !== nTags + 1 || JSON.stringify(bt) !== JSON.stringify(rt)) throw new Error(`tag lists differ: Berth ${bt.length}, registry:2 ${rt.length}`);
      const [bc, rc] = [(await timeGets(url.berth, catalogPath)).body, (await timeGets(url.registry2, catalogPath)).body];
      if (JSON.stringify(JSON.parse(bc)) !== JSON.stringify(JSON.parse(rc))) throw new Error(`first catalog pages differ: ${bc.slice(0, 200)} / ${rc.slice(0, 200)}`);
      const rounds = opt(o, 'rounds');
      const measure = (what: string, path: string) => alternate(rounds, TARGETS, async (t) => {
        const { ms } = await timeGets(url[t], path);
        ctx.log(`  ${what}, ${TARGET_LABEL[t]}: ${formatMs(ms)}`);
        return ms;
      });
      const catalog = await measure('catalog first page', catalogPath);
      const tags = await measure(`${nTags}-tag list`, tagsPath);
      const usage = await usageOnReplicas(url.berth, rounds, nTags, ctx);
      ctx.log(`  catalog first page: Berth ${formatValue(median(catalog.berth), 'ms')}, registry:2 ${formatValue(median(catalog.registry2), 'ms')}; ` +
        `tags: Berth ${formatValue(median(tags.berth), 'ms')}, registry:2 ${formatValue(median(tags.registry2), 'ms')}`);
      // What any request costs on this path (Berth from source, machine load), for reading the rows.
      const ping = await alternate(rounds, TARGETS, async (t) => (await timeGets(url[t], '/v2/')).ms);
      const rows: Row[] = [
        { scenario: `S3 (Ceph RGW), 3 replicas + Redis index: catalog first page (n=100) of ${nRepos + 1} repositories`, unit: 'ms', samples: catalog, goal: hundredfold },
        { scenario: `S3 (Ceph RGW), 3 replicas + Redis index: ${nTags + 1}-tag list`, unit: 'ms', samples: tags, goal: hundredfold },
        ...usage.map((u) => ({ scenario: `S3 (Ceph RGW), 3 replicas + Redis index: ${u.scenario}`, unit: 'ms' as const, samples: { berth: u.samples, registry2: [] }, note: u.note, noRatio: true })),
      ];
      const notes = [
        `listing: one bucket for both; ${nTags} tags (+1 pushed) in ${TAGS_REPO} and ${nRepos} repositories of one tag written with the SDK in ${formatMs(seedMs)}; ` +
          `Berth: 3 replicas with one Redis, requests sent to each in turn, index rebuilt from the bucket at start in ${formatMs(indexMs)} (start included); registry:2 walks the bucket; each sample is the mean of ${REPEATS} GETs`,
        'listing answers checked first: the same tags (sorted) and the same first catalog page from both',
        `baseline, GET /v2/ (no storage, no Redis): Berth ${formatValue(median(ping.berth), 'ms')}, registry:2 ${formatValue(median(ping.registry2), 'ms')}`,
      ];
      return { rows, notes };
    }
  } finally {
    for (const s of servers) await s.stop(5_000).catch(() => undefined);
    await redis.stop();
  }
}
