/**
 * Scenario family `docker` (issue #8): `docker push` and `docker pull` of a 3-layer image of about
 * `image-mb` MB, through a private dockerd (test/helpers/dockerd.ts: vfs storage, no bridge, all state
 * in a temporary directory) that trusts both registries' plain-HTTP ports.
 *
 * Each round makes a new image offline (test/helpers/images.ts: three layers of seeded incompressible
 * data, half, 30% and 20% of the size) and `docker load`s it, untimed, so that every push uploads every
 * layer. Then it is pushed to each server in turn (timed: `docker push` wall time, which includes
 * dockerd gzipping the layers, the same work for both), every local copy removed, and pulled back from
 * each in turn (timed, removed again after each pull). One small image is pushed and pulled first as a
 * warm-up.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Dockerd, startDockerd } from '../test/helpers/dockerd.js';
import { buildImage, dockerArchive, layer } from '../test/helpers/images.js';
import { randomBytesSeeded } from '../test/helpers/oci.js';
import { type Family, type RunContext, opt, profileFlags, roundsOption } from './lib/family.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, type Row, formatValue, median, timed } from './lib/report.js';
import { type Running, type Target, TARGET_LABEL, startBerth, startRegistry2 } from './lib/servers.js';

const TARGETS = ['berth', 'registry2'] as const satisfies readonly [Target, Target];
const SHARES = [0.5, 0.3, 0.2] as const;

/** Writes a docker-archive of a 3-layer image of about `bytes` bytes (seed `seed`) and loads it as `tag`. */
async function loadImage(dockerd: Dockerd, dir: string, seed: number, bytes: number, tag: string): Promise<void> {
  const layers = SHARES.map((share, i) =>
    layer([{ path: 'data' }, { path: `data/layer-${i}.bin`, content: randomBytesSeeded(Math.round(bytes * share), seed * 10 + i + 1) }]),
  );
  const img = buildImage({ platform: { architecture: 'amd64', os: 'linux' }, layers, labels: { 'org.example.berth.bench': String(seed) } });
  const file = join(dir, `image-${seed}.tar`);
  await writeFile(file, dockerArchive(img, [tag]));
  await dockerd.docker(['load', '-i', file], { timeoutMs: 300_000 });
}

async function rmi(dockerd: Dockerd, refs: readonly string[]): Promise<void> {
  await dockerd.dockerResult(['rmi', '--force', ...refs], { timeoutMs: 120_000 });
}

async function runDocker(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport> {
  const work = await makeTempDir('berth-bench-docker-');
  const running: Running[] = [];
  let dockerd: Dockerd | undefined;
  try {
    const berth = await startBerth(join(work, 'berth'), work, { command: ctx.berth, level: 'warn', nodeFlags: profileFlags(ctx, 'docker') });
    running.push(berth);
    const reg = await startRegistry2(join(work, 'registry2'), work);
    running.push(reg);
    const host: Record<Target, string> = { berth: new URL(berth.url).host, registry2: new URL(reg.url).host };
    ctx.log(`docker: starting a private dockerd for ${host.berth} and ${host.registry2} …`);
    dockerd = await startDockerd({ registryPorts: [Number(new URL(berth.url).port), Number(new URL(reg.url).port)] });
    const d = dockerd;
    const ref = (t: Target, round: string): string => `${host[t]}/bench/image:${round}`;

    const cycle = async (seed: number, bytes: number, round: string, order: readonly Target[]): Promise<Record<Target, { push: number; pull: number }>> => {
      const local = `bench-local:${round}`;
      await loadImage(d, work, seed, bytes, local);
      const out: Record<Target, { push: number; pull: number }> = { berth: { push: 0, pull: 0 }, registry2: { push: 0, pull: 0 } };
      for (const t of order) await d.docker(['tag', local, ref(t, round)]);
      for (const t of order) out[t].push = (await timed(() => d.docker(['push', ref(t, round)], { timeoutMs: 600_000 }))).ms;
      await rmi(d, [local, ...order.map((t) => ref(t, round))]);
      for (const t of order) {
        out[t].pull = (await timed(() => d.docker(['pull', ref(t, round)], { timeoutMs: 600_000 }))).ms;
        await rmi(d, [ref(t, round)]);
      }
      return out;
    };

    await cycle(1, 1 << 20, 'warmup', TARGETS);
    const bytes = opt(o, 'image-mb') * 1e6;
    const push: Record<Target, number[]> = { berth: [], registry2: [] };
    const pull: Record<Target, number[]> = { berth: [], registry2: [] };
    for (let r = 0; r < opt(o, 'rounds'); r++) {
      const order = r % 2 === 0 ? TARGETS : ([TARGETS[1], TARGETS[0]] as const);
      const got = await cycle(100 + r, bytes, `r${r}`, order);
      for (const t of TARGETS) {
        push[t].push(got[t].push);
        pull[t].push(got[t].pull);
      }
    }
    ctx.log(`  push: Berth ${formatValue(median(push.berth), 'ms')}, registry:2 ${formatValue(median(push.registry2), 'ms')}; pull: Berth ${formatValue(median(pull.berth), 'ms')}, registry:2 ${formatValue(median(pull.registry2), 'ms')}`);
    const what = `3-layer ${opt(o, 'image-mb')} MB image`;
    const rows: Row[] = [
      { scenario: `docker push, ${what}`, unit: 'ms', samples: push, note: 'wall time of `docker push`, including dockerd gzipping the layers (the same work against either registry)' },
      { scenario: `docker pull, ${what}`, unit: 'ms', samples: pull, note: 'wall time of `docker pull` after every local copy was removed, including dockerd unpacking into vfs' },
    ];
    const version = (await d.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    const notes = [
      `docker ${version} (a private dockerd, vfs storage); ${TARGET_LABEL.berth}: ${ctx.berth.label}, log level warn; registry:2 log level error, access log disabled`,
      `image: 3 layers of seeded random data (${SHARES.map((s) => `${Math.round(s * 100)}%`).join(', ')} of ${opt(o, 'image-mb')} MB), new each round; one 1 MB image pushed and pulled first as a warm-up`,
      `rounds: ${opt(o, 'rounds')}, A B then B A, alternating`,
    ];
    return { family: 'docker', title: 'docker push and pull: Berth vs registry:2', rows, notes };
  } finally {
    await dockerd?.close().catch(() => undefined);
    for (const r of running) await r.server.stop(ctx.cpuProfDir !== undefined || ctx.heapProfDir !== undefined ? 60_000 : 5_000).catch(() => undefined);
    await removeTempDir(work);
  }
}

export const dockerFamily: Family = {
  name: 'docker',
  summary: 'docker push and pull of a 3-layer image through a private dockerd',
  options: [roundsOption(3, 3), { name: 'image-mb', help: 'image size in MB', full: 50, quick: 10, min: 1, max: 2000 }],
  run: runDocker,
};
