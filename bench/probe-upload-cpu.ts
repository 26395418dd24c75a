/**
 * Hand-run probe (not a family): CPU seconds of Berth's main thread (and of its other threads: libuv's
 * pool, V8's helpers) per GiB uploaded, for two or more builds, alternating (A B, then B A, …). Each
 * round starts every build afresh over an empty root (access log on, as a default install) and
 * uploads one blob of PROBE_SIZE_MIB as a monolithic PUT, then one in PROBE_CHUNK_MIB PATCHes (Content-Range)
 * and a closing PUT. CPU from /proc/<pid>/task/<tid>/stat (user + system, ticks of 10 ms) before and
 * after each upload; the upload client runs in this process. Prints one line per upload and the medians.
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-upload-cpu.ts main=/tmp/m/dist/main.js branch=dist/main.js
 * A build may add Node flags after `::` (e.g. `branch=dist/main.js::--cpu-prof::--cpu-prof-dir=/tmp/p`).
 * PROBE_ROUNDS (3), PROBE_SIZE_MIB (1024), PROBE_CHUNK_MIB (64).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { uploadChunked, uploadMonolithic } from './lib/client.js';
import { parseBuildArg } from './lib/builds.js';
import { mainAndOthers, threadCpuSeconds } from './lib/cpu.js';
import { startBerth } from './lib/servers.js';

const rounds = Number(process.env['PROBE_ROUNDS'] ?? 3);
const size = Number(process.env['PROBE_SIZE_MIB'] ?? 1024) * MiB;
const chunk = Number(process.env['PROBE_CHUNK_MIB'] ?? 64) * MiB;
const GiB = 1024 * MiB;

const builds = process.argv.slice(2).map(parseBuildArg);

type Kind = 'put' | 'patch';
interface Sample { main: number; others: number; mbs: number }
const results = new Map<string, Record<Kind, Sample[]>>(builds.map((b) => [b.name, { put: [], patch: [] }]));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${rounds} rounds, ${size / MiB} MiB, PATCHes of ${chunk / MiB} MiB`);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const work = await mkdtemp(join(tmpdir(), 'berth-probe-upcpu-'));
    const berth = await startBerth(join(work, 'root'), work, {
      command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true, nodeFlags: b.nodeFlags,
    });
    const pid = berth.server.pid;
    try {
      for (const kind of ['put', 'patch'] as const) {
        const seed = 7000 + r * 2 + (kind === 'put' ? 0 : 1);
        blobDigest(seed, size); // hashed before the clock starts
        const before = await threadCpuSeconds(pid);
        const began = process.hrtime.bigint();
        if (kind === 'put') await uploadMonolithic(berth.url, 'probe/upcpu', seed, size);
        else await uploadChunked(berth.url, 'probe/upcpu', seed, size, chunk);
        const seconds = Number(process.hrtime.bigint() - began) / 1e9;
        const cpu = mainAndOthers(pid, before, await threadCpuSeconds(pid));
        const sample = { main: (cpu.main * GiB) / size, others: (cpu.others * GiB) / size, mbs: size / 1e6 / seconds };
        results.get(b.name)?.[kind].push(sample);
        console.log(`round ${r + 1} ${b.name} ${kind}: main thread ${sample.main.toFixed(2)} s/GiB, other threads ${sample.others.toFixed(2)} s/GiB, ${sample.mbs.toFixed(0)} MB/s`);
      }
    } finally {
      await berth.server.stop();
      await rm(work, { recursive: true, force: true });
    }
  }
}
for (const [name, res] of results) {
  for (const kind of ['put', 'patch'] as const) {
    const s = res[kind];
    console.log(
      `${name} ${kind}: main thread median ${median(s.map((x) => x.main)).toFixed(2)} s/GiB [${s.map((x) => x.main.toFixed(2)).join(', ')}], ` +
        `other threads ${median(s.map((x) => x.others)).toFixed(2)}, ${median(s.map((x) => x.mbs)).toFixed(0)} MB/s [${s.map((x) => x.mbs.toFixed(0)).join(', ')}]`,
    );
  }
}
console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
