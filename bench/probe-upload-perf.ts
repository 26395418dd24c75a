/**
 * Hand-run probe (not a family): `perf record` of Berth's main thread (on-CPU samples with call
 * graphs, JIT frames named through `--perf-basic-prof`) during one 1 GiB upload, a monolithic PUT or
 * 64 MiB PATCHes, into a Berth started afresh (access log on). Read it with
 * `perf report -i OUT --children --sort sym -g none` (inclusive shares) or `--no-children` (self).
 * perf sees native frames the V8 profiler lumps together (the HTTP parser's copy of each body chunk,
 * the kernel's socket reads, sha256 itself); here `cpu-clock` only (no hardware counters in this guest).
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-upload-perf.ts dist/main.js /tmp/put.perf.data [put|patch]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, blobDigest } from './lib/blobdata.js';
import { uploadChunked, uploadMonolithic } from './lib/client.js';
import { startBerth } from './lib/servers.js';

const [main, out, kind = 'put'] = process.argv.slice(2);
if (main === undefined || out === undefined) throw new Error('usage: probe-upload-perf.ts path/to/main.js OUT [put|patch]');
const size = 1024 * MiB;
const work = await mkdtemp(join(tmpdir(), 'berth-probe-perf-'));
const berth = await startBerth(join(work, 'root'), work, {
  command: { cmd: process.execPath, args: [main], label: main }, level: 'warn', accessLog: true, nodeFlags: ['--perf-basic-prof'],
});
try {
  blobDigest(1, size); // hashed before perf starts
  const perf = spawn('perf', ['record', '-F', '1999', '-g', '-t', String(berth.server.pid), '-o', out], { stdio: 'inherit' });
  const exited = new Promise((resolve) => perf.once('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (kind === 'put') await uploadMonolithic(berth.url, 'probe/perf', 1, size);
  else await uploadChunked(berth.url, 'probe/perf', 1, size, 64 * MiB);
  perf.kill('SIGINT');
  await exited;
} finally {
  await berth.server.stop();
  await rm(work, { recursive: true, force: true });
}
