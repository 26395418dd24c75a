/**
 * Scenario family `listing` (issue #5's benchmark, the first family of #8's suite): catalog and tag
 * listing, and the offline collector, Berth against docker-registry 2.8 on copies of one tree.
 *
 * 1. A registry:2 tree is generated with Berth's filesystem driver directly (no HTTP): `repos`
 *    repositories `repo-00000…` each holding one image (a shared tiny layer, a per-repository config, so
 *    each manifest is distinct) tagged `latest`, and `tags-10k` holding one image under `tags` tags
 *    `t00000…`. Every file is what registry:2 writes on a push: blob `data`, `_layers` links for config
 *    and layer, the manifest's revision link, and each tag's `current/link` and `index/<alg>/<hex>/link`.
 * 2. The tree is copied (`cp -a`) once per server; Berth (its index rebuilt from storage first) and
 *    docker-registry serve their copies on 127.0.0.1.
 * 3. Each listing scenario runs alternately against both, `rounds` times, after one untimed warm-up
 *    that also checks what came back. A scenario of one URL is timed by wrk over one connection for
 *    `seconds` (its median latency is the sample): a Node client costs 3 to 4 ms a request here (fetch
 *    took 4.6 ms for registry:2's 21-repository catalog, which wrk times at under 1 ms), which would
 *    hide the server's own time. The catalog walk follows Link headers, so a Node client (node:http
 *    over a keep-alive socket, lib/client.ts) times the whole walk.
 * 4. `deletes` manifests are deleted by digest through each server's API; Berth's online collector
 *    runs `gcRounds` dry runs (`POST /debug/gc?dryrun=true` on its debug listener: its mark, with the
 *    link times the grace period needs, and the sweep's listing), reported for Berth alone; the servers
 *    stop; then each side's offline `garbage-collect --dry-run` runs on its own copy, alternately,
 *    `gcRounds` times, twice: as it runs on a tree it has looked through before (no process that wrote
 *    to it died since: no look for crash leftovers, gc/leftovers.ts), and with Berth's
 *    `berth/leftovers-scanned` removed before each of its runs, so that it looks through the whole tree
 *    (its first run on a tree copied in, or after a writer was killed). Goal (issue #19): the common
 *    dry run ≥ 2× registry:2's; the whole-tree variant has none.
 *
 * BERTH_BENCH_LISTING_TREE=<dir> keeps the generated tree in <dir> (generated when empty, reused when
 * not; it takes minutes): the copies and deletes are made from it, never in it.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDriver } from '../src/storage/driver/factory.js';
import type { StorageDriver } from '../src/storage/driver/driver.js';
import { type Digest, digestOf } from '../src/storage/digest.js';
import { writeLink } from '../src/storage/blobs/links.js';
import { paths } from '../src/storage/paths.js';
import { type RepoName, type Tag, parseRepoName, parseTag } from '../src/storage/reference.js';
import { send } from './lib/client.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { runWrk } from './lib/load.js';
import { freePort, makeTempDir, removeTempDir, run } from './lib/proc.js';
import { type FamilyReport, type Goal, type Row, alternate, atLeastFor, formatMs, median, timed } from './lib/report.js';
import {
  REPO_ROOT,
  type Running,
  type Target,
  berthConfig,
  registry2Binary,
  registry2Config,
  startBerth,
  startRegistry2,
} from './lib/servers.js';

export interface ListingOptions {
  readonly repos: number;
  readonly tags: number;
  readonly rounds: number;
  /** How long wrk times a one-URL scenario per sample. */
  readonly seconds: number;
  readonly gcRounds: number;
  readonly deletes: number;
}

export const LISTING_DEFAULTS: ListingOptions = { repos: 10_000, tags: 10_000, rounds: 5, seconds: 3, gcRounds: 3, deletes: 1_000 };

const TAG_REPO = 'tags-10k';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const REQUEST_TIMEOUT_MS = 120_000;
const GC_TIMEOUT_MS = 600_000;
const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];

const pad5 = (i: number): string => String(i).padStart(5, '0');
const repoName = (i: number): string => `repo-${pad5(i)}`;
const tagName = (i: number): string => `t${pad5(i)}`;

/** Runs `task(i)` for i in [0, n) with at most `limit` running at once. */
async function pool(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

interface Image {
  readonly config: Digest;
  readonly layer: Digest;
  readonly manifest: Digest;
}

/** Writes one image into `repo` as a registry:2 push leaves it, tagged with each of `tags`. */
async function writeImage(driver: StorageDriver, repo: RepoName, layer: { digest: Digest; size: number }, tags: readonly Tag[], concurrency: number): Promise<Image> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { repo } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = digestOf(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
    }),
  );
  const manifestDigest = digestOf(manifest);
  await Promise.all([
    driver.putContent(paths.blobData(configDigest), config),
    driver.putContent(paths.blobData(manifestDigest), manifest),
    writeLink(driver, paths.layerLink(repo, configDigest), configDigest),
    writeLink(driver, paths.layerLink(repo, layer.digest), layer.digest),
    writeLink(driver, paths.revisionLink(repo, manifestDigest), manifestDigest),
  ]);
  await pool(tags.length, concurrency, async (i) => {
    const tag = tags[i] as Tag;
    await writeLink(driver, paths.tagCurrentLink(repo, tag), manifestDigest);
    await writeLink(driver, paths.tagIndexLink(repo, tag, manifestDigest), manifestDigest);
  });
  return { config: configDigest, layer: layer.digest, manifest: manifestDigest };
}

/** Generates the tree under `root` (exported for profiling the collector and for the web UI's bench); answers each `repo-*` repository's manifest digest, in order. */
export async function generate(root: string, o: Pick<ListingOptions, 'repos' | 'tags'>): Promise<Digest[]> {
  const driver = createDriver({ kind: 'filesystem', root });
  const layerBytes = Buffer.from('berth bench layer\n');
  const layer = { digest: digestOf(layerBytes), size: layerBytes.length };
  await driver.putContent(paths.blobData(layer.digest), layerBytes);
  const latest = [parseTag('latest')];
  const manifests: Digest[] = new Array<Digest>(o.repos);
  await pool(o.repos, 32, async (i) => {
    manifests[i] = (await writeImage(driver, parseRepoName(repoName(i)), layer, latest, 1)).manifest;
  });
  const tags = Array.from({ length: o.tags }, (_, i) => parseTag(tagName(i)));
  await writeImage(driver, parseRepoName(TAG_REPO), layer, tags, 32);
  return manifests;
}

interface Got {
  readonly status: number;
  readonly body: string;
  readonly link: string | null;
}

async function get(url: string): Promise<Got> {
  const res = await send(url, 'GET', {}, undefined, REQUEST_TIMEOUT_MS);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${res.body.slice(0, 500)}`);
  const link = res.headers.link;
  return { status: res.status, body: res.body, link: typeof link === 'string' ? link : null };
}

/** The next page's URL from a `Link: <…>; rel="next"` header, resolved against `base`. */
function nextLink(link: string | null, base: string): string | undefined {
  if (link === null) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  return m?.[1] === undefined ? undefined : new URL(m[1], base).toString();
}

/** Walks the catalog from its first page (each server's default page size) following Link headers. */
async function catalogWalk(base: string): Promise<{ repos: number; pages: number }> {
  let url: string | undefined = `${base}/v2/_catalog`;
  let repos = 0;
  let pages = 0;
  while (url !== undefined) {
    if (++pages > 100_000) throw new Error('catalog walk: too many pages');
    const got = await get(url);
    repos += (JSON.parse(got.body) as { repositories: string[] }).repositories.length;
    url = nextLink(got.link, base);
  }
  return { repos, pages };
}

interface ListingScenario {
  readonly name: string;
  readonly note?: string;
  readonly goal?: Goal;
  /** The scenario's one URL under the base, when it has one: wrk times it (file comment, step 3). */
  readonly path?: string;
  /** One operation: the warm-up and check, and the timed sample when there is no `path`; answers a short description of what came back, for the sanity notes. */
  run(base: string): Promise<string>;
}

function listingScenarios(o: ListingOptions): ListingScenario[] {
  const last = tagName(Math.floor(o.tags / 2));
  const firstPage = '/v2/_catalog?n=100';
  const allTags = `/v2/${TAG_REPO}/tags/list`;
  const tagPage = `${allTags}?n=100&last=${last}`;
  const count = (body: string, key: 'repositories' | 'tags'): number => ((JSON.parse(body) as Record<string, string[] | null>)[key] ?? []).length;
  return [
    {
      name: 'catalog, first page (n=100)',
      goal: atLeastFor('ms', 10),
      path: firstPage,
      run: async (base) => {
        const got = await get(base + firstPage);
        return `${count(got.body, 'repositories')} repositories${got.link !== null ? ', Link to next' : ''}`;
      },
    },
    {
      name: `catalog, full walk (${o.repos + 1} repositories)`,
      note: "from /v2/_catalog with no n, following Link headers at each server's default page size (Berth 1000, registry:2 2.8 100; the page counts are under Context)",
      goal: atLeastFor('ms', 10),
      run: async (base) => {
        const w = await catalogWalk(base);
        return `${w.repos} repositories in ${w.pages} pages`;
      },
    },
    {
      name: `tags list, ${o.tags} tags`,
      goal: atLeastFor('ms', 10),
      path: allTags,
      run: async (base) => `${count((await get(base + allTags)).body, 'tags')} tags`,
    },
    {
      name: `tags page (n=100&last=${last})`,
      note: 'registry:2 2.8 ignores n and last on tag lists and answers all tags; Berth answers the 100 after `last`',
      path: tagPage,
      run: async (base) => {
        const got = await get(base + tagPage);
        return `${count(got.body, 'tags')} tags${got.link !== null ? ', Link to next' : ''}`;
      },
    },
  ];
}

/** One timed sample of `s` against `base`, in ms: wrk's median latency over one connection, or one run. */
async function sample(s: ListingScenario, base: string, seconds: number, dir: string): Promise<number> {
  if (s.path === undefined) return (await timed(() => s.run(base))).ms;
  const r = await runWrk({ url: base + s.path, method: 'GET', connections: 1, threads: 1, seconds }, dir);
  if (r.errors > 0 || r.requests === 0) throw new Error(`${s.name}: ${r.errors} errors in ${r.requests} requests`);
  return r.p50Ms;
}

/** DELETEs `digests[i]` from `repo-i` for each i, 8 at a time; answers the wall time. */
async function deleteManifests(base: string, digests: readonly Digest[]): Promise<number> {
  const { ms } = await timed(() =>
    pool(digests.length, 8, async (i) => {
      const url = `${base}/v2/${repoName(i)}/manifests/${digests[i] as string}`;
      const res = await fetch(url, { method: 'DELETE', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = await res.text();
      if (res.status !== 202) throw new Error(`DELETE ${url}: ${res.status} ${body.slice(0, 300)}`);
    }),
  );
  return ms;
}

const GC_SUMMARY = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/;

export async function runListing(o: ListingOptions, ctx: RunContext): Promise<FamilyReport> {
  const log = ctx.log;
  const work = await makeTempDir('berth-bench-listing-');
  const running: Running[] = [];
  try {
    const kept = process.env['BERTH_BENCH_LISTING_TREE'];
    const source = kept ?? join(work, 'source');
    const roots: Record<Target, string> = { berth: join(work, 'berth'), registry2: join(work, 'registry2') };
    const reused = kept !== undefined && (await readdir(kept).catch(() => [])).length > 0;
    log(reused ? `reusing the tree in ${source} …` : `generating ${o.repos} repositories and one of ${o.tags} tags under ${source} …`);
    const gen = await timed(() => (reused ? manifestsOf(source, o.repos) : generate(source, o)));
    const manifests = gen.value;
    log(`  ${reused ? 'read' : 'generated'} in ${formatMs(gen.ms)}; copying (cp -a) for each server …`);
    for (const t of TARGETS) await run('cp', ['-a', source, roots[t]], { timeoutMs: 600_000 });
    if (kept === undefined) await removeTempDir(source).catch(() => undefined);
    const notes: string[] = [
      `tree: ${o.repos} repositories \`repo-NNNNN\` with one OCI image each (shared layer, own config, tag \`latest\`) and \`${TAG_REPO}\` with one image under ${o.tags} tags; ${reused ? `generated earlier with Berth's filesystem driver (BERTH_BENCH_LISTING_TREE)` : `generated with Berth's filesystem driver in ${formatMs(gen.ms)}`}, then copied with \`cp -a\` once per server`,
    ];

    log('starting Berth (waiting for its index rebuild) …');
    const debugPort = await freePort();
    const berth = await startBerth(roots.berth, work, { command: ctx.berth, level: 'info', nodeFlags: profileFlags(ctx, 'listing'), metricsPort: debugPort });
    running.push(berth);
    const rebuilt = /index: rebuilt from storage[^\n]*"ms":(\d+)/.exec(berth.server.output());
    log(`  Berth ready at ${berth.url} after ${formatMs(berth.readyMs)}${rebuilt?.[1] !== undefined ? ` (index rebuild ${formatMs(Number(rebuilt[1]))})` : ''}`);
    notes.push(`Berth (${ctx.berth.label}): ready ${formatMs(berth.readyMs)} after spawn, once its log said \`index: rebuilt from storage\`${rebuilt?.[1] !== undefined ? ` (rebuild ${formatMs(Number(rebuilt[1]))})` : ''}; log level info, access log disabled in its config, registry:2 log level error with the access log disabled`);
    const reg = await startRegistry2(roots.registry2, work);
    running.push(reg);
    log(`  registry:2 ready at ${reg.url}`);
    const url: Record<Target, string> = { berth: berth.url, registry2: reg.url };

    const rows: Row[] = [];
    for (const s of listingScenarios(o)) {
      const seen: Record<Target, string> = { berth: '', registry2: '' };
      for (const t of TARGETS) seen[t] = await s.run(url[t]); // warm-up, untimed
      const samples = await alternate(o.rounds, TARGETS, (t) => sample(s, url[t], o.seconds, work));
      rows.push({ scenario: s.name, unit: 'ms', samples, ...(s.note !== undefined && { note: s.note }), ...(s.goal !== undefined && { goal: s.goal }) });
      log(`  ${s.name}: Berth ${formatMs(median(samples.berth))}, registry:2 ${formatMs(median(samples.registry2))}`);
      notes.push(`${s.name}: Berth answered ${seen.berth}; registry:2 answered ${seen.registry2}`);
    }

    const toDelete = manifests.slice(0, Math.min(o.deletes, manifests.length));
    log(`deleting ${toDelete.length} manifests by digest through each API …`);
    for (const t of TARGETS) {
      const ms = await deleteManifests(url[t], toDelete);
      notes.push(`DELETE of ${toDelete.length} manifests by digest (8 at a time), once: ${t === 'berth' ? 'Berth' : 'registry:2'} ${formatMs(ms)}`);
    }
    rows.push(await onlineCollections(`http://127.0.0.1:${debugPort}`, o, toDelete.length, notes, log));
    for (const r of running.splice(0)) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000);

    const gcArgs: Record<Target, { cmd: string; args: string[] }> = {
      berth: { cmd: ctx.berth.cmd, args: [...ctx.berth.args, 'garbage-collect', '--dry-run', join(work, 'berth-gc.yml')] },
      registry2: { cmd: registry2Binary(), args: ['garbage-collect', '--dry-run', join(work, 'registry2-gc.yml')] },
    };
    // At info: its line on crash leftovers (whether it looks through the whole tree, and why) goes in the notes.
    await writeFile(join(work, 'berth-gc.yml'), berthConfig(roots.berth, 5000, 'info'));
    await writeFile(join(work, 'registry2-gc.yml'), registry2Config(roots.registry2, 5000));
    const summaries: Record<Target, string> = { berth: '', registry2: '' };
    const scans: string[] = [];
    const offline = async (whole: boolean): Promise<Record<Target, number[]>> =>
      alternate(o.gcRounds, TARGETS, async (t) => {
        // Without the record of the last look, Berth looks through the whole tree, as on a tree copied in.
        if (t === 'berth' && whole) await rm(join(roots.berth, 'berth', 'leftovers-scanned'), { force: true });
        const r = await run(gcArgs[t].cmd, gcArgs[t].args, { cwd: REPO_ROOT, timeoutMs: GC_TIMEOUT_MS });
        summaries[t] = GC_SUMMARY.exec(r.stdout)?.[0] ?? `(no summary line; stdout ends ${JSON.stringify(r.stdout.slice(-200))})`;
        if (t === 'berth') scans.push(/crash leftovers: [^"\n]*/.exec(r.stderr)?.[0] ?? '(no line about crash leftovers)');
        return r.ms;
      });
    const scenario = `garbage-collect --dry-run (${o.repos + 1} repositories, ${toDelete.length} manifests deleted)`;
    for (const whole of [false, true]) {
      log(`garbage-collect --dry-run${whole ? ', Berth looking through the whole tree' : ''}, ${o.gcRounds} rounds each …`);
      const gcSamples = await offline(whole);
      rows.push({
        scenario: whole ? `${scenario}, Berth looking through the whole tree for crash leftovers` : scenario,
        unit: 'ms',
        samples: gcSamples,
        // Issue #19: the common dry run at least twice as fast as registry:2's; the look through the
        // whole tree (a first run on a tree copied in) has no target of its own: as fast as it can be.
        ...(!whole && { goal: atLeastFor('ms', 2) }),
        note: whole
          ? "the same with Berth's `berth/leftovers-scanned` removed before each of its runs: what its first run on a tree copied in, or its first after a writer was killed, does"
          : `wall time of the offline command, process start included (Berth: ${ctx.berth.label}); a tree it has looked through before, no writer killed since`,
      });
      log(`  Berth ${formatMs(median(gcSamples.berth))}, registry:2 ${formatMs(median(gcSamples.registry2))}`);
    }
    notes.push(`garbage-collect summaries: Berth "${summaries.berth}"; registry:2 "${summaries.registry2}"${summaries.berth === summaries.registry2 ? ' (identical)' : ' (DIFFERENT)'}`);
    notes.push(`Berth's offline runs said, in order: ${scans.map((l) => `\`${l}\``).join('; ')}`);
    const startup = await alternate(3, TARGETS, async (t) =>
      t === 'berth'
        ? (await run(ctx.berth.cmd, [...ctx.berth.args, 'help'], { cwd: REPO_ROOT, timeoutMs: 60_000 })).ms
        : (await run(registry2Binary(), ['--version'], { timeoutMs: 60_000 })).ms,
    );
    notes.push(`process start alone (median of 3): Berth \`${ctx.berth.label} help\` ${formatMs(median(startup.berth))}; \`docker-registry --version\` ${formatMs(median(startup.registry2))}`);
    notes.push(`rounds: ${o.rounds} per listing scenario after one untimed warm-up per server, ${o.gcRounds} for garbage-collect; A B then B A, alternating; a one-URL scenario's sample is wrk's median latency over one connection for ${o.seconds} s, the catalog walk's is one walk through node:http`);
    return { family: 'listing', title: 'Listing and collection: Berth vs registry:2', rows, notes };
  } finally {
    for (const r of running) await r.server.stop().catch(() => undefined);
    await removeTempDir(work);
  }
}

/** The `repo-*` repositories' manifest digests in a tree `generate` wrote (each has one revision). */
async function manifestsOf(root: string, repos: number): Promise<Digest[]> {
  const manifests: Digest[] = [];
  for (let i = 0; i < repos; i++) {
    const [hex] = await readdir(join(root, 'docker/registry/v2/repositories', repoName(i), '_manifests/revisions/sha256'));
    if (hex === undefined) throw new Error(`${root}: ${repoName(i)} has no revision: not a tree generate() wrote`);
    manifests.push(`sha256:${hex}` as Digest);
  }
  return manifests;
}

/**
 * Berth's online collector on the serving Berth, `gcRounds` dry runs through its debug listener (what
 * #19 asks reported: registry:2 has no online collector). The sample is the run's own `durationMs`.
 */
async function onlineCollections(debug: string, o: ListingOptions, deleted: number, notes: string[], log: (line: string) => void): Promise<Row> {
  log(`online collection (POST /debug/gc?dryrun=true), ${o.gcRounds} rounds …`);
  const samples: number[] = [];
  const walls: string[] = [];
  for (let r = 0; r < o.gcRounds; r++) {
    const { ms, value } = await timed(async () => {
      const res = await fetch(`${debug}/debug/gc?dryrun=true`, { method: 'POST', signal: AbortSignal.timeout(GC_TIMEOUT_MS) });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`POST /debug/gc: ${res.status} ${body.slice(0, 300)}`);
      return JSON.parse(body) as { durationMs: number; marked: number; swept: number };
    });
    samples.push(value.durationMs);
    walls.push(`${formatMs(value.durationMs)} (request ${formatMs(ms)}; marked ${value.marked}, would sweep ${value.swept})`);
  }
  log(`  Berth ${formatMs(median(samples))}`);
  notes.push(`online collection dry runs, in order: ${walls.join('; ')}; the first looks through the whole tree for crash leftovers (no run has on this copy), the others do not`);
  return {
    scenario: `online collection, dry run (${o.repos + 1} repositories, ${deleted} manifests deleted)`,
    unit: 'ms',
    samples: { berth: samples, registry2: [] },
    note: "Berth's online collector while it serves (`POST /debug/gc?dryrun=true`, the report's durationMs): its mark, with each link's time (the grace period), and the sweep's listing; registry:2 has none",
    noRatio: true,
  };
}

export const listingFamily: Family = {
  name: 'listing',
  summary: 'catalog (first page, full walk), tag list and tag page of a 10,000-repository tree; offline garbage-collect --dry-run',
  options: [
    { name: 'repos', help: 'repositories in the tree', full: LISTING_DEFAULTS.repos, quick: 500, min: 1, max: 99_999 },
    { name: 'tags', help: 'tags of the tag repository', full: LISTING_DEFAULTS.tags, quick: 500, min: 1, max: 99_999 },
    roundsOption(LISTING_DEFAULTS.rounds, 3),
    { name: 'seconds', help: 'seconds wrk times a one-URL scenario per sample (one connection; the median latency is the sample)', full: LISTING_DEFAULTS.seconds, quick: 1, min: 1, max: 600 },
    { name: 'gc-rounds', help: 'rounds of garbage-collect --dry-run', full: LISTING_DEFAULTS.gcRounds, quick: 1, min: 1, max: 99 },
    { name: 'deletes', help: 'manifests deleted before collecting (at most --repos)', full: LISTING_DEFAULTS.deletes, quick: 50, min: 1, max: 99_999 },
  ],
  run: (o, ctx) =>
    runListing(
      {
        repos: opt(o, 'repos'),
        tags: opt(o, 'tags'),
        rounds: opt(o, 'rounds'),
        seconds: opt(o, 'seconds'),
        gcRounds: opt(o, 'gc-rounds'),
        deletes: Math.min(opt(o, 'deletes'), opt(o, 'repos')),
      },
      ctx,
    ),
};
