/**
 * Scenario family `usage` (issue #16's benchmark line): the usage figures of a 10,001-repository tree,
 * from Berth's index. registry:2 has no usage API (nothing in it tells what a repository costs), so
 * every row is Berth alone, with no ratio: there is nothing of registry:2's to compare with.
 *
 * 1. The `listing` family's tree (listing.ts `generate`): `repos` repositories `repo-NNNNN`, each one
 *    image (a layer all of them share, an own config and manifest) tagged `latest`, and `tags-10k`
 *    with one image under `tags` tags. So every repository has three blob links, one of them shared by
 *    all 10,001: the worst case for a blob's repositories.
 * 2. Berth serves it with its index (ready once `index: rebuilt from storage`, the rebuild now writing
 *    the usage tables too: its time is reported).
 * 3. Timed, alternating nothing (one server): the first page of `GET /berth/v1/usage?n=100`, one
 *    repository's usage (a plain one, and `tags-10k`, whose tag count reads 10,000 keys), each by wrk
 *    over one connection for `seconds` (its median latency is the sample); every page of
 *    `GET /berth/v1/usage` (pages of 1,000 following Link) through a Node client, one walk a sample;
 *    and `berth usage` against the serving Berth (the command asks it), wall time with process start.
 * 4. Last, `DELETE /berth/v1/repositories/<name>` of `rounds` plain repositories, then of `tags-10k`
 *    (its 10,000 tags are 10,000 index entries to re-read): each request timed, and each followed at
 *    once by `GET /berth/v1/usage?n=1`, which only a ready index answers (503 while it rebuilds), so a
 *    delete that sent the index into a rebuild fails the run.
 */
import { join } from 'node:path';
import { send } from './lib/client.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { runWrk } from './lib/load.js';
import { makeTempDir, removeTempDir, run } from './lib/proc.js';
import { type FamilyReport, type Row, formatMs, median, timed } from './lib/report.js';
import { REPO_ROOT, type Running, startBerth } from './lib/servers.js';
import { generate } from './listing.js';

export interface UsageBenchOptions {
  readonly repos: number;
  readonly tags: number;
  readonly rounds: number;
  readonly seconds: number;
}

const NO_API = "registry:2 has no usage API, so there is no ratio: Berth's time alone";
const REQUEST_TIMEOUT_MS = 120_000;

interface Page {
  readonly repositories: { name: string; logicalBytes: number; sharedBytes: number; exclusiveBytes: number }[];
}

async function getJson(url: string): Promise<{ body: Page; link: string | undefined }> {
  const res = await send(url, 'GET', {}, undefined, REQUEST_TIMEOUT_MS);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${res.body.slice(0, 300)}`);
  const link = res.headers.link;
  return { body: JSON.parse(res.body) as Page, link: typeof link === 'string' ? link : undefined };
}

/** Every page of the usage listing; answers how many repositories and pages. */
async function walk(base: string): Promise<{ repos: number; pages: number; shared: number }> {
  let url: string | undefined = `${base}/berth/v1/usage`;
  let repos = 0;
  let pages = 0;
  let shared = 0;
  while (url !== undefined) {
    const got = await getJson(url);
    pages += 1;
    repos += got.body.repositories.length;
    shared += got.body.repositories.filter((r) => r.sharedBytes > 0).length;
    const m = got.link === undefined ? null : /<([^>]+)>\s*;\s*rel="?next"?/.exec(got.link);
    url = m?.[1] === undefined ? undefined : new URL(m[1], base).toString();
  }
  return { repos, pages, shared };
}

const berthOnly = (scenario: string, samples: readonly number[], note = NO_API): Row => ({
  scenario, unit: 'ms', samples: { berth: samples, registry2: [] }, note, noRatio: true,
});

export async function runUsage(o: UsageBenchOptions, ctx: RunContext): Promise<FamilyReport> {
  const log = ctx.log;
  const work = await makeTempDir('berth-bench-usage-');
  let berth: Running | undefined;
  try {
    const root = join(work, 'root');
    log(`generating ${o.repos} repositories and one of ${o.tags} tags …`);
    const gen = await timed(() => generate(root, o));
    log('starting Berth (waiting for its index rebuild) …');
    berth = await startBerth(root, work, { command: ctx.berth, level: 'info', nodeFlags: profileFlags(ctx, 'usage') });
    const line = /[^\n]*index: rebuilt from storage[^\n]*/.exec(berth.server.output())?.[0] ?? '';
    const rebuilt = /"ms":(\d+)/.exec(line);
    const rebuildMs = rebuilt?.[1] === undefined ? Number.NaN : Number(rebuilt[1]);
    if (rebuilt === null) log(`  (no rebuild time in the log line: ${JSON.stringify(line.slice(0, 400))})`);
    log(`  ready after ${formatMs(berth.readyMs)} (index rebuild ${formatMs(rebuildMs)})`);
    const base = berth.url;
    const notes: string[] = [
      `tree: the listing family's (${o.repos} repositories with one image each, all sharing one layer, and tags-10k with ${o.tags} tags), generated in ${formatMs(gen.ms)}`,
      `index rebuild at start, usage tables included: ${formatMs(rebuildMs)} (Berth ${ctx.berth.label})`,
    ];
    const rows: Row[] = [];

    const check = await walk(base); // warm-up and sanity
    notes.push(`GET /berth/v1/usage walk: ${check.repos} repositories in ${check.pages} pages, ${check.shared} with shared bytes`);
    if (check.repos !== o.repos + 1) throw new Error(`usage walk gave ${check.repos} repositories, want ${o.repos + 1}`);

    const wrkRow = async (name: string, path: string): Promise<void> => {
      await getJson(base + path);
      const samples: number[] = [];
      for (let i = 0; i < o.rounds; i++) {
        const r = await runWrk({ url: base + path, method: 'GET', connections: 1, threads: 1, seconds: o.seconds }, work);
        if (r.errors > 0 || r.requests === 0) throw new Error(`${name}: ${r.errors} errors in ${r.requests} requests`);
        samples.push(r.p50Ms);
      }
      rows.push(berthOnly(name, samples));
      log(`  ${name}: ${formatMs(median(samples))}`);
    };
    await wrkRow('usage, first page (n=100)', '/berth/v1/usage?n=100');
    await wrkRow('usage of one repository', `/berth/v1/repositories/repo-${String(Math.floor(o.repos / 2)).padStart(5, '0')}/usage`);
    await wrkRow(`usage of tags-10k (${o.tags} tags counted)`, '/berth/v1/repositories/tags-10k/usage');

    const walks: number[] = [];
    for (let i = 0; i < o.rounds; i++) walks.push((await timed(() => walk(base))).ms);
    rows.push(berthOnly(`usage, every page (${o.repos + 1} repositories)`, walks, `${NO_API}; pages of 1,000 following Link, one walk through node:http a sample`));
    log(`  every page: ${formatMs(median(walks))}`);

    const cli: number[] = [];
    const config = join(work, 'berth-serve.yml');
    for (let i = 0; i < o.rounds; i++) {
      const r = await run(ctx.berth.cmd, [...ctx.berth.args, 'usage', config], { cwd: REPO_ROOT, timeoutMs: REQUEST_TIMEOUT_MS });
      const lines = r.stdout.trimEnd().split('\n');
      if (!(lines.at(-1) ?? '').startsWith(`${o.repos + 1} repositories`)) throw new Error(`berth usage: ${lines.at(-1) ?? '(no output)'}`);
      cli.push(r.ms);
    }
    rows.push(berthOnly(`berth usage (asks the server; ${o.repos + 1} rows)`, cli, `${NO_API}; wall time of the command, process start included`));
    log(`  berth usage: ${formatMs(median(cli))}`);
    // Repository deletes, last (they change the tree every earlier row reads).
    const deleteRepo = async (name: string): Promise<number> => {
      const { ms, value } = await timed(() => send(`${base}/berth/v1/repositories/${name}`, 'DELETE', {}, undefined, REQUEST_TIMEOUT_MS));
      if (value.status !== 202) throw new Error(`DELETE ${name}: ${value.status} ${value.body.slice(0, 300)}`);
      const after = await send(`${base}/berth/v1/usage?n=1`, 'GET', {}, undefined, REQUEST_TIMEOUT_MS);
      if (after.status !== 200) throw new Error(`usage right after deleting ${name}: ${after.status} (the index is not ready: it rebuilds)`);
      return ms;
    };
    const deletes: number[] = [];
    for (let i = 0; i < o.rounds; i++) deletes.push(await deleteRepo(`repo-${String(i).padStart(5, '0')}`));
    rows.push(berthOnly('repository delete (one image), index ready at once', deletes, 'no registry:2 API; the DELETE request, then usage answered by the index'));
    log(`  repository delete: ${formatMs(median(deletes))}`);
    const bigDelete = await deleteRepo('tags-10k');
    rows.push(berthOnly(`repository delete of tags-10k (${o.tags} tags), index ready at once`, [bigDelete], 'no registry:2 API; one sample'));
    log(`  delete of tags-10k: ${formatMs(bigDelete)}`);
    notes.push(`rounds: ${o.rounds}; a one-URL row's sample is wrk's median latency over one connection for ${o.seconds} s`);
    return { family: 'usage', title: 'Usage figures of 10,001 repositories (Berth only: registry:2 has no such API)', rows, notes };
  } finally {
    await berth?.server.stop().catch(() => undefined);
    await removeTempDir(work);
  }
}

export const usageFamily: Family = {
  name: 'usage',
  summary: "usage figures (/berth/v1/usage, one repository's, every page, berth usage) of a 10,001-repository tree; Berth alone, registry:2 has no such API",
  options: [
    { name: 'repos', help: 'repositories in the tree', full: 10_000, quick: 500, min: 1, max: 99_999 },
    { name: 'tags', help: 'tags of the tag repository', full: 10_000, quick: 500, min: 1, max: 99_999 },
    roundsOption(5, 2),
    { name: 'seconds', help: 'seconds wrk times a one-URL row per sample', full: 3, quick: 1, min: 1, max: 600 },
  ],
  run: (o, ctx) => runUsage({ repos: opt(o, 'repos'), tags: opt(o, 'tags'), rounds: opt(o, 'rounds'), seconds: opt(o, 'seconds') }, ctx),
};
