/**
 * A hand-run probe (not a bench family): where a cold pull's time goes, blob by blob, through Berth's
 * mirror and through registry:2's proxy mode, both in front of one docker-registry upstream behind a
 * timing reverse proxy. For each blob it prints, in ms from the start of the pull: when the upstream
 * was asked, answered, sent its first and last byte (to the mirror); when the client got the headers,
 * its first and last byte; and when the mirror's root linked the blob (its cache write committed).
 *
 *   npx tsx bench/mirror-timeline.ts [image-mb] [rounds]
 *
 * MIRROR_TIMELINE_TRACE_GC=1 sums up Berth's garbage collections per pull and why each full one began
 * (V8's --trace-gc and --trace-incremental-marking); MIRROR_TIMELINE_NODE_FLAGS adds flags to Berth's
 * node; MIRROR_TIMELINE_PROF=<dir> writes its CPU profile there.
 *
 * Run it under the bench lock (`flock -x /tmp/berth-bench.lock …`).
 */
import { createHash } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { Agent, type IncomingMessage, createServer, request } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mirrorImage, seedUpstream } from '../test/helpers/mirror-clients.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type Running, type Target, buildBerth, startBerth, startRegistry2 } from './lib/servers.js';

interface UpstreamTimes {
  asked: number;
  answered?: number;
  first?: number;
  last?: number;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** A reverse proxy to `target` noting, per request path, when it came, was answered, and its body's first and last byte went out. */
async function timingProxy(target: string): Promise<{ url: string; times: Map<string, UpstreamTimes[]>; close(): Promise<void> }> {
  const t = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const times = new Map<string, UpstreamTimes[]>();
  const server = createServer((req, res) => {
    const key = `${req.method ?? 'GET'} ${(req.url ?? '/').split('?')[0] ?? '/'}`;
    const rec: UpstreamTimes = { asked: now() };
    times.set(key, [...(times.get(key) ?? []), rec]);
    const upstream = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host }, agent });
    upstream.on('response', (answer: IncomingMessage) => {
      rec.answered = now();
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.once('data', () => (rec.first = now()));
      answer.pipe(res);
      res.on('finish', () => (rec.last = now()));
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    times,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      agent.destroy();
      server.close(() => resolve());
    }),
  };
}

interface ClientTimes {
  headers?: number;
  first?: number;
  last?: number;
  linked?: number;
}

function getTimed(url: string, agent: Agent, accept: string | undefined, rec: ClientTimes, hashIt: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: accept === undefined ? {} : { Accept: accept } }, (res) => {
      rec.headers = now();
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        rec.first ??= now();
        if (hashIt) hash.update(c);
        else chunks.push(c);
      });
      res.on('end', () => {
        rec.last = now();
        if (res.statusCode !== 200) reject(new Error(`${url}: ${res.statusCode}`));
        else resolve(Buffer.concat(chunks));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function watchLink(path: string, rec: ClientTimes, until: number): Promise<void> {
  while (now() < until) {
    if (await access(path).then(() => true, () => false)) {
      rec.linked = now();
      return;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** `--trace-gc` lines summed by kind: how many and how many ms. */
function gcSummary(lines: readonly string[]): string {
  const kinds = new Map<string, { n: number; ms: number }>();
  for (const l of lines) {
    const m = /ms: ([A-Za-z-]+)[^,]*?, ([\d.]+) \/ [\d.]+ ms/.exec(l) ?? /ms: ([A-Za-z-]+).*? ([\d.]+) \/ [\d.]+ ms/.exec(l);
    if (m === null) continue;
    const k = kinds.get(m[1] ?? '?') ?? { n: 0, ms: 0 };
    k.n++;
    k.ms += Number(m[2]);
    kinds.set(m[1] ?? '?', k);
  }
  const reasons = new Set(lines.filter((l) => l.includes('Mark-Compact')).map((l) => /\) (.*?);?\s*$/.exec(l)?.[1] ?? '?'));
  // Why each incremental marking (the start of a full GC) began, with the heap's size and limit then.
  const starts = lines.map((l) => /\[IncrementalMarking\] Start \((.*?)\): \(size\/limit\/slack\) v8: (\S+) \/ (\S+)/.exec(l)).filter((m) => m !== null).map((m) => `${m[1] ?? '?'} at ${m[2] ?? '?'} of ${m[3] ?? '?'}`);
  const started = starts.length > 0 ? `; marking started: ${starts.join(', ')}` : '';
  return `${[...kinds].map(([k, v]) => `${k} ${v.n}× ${v.ms.toFixed(0)} ms`).join(', ')}${reasons.size > 0 ? ` (full GCs: ${[...reasons].join('; ')})` : ''}${started}`;
}

/** CPU time (user + system, ms) process `pid` has used, from /proc. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) || 0) + (Number(fields[12]) || 0)) * 10; // clock ticks of 10 ms
}

async function main(): Promise<void> {
  const mb = Number(process.argv[2] ?? 50);
  const rounds = Number(process.argv[3] ?? 3);
  const work = await makeTempDir('berth-mirror-timeline-');
  const running: Running[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let proxy: Awaited<ReturnType<typeof timingProxy>> | undefined;
  try {
    const command = await buildBerth(join(work, 'build'), (l) => console.log(l));
    await mkdir(join(work, 'uc'));
    const upstream = await startRegistry2(join(work, 'upstream'), join(work, 'uc'));
    running.push(upstream);
    proxy = await timingProxy(upstream.url);
    const berth = await startBerth(join(work, 'berth'), work, {
      command, level: 'warn',
      // MIRROR_TIMELINE_PROF=<dir>: Berth writes a CPU profile there (on its exit).
      // MIRROR_TIMELINE_TRACE_GC=1: Berth traces its garbage collections, summed up per pull.
      nodeFlags: [
        ...(process.env['MIRROR_TIMELINE_PROF'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', process.env['MIRROR_TIMELINE_PROF']]),
        ...(process.env['MIRROR_TIMELINE_TRACE_GC'] === '1' ? ['--trace-gc', '--trace-incremental-marking'] : []),
        // MIRROR_TIMELINE_NODE_FLAGS='--a --b': more flags for Berth's node (V8 heap settings, say).
        ...(process.env['MIRROR_TIMELINE_NODE_FLAGS']?.split(' ').filter((f) => f !== '') ?? []),
      ],
      sections: ['proxy:', '  upstreams:', '    - prefix: docker.io', `      remoteurl: ${proxy.url}`, '      default: true'],
    });
    running.push(berth);
    const reg = await startRegistry2(join(work, 'registry2'), work, 30_000, ['proxy:', `  remoteurl: ${proxy.url}`]);
    running.push(reg);
    const url: Record<Target, string> = { berth: berth.url, registry2: reg.url };
    console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    let gcSeen = berth.server.output().split('\n').length - 1;
    let warmRepo = '';
    let warmBlobs: { digest: string; size: number }[] = [];
    for (let r = 0; r < rounds + 1; r++) {
      const seed = 500 + r;
      const bytes = r === 0 ? 1e6 : mb * 1e6;
      const m = mirrorImage(`tl-${seed}`, [Math.round(bytes * 0.5), Math.round(bytes * 0.3), Math.round(bytes * 0.2)], seed);
      const repo = `library/tl-${seed}`;
      await seedUpstream(upstream.url, repo, m, '1', 'multi');
      const order: Target[] = r % 2 === 0 ? ['berth', 'registry2'] : ['registry2', 'berth'];
      for (const t of order) {
        proxy.times.clear();
        const blobs = [m.image.config, ...m.image.layers.map((l) => l.gzip)];
        const recs = new Map<string, ClientTimes>(blobs.map((b) => [b.digest, {}]));
        const manifest: ClientTimes = {};
        const cpu0 = process.cpuUsage();
        const server0 = await cpuMs(t === 'berth' ? berth.server.pid : reg.server.pid);
        const t0 = now();
        const stored = t === 'berth' ? `docker.io/${repo}` : repo;
        const watching = blobs.map((b) =>
          watchLink(join(work, t, 'docker/registry/v2/repositories', stored, '_layers/sha256', b.digest.slice(7), 'link'), recs.get(b.digest) ?? {}, t0 + 20_000));
        await getTimed(`${url[t]}/v2/${repo}/manifests/1`, agent, 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', manifest, false);
        await Promise.all(blobs.map((b) => getTimed(`${url[t]}/v2/${repo}/blobs/${b.digest}`, agent, undefined, recs.get(b.digest) ?? {}, true)));
        const total = now() - t0;
        const gcLines = t === 'berth' ? berth.server.output().split('\n').slice(gcSeen) : [];
        if (t === 'berth') gcSeen += gcLines.length - 1;
        const cpu = process.cpuUsage(cpu0);
        const serverCpu = (await cpuMs(t === 'berth' ? berth.server.pid : reg.server.pid)) - server0;
        await Promise.all(watching);
        warmRepo = repo;
        warmBlobs = blobs.map((b) => ({ digest: b.digest, size: b.size }));
        if (r === 0) continue;
        const rel = (x: number | undefined): string => (x === undefined ? '   -' : (x - t0).toFixed(0).padStart(4));
        console.log(`\nround ${r} ${t}: pull ${total.toFixed(0)} ms; manifest client hdr ${rel(manifest.headers)} last ${rel(manifest.last)}; CPU of this process (client and upstream proxy) ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, of the mirror about ${serverCpu} ms (both till the pull ended)`);
        if (gcLines.some((l) => l.includes(' ms: '))) console.log(`  Berth's GCs during the pull: ${gcSummary(gcLines)}`);
        for (const [key, us] of proxy.times) if (!key.includes('/blobs/')) for (const u of us) console.log(`  upstream ${key.slice(0, 60)}: asked ${rel(u.asked)} answered ${rel(u.answered)} last ${rel(u.last)}`);
        console.log('  blob (bytes)            | upstream: asked answered first last | client: hdr first last | linked');
        for (const b of blobs) {
          const c = recs.get(b.digest) ?? {};
          const ups = [...proxy.times].filter(([k]) => k.endsWith(b.digest)).flatMap(([k, us]) => us.map((u) => `${k.split(' ')[0]} ${rel(u.asked)} ${rel(u.answered)} ${rel(u.first)} ${rel(u.last)}`));
          console.log(`  ${b.digest.slice(7, 19)} ${String(b.size).padStart(9)} | ${ups.join(' ; ')} | ${rel(c.headers)} ${rel(c.first)} ${rel(c.last)} | ${rel(c.linked)}`);
        }
        const others = [...proxy.times.keys()].filter((k) => !blobs.some((b) => k.endsWith(b.digest)) && !k.includes('/manifests/'));
        if (others.length > 0) console.log(`  other upstream requests: ${others.join(', ')}`);
      }
    }
    await clientFloor(agent, url, mb, warmRepo, warmBlobs);
    console.log(`\nload ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    agent.destroy();
    await proxy?.close();
    for (const r of running) await r.server.stop(process.env['MIRROR_TIMELINE_PROF'] === undefined ? 5_000 : 60_000).catch(() => undefined);
    await removeTempDir(work);
  }
}

/**
 * Warm pulls (blobs only, in parallel, hashed) of the last image through each mirror, and the same
 * sizes from a Node server in another process sending them from memory: the client's own floor.
 */
async function clientFloor(agent: Agent, url: Record<Target, string>, mb: number, repo: string, blobs: readonly { digest: string; size: number }[]): Promise<void> {
  const { spawn } = await import('node:child_process');
  const script = `const h=require('node:http');const b=require('node:crypto').randomBytes(${Math.ceil(mb * 1e6)});` +
    `const s=h.createServer((q,r)=>{const n=Number(q.url.slice(1));r.writeHead(200,{'Content-Length':n});r.end(b.subarray(0,n));});` +
    `s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  const pullAll = async (make: (b: { digest: string; size: number }) => string): Promise<number> => {
    const t0 = now();
    await Promise.all(blobs.map((b) => getTimed(make(b), agent, undefined, {}, true)));
    return now() - t0;
  };
  const samples: Record<string, number[]> = { berth: [], registry2: [], memory: [] };
  try {
    for (let i = 0; i < 7; i++) {
      samples['memory']?.push(await pullAll((b) => `http://127.0.0.1:${port}/${b.size}`));
      samples['berth']?.push(await pullAll((b) => `${url.berth}/v2/${repo}/blobs/${b.digest}`));
      samples['registry2']?.push(await pullAll((b) => `${url.registry2}/v2/${repo}/blobs/${b.digest}`));
    }
  } finally {
    child.kill();
  }
  console.log('\nwarm blob GETs of the last image (config and layers in parallel, hashed), ms, in order:');
  for (const [k, v] of Object.entries(samples)) console.log(`  ${k.padEnd(9)} median ${[...v].sort((a, b) => a - b)[3]?.toFixed(0)}: ${v.map((x) => x.toFixed(0)).join(' ')}`);
}

await main();
