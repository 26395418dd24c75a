/**
 * Hand-run probe (not a family): Berth's peak resident memory and speed during one big monolithic
 * filesystem PUT, for two or more builds side by side, alternating (A B, then B A, …), each upload into
 * a Berth started afresh over an empty root (access log on, as a default install). Prints one line per
 * upload and the medians. The peak is the bench's own (lib/rss.ts: the kernel's VmHWM after a reset,
 * and 50 ms samples).
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-put-peak.ts A=/x/dist/main.js B=/y/dist/main.js
 * PROBE_ROUNDS (3), PROBE_SIZE_MIB (1024).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobDigest } from './lib/blobdata.js';
import { uploadMonolithic } from './lib/client.js';
import { peakWatcher, rssMiB } from './lib/rss.js';
import { startBerth } from './lib/servers.js';

const MiB = 1024 * 1024;
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 3);
const size = Number(process.env['PROBE_SIZE_MIB'] ?? 1024) * MiB;
const builds = process.argv.slice(2).map((arg) => {
  const [name, main] = arg.split('=');
  if (name === undefined || main === undefined) throw new Error(`expected NAME=path/to/main.js, got ${arg}`);
  return { name, main };
});
const results = new Map<string, { peak: number[]; rest: number[]; mbs: number[] }>(builds.map((b) => [b.name, { peak: [], rest: [], mbs: [] }]));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const work = await mkdtemp(join(tmpdir(), 'berth-probe-peak-'));
    const berth = await startBerth(join(work, 'root'), work, { command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', accessLog: true });
    try {
      const seed = 5000 + r;
      blobDigest(seed, size); // hashed before the clock starts
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const rest = await rssMiB(berth.server.pid);
      const watch = peakWatcher(berth.server.pid);
      await watch.start();
      const began = process.hrtime.bigint();
      await uploadMonolithic(berth.url, 'probe/peak', seed, size);
      const seconds = Number(process.hrtime.bigint() - began) / 1e9;
      const peak = await watch.stop();
      const mbs = size / 1e6 / seconds;
      const res = results.get(b.name);
      res?.peak.push(peak);
      res?.rest.push(rest);
      res?.mbs.push(mbs);
      console.log(`round ${r + 1} ${b.name}: at rest ${rest.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB, ${mbs.toFixed(0)} MB/s`);
    } finally {
      await berth.server.stop();
      await rm(work, { recursive: true, force: true });
    }
  }
}
for (const [name, res] of results) {
  console.log(`${name}: peak median ${median(res.peak).toFixed(1)} MiB [${res.peak.map((v) => v.toFixed(1)).join(', ')}], at rest ${median(res.rest).toFixed(1)}, PUT ${median(res.mbs).toFixed(0)} MB/s [${res.mbs.map((v) => v.toFixed(0)).join(', ')}]`);
}
