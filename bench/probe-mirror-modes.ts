/**
 * Hand-run probe (not a family, issue #13): the warm counted pull of the mirror family, many times in a
 * row against one mirroring Berth, beside the same blobs from a Node server sending them from memory
 * (the family's floor), alternating; per pull the manifest phase (index and image manifest by tag and
 * digest) and the blob phase (config and layers in parallel, counted not hashed) apart, and the first
 * blob answer's headers. What it is for: whether Berth's warm pulls fall in two groups without the rest
 * of the family (cold pulls, registry:2, hashing clients) around them, and what changes that (CPU
 * placement, the thread pool's size, gaps between pulls).
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-mirror-modes.ts path/to/dist/main.js
 * PROBE_PULLS (40) pulls of each; PROBE_GAP_MS (200) between two pulls; PROBE_MB (50) image size;
 * PROBE_BERTH_CPUS / PROBE_CLIENT_CPUS (taskset lists, e.g. 1 and 0) pin Berth and this process (the
 * client and the memory server). PROBE_VARIANTS (`;`-separated, e.g. `UV_THREADPOOL_SIZE=4;UV_THREADPOOL_SIZE=1`)
 * starts one Berth per variant, each with those environment variables (space-separated NAME=VALUE), all
 * mirroring the same upstream and pulled in turn with the floor, the order rotating each round.
 * PROBE_NODE_FLAGS: Node flags for every Berth.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { Agent } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mirrorImage, pullOverHttp, seedUpstream } from '../test/helpers/mirror-clients.js';
import { BlobClient } from './lib/blob-client.js';
import { makeTempDir, removeTempDir, run } from './lib/proc.js';
import { type Running, startBerth, startRegistry2 } from './lib/servers.js';

const main = process.argv[2];
if (main === undefined) throw new Error('usage: probe-mirror-modes.ts path/to/dist/main.js');
const pulls = Number(process.env['PROBE_PULLS'] ?? 40);
const gapMs = Number(process.env['PROBE_GAP_MS'] ?? 200);
const mb = Number(process.env['PROBE_MB'] ?? 50);
const berthCpus = process.env['PROBE_BERTH_CPUS'];
const clientCpus = process.env['PROBE_CLIENT_CPUS'];
const flags = (process.env['PROBE_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** One Berth of the run, with its settings, and what its pulls measured. */
interface Variant {
  readonly label: string;
  readonly url: string;
  readonly pulls: number[];
  readonly manifestPhase: number[];
  readonly blobPhase: number[];
  readonly firstHeaders: number[];
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const list = (xs: readonly number[]): string => [...xs].sort((a, b) => a - b).map((x) => x.toFixed(0)).join(' ');

/** The family's memory server (mirror.ts startMemoryServer), pinned like this process when asked. */
async function memoryServer(bytes: number): Promise<{ url: string; stop(): void }> {
  const script = `const h=require('node:http');const b=require('node:crypto').randomBytes(${Math.ceil(bytes)});` +
    `const s=h.createServer((q,r)=>{const n=Number(q.url.slice(1));r.writeHead(200,{'Content-Length':n});r.end(b.subarray(0,n));});` +
    `s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const argv = [process.execPath, '-e', script];
  const [cmd, ...args] = clientCpus === undefined ? argv : ['taskset', '-c', clientCpus, ...argv];
  const child = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the memory server exited (${String(code)})`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => void child.kill() };
}

const work = await makeTempDir('berth-probe-mirror-modes-');
const running: Running[] = [];
const client = new BlobClient();
const agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 4000 });
let memory: { url: string; stop(): void } | undefined;
try {
  if (clientCpus !== undefined) await run('taskset', ['-a', '-p', '-c', clientCpus, String(process.pid)]);
  await mkdir(join(work, 'conf'));
  const upstream = await startRegistry2(join(work, 'upstream'), join(work, 'conf'));
  running.push(upstream);
  const command = berthCpus === undefined
    ? { cmd: process.execPath, args: [...flags, main], label: main }
    : { cmd: 'taskset', args: ['-c', berthCpus, process.execPath, ...flags, main], label: `taskset -c ${berthCpus} ${main}` };
  const m = mirrorImage('modes', [Math.round(mb * 5e5), Math.round(mb * 3e5), Math.round(mb * 2e5)], 17);
  await seedUpstream(upstream.url, 'library/modes', m, '1', 'multi');
  const variants: Variant[] = [];
  for (const [i, spec] of (process.env['PROBE_VARIANTS'] ?? '').split(';').entries()) {
    const env = Object.fromEntries(spec.split(' ').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    const berth = await startBerth(join(work, `berth-${i}`), work, {
      command,
      level: 'warn',
      sections: ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${upstream.url}`, '      default: true'],
    });
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    running.push(berth);
    await pullOverHttp(berth.url, 'library/modes', '1', { agent });
    variants.push({ label: spec.trim() || 'as is', url: berth.url, pulls: [], manifestPhase: [], blobPhase: [], firstHeaders: [] });
  }
  memory = await memoryServer(mb * 1e6);
  await sleep(2000); // the cache writes of the cold pulls
  const sizes = [m.image.config, ...m.image.layers.map((l) => l.gzip)].map((b) => b.size);
  const floor: number[] = [];
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  for (let i = 0; i < pulls; i++) {
    const berthPull = async (v: Variant): Promise<void> => {
      let blobsAt = 0;
      client.times = [];
      const t0 = performance.now();
      await pullOverHttp(v.url, 'library/modes', '1', {
        agent,
        getBlob: (url, _d, size) => {
          blobsAt ||= performance.now();
          return client.length(url, size);
        },
      });
      const t1 = performance.now();
      v.pulls.push(t1 - t0);
      v.manifestPhase.push(blobsAt - t0);
      v.blobPhase.push(t1 - blobsAt);
      v.firstHeaders.push(Math.min(...client.times.map((g) => g.headAt)) - blobsAt);
      client.times = undefined;
    };
    const floorPull = async (): Promise<void> => {
      const t0 = performance.now();
      await Promise.all(sizes.map((n) => client.length(`${memory?.url ?? ''}/${n}`, n)));
      floor.push(performance.now() - t0);
    };
    const steps = [...variants.map((v) => () => berthPull(v)), floorPull];
    for (let k = 0; k < steps.length; k++) {
      await (steps[(i + k) % steps.length] as () => Promise<void>)();
      await sleep(gapMs);
    }
  }
  console.log(`settings: Berth ${command.label}; client cpus ${clientCpus ?? 'any'}; ${pulls} pulls each, gap ${gapMs} ms, ${mb} MB; load ${load} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const v of variants) {
    console.log(`Berth (${v.label}) warm counted pull: median ${median(v.pulls).toFixed(1)} ms; sorted: ${list(v.pulls)}`);
    console.log(`  manifest phase median ${median(v.manifestPhase).toFixed(1)} ms (${list(v.manifestPhase)}); blob phase median ${median(v.blobPhase).toFixed(1)} ms (${list(v.blobPhase)}); first blob headers after ${median(v.firstHeaders).toFixed(1)} ms (median)`);
    console.log(`  in run order: ${v.pulls.map((x) => x.toFixed(0)).join(' ')}`);
  }
  console.log(`floor (memory server, blobs only): median ${median(floor).toFixed(1)} ms; sorted: ${list(floor)}`);
  console.log(`  in run order: ${floor.map((x) => x.toFixed(0)).join(' ')}`);
} finally {
  client.close();
  agent.destroy();
  memory?.stop();
  for (const r of running) await r.server.stop(10_000).catch(() => undefined);
  await removeTempDir(work);
}
