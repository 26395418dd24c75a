/**
 * Scenario family `mirror` (issue #13): cold and warm pulls of a 3-layer image of about `image-mb` MB
 * through Berth's pull-through cache (`proxy.upstreams`, docker.io the default upstream) and through
 * registry:2's own proxy mode (`proxy.remoteurl`), both mirroring the same upstream: a docker-registry
 * 2.8 behind a counting reverse proxy on loopback (test/helpers/mirror-clients.ts), which also gives the number
 * of requests each mirror made upstream.
 *
 * Each round seeds a new image (new digests) into the upstream, untimed; then each mirror in turn (the
 * order alternating) is pulled from cold (nothing cached: every blob comes through it from the
 * upstream), again as soon as that pull ended (the mirror may still be writing the image to its
 * cache), and warm once its root links every blob of the image (everything cached; both mirrors keep
 * registry:2's layout, so the bench looks for the same link files in each). A pull is what a client does, through a Node client
 * over a keep-alive agent: the manifest by tag, then the config and the three layers in parallel, each
 * streamed through sha256 and checked (skopeo tops out near 150 MB/s here, which would measure skopeo).
 * Each round also times the same pull straight from the upstream (the client's and machine's limit)
 * and the notes give the load average (the machine is shared). Both mirrors keep their defaults for re-checking a tag: registry:2 asks the upstream on every pull
 * by tag, Berth at most every `revalidate` (30 s by default).
 */
import { access, mkdir } from 'node:fs/promises';
import { Agent } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type CountingProxy, type MirrorImage, mirrorImage, pullOverHttp, seedUpstream, startCountingProxy } from '../test/helpers/mirror-clients.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, atLeastFor, formatValue, median, timed } from './lib/report.js';
import { type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const SHARES = [0.5, 0.3, 0.2] as const;

interface Counts {
  cold: number[];
  warm: number[];
}

/** Starts the upstream, its counting proxy and both mirrors of it (each pushed to `running` as it starts). */
async function startAll(work: string, ctx: RunContext, running: Running[]): Promise<{ upstream: Running; proxy: CountingProxy; url: Record<Target, string>; root: Record<Target, string> }> {
  const upstreamConf = join(work, 'upstream-conf');
  await mkdir(upstreamConf);
  const upstream = await startRegistry2(join(work, 'upstream'), upstreamConf);
  running.push(upstream);
  const proxy = await startCountingProxy(upstream.url);
  const berth = await startBerth(join(work, 'berth'), work, {
    command: ctx.berth,
    level: 'warn',
    nodeFlags: profileFlags(ctx, 'mirror'),
    sections: ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${proxy.url}`, '      default: true', '      hosts: [docker.io, index.docker.io]'],
  });
  running.push(berth);
  const reg = await startRegistry2(join(work, 'registry2'), work, 30_000, ['proxy:', `  remoteurl: ${proxy.url}`]);
  running.push(reg);
  return { upstream, proxy, url: { berth: berth.url, registry2: reg.url }, root: { berth: join(work, 'berth'), registry2: join(work, 'registry2') } };
}

function imageOf(seed: number, bytes: number): MirrorImage {
  const [a, b, c] = SHARES.map((s) => Math.round(bytes * s));
  return mirrorImage(`bench-${seed}`, [a ?? 0, b ?? 0, c ?? 0], seed);
}

function total(proxy: CountingProxy): number {
  let n = 0;
  for (const v of proxy.counts().values()) n += v;
  return n;
}

/** One run's servers, client and what it measured. */
interface Bench {
  readonly ctx: RunContext;
  readonly proxy: CountingProxy;
  readonly upstream: string;
  readonly url: Record<Target, string>;
  /** Each mirror's storage root (both in registry:2's layout). */
  readonly root: Record<Target, string>;
  readonly agent: Agent;
  readonly cold: Record<Target, number[]>;
  /** The same pull again once the mirror's root holds every blob of it, linked. */
  readonly warm: Record<Target, number[]>;
  /** The same pull again as soon as the cold one ended (the mirror may still be writing the image to its cache). */
  readonly again: Record<Target, number[]>;
  readonly counts: Record<Target, Counts>;
  readonly failures: string[];
  /** The same pull straight from the upstream (no mirror): what the client and machine allow. */
  readonly direct: number[];
  readonly load: readonly string[];
}

/** Where a mirror's root links blob `digest` into repository `stored` (registry:2's layout, both mirrors). */
function layerLink(root: string, stored: string, digest: string): string {
  return join(root, 'docker/registry/v2/repositories', stored, '_layers/sha256', digest.slice('sha256:'.length), 'link');
}

/** Waits until mirror `t`'s root links every blob of `m`'s amd64 image into the repository (its cache write is over). */
async function cachedInRoot(b: Bench, t: Target, repo: string, m: MirrorImage): Promise<void> {
  // Berth keeps a mirrored repository under the upstream's prefix; registry:2's proxy mode under the name itself.
  const stored = t === 'berth' ? `docker.io/${repo}` : repo;
  const links = [m.image.config, ...m.image.layers.map((l) => l.gzip)].map((blob) => layerLink(b.root[t], stored, blob.digest));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const present = await Promise.all(links.map((l) => access(l).then(() => true, () => false)));
    if (present.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`${TARGET_LABEL[t]}: the image was not in its cache 60 s after the pull`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A cold pull of `repo:1` through `t`, the same pull again as soon as it ended, and once more when the
 * mirror's root holds the whole image; samples and upstream request counts recorded when `record`.
 */
async function pullBoth(b: Bench, t: Target, repo: string, m: MirrorImage, record: boolean): Promise<void> {
  b.proxy.reset();
  const c = await timed(() => pullOverHttp(b.url[t], repo, '1', { agent: b.agent }));
  const coldRequests = total(b.proxy);
  const a = await timed(() => pullOverHttp(b.url[t], repo, '1', { agent: b.agent }));
  await cachedInRoot(b, t, repo, m);
  b.proxy.reset();
  const w = await timed(() => pullOverHttp(b.url[t], repo, '1', { agent: b.agent }));
  const warmRequests = total(b.proxy);
  for (const p of [c.value, a.value, w.value]) if (p.digest !== m.image.manifest.digest) throw new Error(`${t}: pulled ${p.digest}, want ${m.image.manifest.digest}`);
  if (!record) return;
  b.cold[t].push(c.ms);
  b.again[t].push(a.ms);
  b.warm[t].push(w.ms);
  b.counts[t].cold.push(coldRequests);
  b.counts[t].warm.push(warmRequests);
  b.ctx.log(`  ${TARGET_LABEL[t]}: cold ${formatValue(c.ms, 'ms')} (${coldRequests} upstream requests), right after ${formatValue(a.ms, 'ms')}, warm ${formatValue(w.ms, 'ms')} (${warmRequests})`);
}

/** Seeds a new image of `size` bytes into the upstream, then pulls it cold and warm through each target in `order`. */
async function cycle(b: Bench, seed: number, size: number, order: readonly Target[], record: boolean): Promise<void> {
  const m = imageOf(seed, size);
  const repo = `library/bench-${seed}`;
  await seedUpstream(b.upstream, repo, m, '1', 'multi');
  const direct = await timed(() => pullOverHttp(b.upstream, repo, '1', { agent: b.agent }));
  if (record) b.direct.push(direct.ms);
  for (const t of order) {
    try {
      await pullBoth(b, t, repo, m, record);
    } catch (err) {
      // registry:2 in proxy mode sometimes answered 500 to a cold blob GET here: recorded, not retried
      b.failures.push(`${TARGET_LABEL[t]}, image ${seed}: ${(err as Error).message}`);
      b.ctx.log(`  ${TARGET_LABEL[t]}: pull failed: ${(err as Error).message}`);
    }
  }
}

function report(o: Readonly<Record<string, number>>, b: Bench): FamilyReport {
  const what = `3-layer ${opt(o, 'image-mb')} MB image`;
  const rows: Row[] = [
    { scenario: `mirror cold pull, ${what}`, unit: 'ms', samples: b.cold, goal: atLeastFor('ms', 1.2), note: 'nothing cached: manifest and every blob through the mirror from the upstream' },
    { scenario: `mirror warm pull, ${what}`, unit: 'ms', samples: b.warm, goal: atLeastFor('ms', 2), note: "the same pull again, everything cached (once the mirror's root links every blob of the image)" },
    { scenario: `mirror pull right after the cold one, ${what}`, unit: 'ms', samples: b.again, note: 'the same pull again as soon as the cold pull ended, while the mirror may still be writing the image to its cache' },
  ];
  const med = (xs: readonly number[]): string => String(median(xs));
  const { berth, registry2 } = b.counts;
  const notes = [
    `upstream: docker-registry 2.8 behind a counting reverse proxy (node:http) on loopback; Berth: ${b.ctx.berth.label}, proxy.upstreams (docker.io, default, revalidate 30 s by default); registry:2: proxy.remoteurl`,
    `upstream requests per pull (median over rounds): Berth cold ${med(berth.cold)}, warm ${med(berth.warm)}; registry:2 cold ${med(registry2.cold)}, warm ${med(registry2.warm)}`,
    `upstream requests, every round: Berth cold ${berth.cold.join(' ')}, warm ${berth.warm.join(' ')}; registry:2 cold ${registry2.cold.join(' ')}, warm ${registry2.warm.join(' ')}`,
    `client: node:http keep-alive, manifest by tag then config and 3 layers in parallel, each sha256-checked; layers ${SHARES.map((s) => `${Math.round(s * 100)}%`).join(', ')} of ${opt(o, 'image-mb')} MB of seeded random data, a new image each round; a 1 MB image pulled first as a warm-up`,
    `the same pull straight from the upstream registry:2 (no mirror, no counting proxy), median: ${formatValue(median(b.direct), 'ms')} (what this client and machine allow)`,
    `load average (1, 5, 15 min) at the start ${b.load.join(', ')}, at the end ${loadavg().map((x) => x.toFixed(2)).join(', ')}`,
    `rounds: ${opt(o, 'rounds')}, A B then B A, alternating (each side: cold, right after, then warm once cached)`,
    'upstream requests "warm" are those of the warm pull once cached',
    b.failures.length === 0 ? 'every pull succeeded' : `failed pulls (no sample that round): ${b.failures.join('; ')}`,
  ];
  return { family: 'mirror', title: "pull-through cache: Berth's mirror vs registry:2's proxy mode", rows, notes };
}

async function runMirror(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-mirror-');
  const running: Running[] = [];
  let proxy: CountingProxy | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    const started = await startAll(work, ctx, running);
    proxy = started.proxy;
    const { url, upstream, root } = started;
    ctx.log(`mirror: upstream ${upstream.url} (counted at ${proxy.url}); Berth at ${url.berth}, registry:2 at ${url.registry2}`);
    const b: Bench = {
      ctx, proxy, upstream: upstream.url, url, root, agent, failures: [], direct: [], load: loadavg().map((x) => x.toFixed(2)),
      cold: { berth: [], registry2: [] }, warm: { berth: [], registry2: [] }, again: { berth: [], registry2: [] }, counts: { berth: { cold: [], warm: [] }, registry2: { cold: [], warm: [] } },
    };
    await cycle(b, 1, 1e6, TARGETS, false); // warm-up: 1 MB, untimed
    for (let r = 0; r < opt(o, 'rounds'); r++) await cycle(b, 100 + r, opt(o, 'image-mb') * 1e6, r % 2 === 0 ? TARGETS : [TARGETS[1], TARGETS[0]], true);
    return report(o, b);
  } finally {
    agent.destroy();
    await proxy?.close().catch(() => undefined);
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    await removeTempDir(work);
  }
}

export const mirrorFamily: Family = {
  name: 'mirror',
  summary: "cold and warm pulls of a 3-layer image through Berth's mirror and registry:2's proxy mode, same upstream",
  options: [roundsOption(5, 2), { name: 'image-mb', help: 'image size in MB', full: 50, quick: 10, min: 1, max: 2000 }],
  run: runMirror,
};
