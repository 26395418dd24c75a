/**
 * Hand-run probe (not a family, issue #13): what a warm blob GET of a mirrored name costs Berth next to
 * a GET of the same bytes from an ordinary repository. One Berth (BUILD, a dist/main.js) mirrors a
 * docker-registry 2.8 upstream (`proxy.upstreams`, docker.io the default); a 3-layer image of
 * PROBE_MB MB is pulled through it once (cold) and, once cached, pushed to a local repository of the
 * same Berth (the same blob files). Then, alternating, PROBE_ROUNDS rounds of: the image's blobs in
 * parallel (as a pull GETs them) and PROBE_SMALL sequential GETs of the config blob (the per-request
 * cost), each by the un-prefixed name (routed to docker.io/… by the default upstream), the prefixed name
 * (docker.io/library/…), and the local repository. Bodies are counted, not hashed
 * (bench/lib/blob-client.ts `length`), so the client leaves the cores to Berth; then PROBE_SMALL manifest
 * GETs by tag through node:http (as the bench's pull makes them).
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-mirror-warm.ts /tmp/x/dist/main.js
 * PROBE_NODE_FLAGS: Node flags for Berth (e.g. `--cpu-prof --cpu-prof-dir /tmp/p`).
 */
import { mkdir } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { mirrorImage, pullOverHttp, seedUpstream } from '../test/helpers/mirror-clients.js';
import { BlobClient } from './lib/blob-client.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type Running, startBerth, startRegistry2 } from './lib/servers.js';

const main = process.argv[2];
if (main === undefined) throw new Error('usage: probe-mirror-warm.ts path/to/dist/main.js');
const mb = Number(process.env['PROBE_MB'] ?? 50);
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 10);
const small = Number(process.env['PROBE_SMALL'] ?? 500);
const flags = (process.env['PROBE_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** A manifest GET by tag over `agent` (node:http, as the bench's pull makes it). */
function manifestByTag(url: string, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url} answered ${String(res.statusCode)}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const work = await makeTempDir('berth-probe-mirror-warm-');
const running: Running[] = [];
const client = new BlobClient();
const agent = new Agent({ keepAlive: true, maxSockets: 1, timeout: 4000 });
try {
  await mkdir(join(work, 'conf'));
  const upstream = await startRegistry2(join(work, 'upstream'), join(work, 'conf'));
  running.push(upstream);
  const berth = await startBerth(join(work, 'berth'), work, {
    command: { cmd: process.execPath, args: [main], label: main },
    level: 'warn',
    nodeFlags: flags,
    sections: ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${upstream.url}`, '      default: true', '      revalidate: 1h'],
  });
  running.push(berth);
  const m = mirrorImage('probe', [Math.round(mb * 5e5), Math.round(mb * 3e5), Math.round(mb * 2e5)], 11);
  await seedUpstream(upstream.url, 'library/probe', m, '1', 'multi');
  await pullOverHttp(berth.url, 'library/probe', '1');
  await new Promise((r) => setTimeout(r, 2000)); // the cache write of the cold pull
  await seedUpstream(berth.url, 'local/probe', m, '1', 'multi');
  const blobs = [m.image.config, ...m.image.layers.map((l) => l.gzip)];
  const names = { unprefixed: 'library/probe', prefixed: 'docker.io/library/probe', local: 'local/probe' } as const;
  const pulls = new Map<string, number[]>();
  const perGet = new Map<string, number[]>();
  const perManifest = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    const order = Object.entries(names);
    if (r % 2 === 1) order.reverse();
    for (const [label, name] of order) {
      const url = (d: string): string => `${berth.url}/v2/${name}/blobs/${d}`;
      const t0 = performance.now();
      await Promise.all(blobs.map((b) => client.length(url(b.digest), b.size)));
      const t1 = performance.now();
      for (let i = 0; i < small; i++) await client.length(url(m.image.config.digest), m.image.config.size);
      const t2 = performance.now();
      for (let i = 0; i < small; i++) await manifestByTag(`${berth.url}/v2/${name}/manifests/1`, agent);
      const t3 = performance.now();
      pulls.set(label, [...(pulls.get(label) ?? []), t1 - t0]);
      perGet.set(label, [...(perGet.get(label) ?? []), ((t2 - t1) * 1000) / small]);
      perManifest.set(label, [...(perManifest.get(label) ?? []), ((t3 - t2) * 1000) / small]);
    }
  }
  for (const label of Object.keys(names)) {
    const p = pulls.get(label) ?? [];
    const g = perGet.get(label) ?? [];
    const mf = perManifest.get(label) ?? [];
    console.log(`${label}: blobs of the image in parallel median ${median(p).toFixed(1)} ms [${p.map((x) => x.toFixed(1)).join(' ')}]; one small blob GET median ${median(g).toFixed(0)} µs [${g.map((x) => x.toFixed(0)).join(' ')}]; one manifest GET by tag (node:http) median ${median(mf).toFixed(0)} µs [${mf.map((x) => x.toFixed(0)).join(' ')}]`);
  }
} finally {
  client.close();
  agent.destroy();
  for (const r of running) await r.server.stop(60_000).catch(() => undefined);
  await removeTempDir(work);
}
