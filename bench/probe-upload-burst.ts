/**
 * Hand-run probe (not a family; issue #19): where Berth's resident memory goes during and after a burst
 * of concurrent monolithic uploads, for one or more builds side by side, alternating. Each build
 * (NAME=path/to/main.js, then optionally `::ENV=VALUE` and `::--node-flag`, as many as wanted) runs
 * over an empty root, logging warnings only (as the blobs family). Per build and round it prints, at
 * start, at the peak of the burst, 1 s and 5 s after it, and after `PROBE_AFTER` uploads of 256 KiB
 * (8 at a time, as the blobs family's memory-growth scenario) taken twice:
 *   - VmRSS, and /proc/<pid>/smaps split into glibc's main heap (`[heap]`), glibc's thread arenas
 *     (64 MiB-aligned anonymous heaps with their reserved tail), and the other anonymous mappings (V8's
 *     heap pages, mapped ArrayBuffers, malloc's own large mappings, stacks), file-backed mappings apart;
 *   - from inside the process (a signal handler loaded with `--import`, no Berth code): V8's heap in use and
 *     committed, its young and old spaces, and `external` / `arrayBuffers` (memory held by Buffers, most
 *     of it malloc's); the last snapshot is taken again after a full collection (`gc()`, the hook's own).
 * Also the burst's wall time, and the peak VmRSS during it (the bench's lib/rss.ts).
 *   flock -x /tmp/berth-bench.lock npx tsx bench/probe-upload-burst.ts A=/x/dist/main.js B=/y/dist/main.js::MALLOC_ARENA_MAX=2
 * PROBE_ROUNDS (2), PROBE_CONCURRENT (100), PROBE_SIZE_MIB (10), PROBE_AFTER (1000).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobDigest } from './lib/blobdata.js';
import { uploadMonolithic } from './lib/client.js';
import { peakWatcher, rssMiB } from './lib/rss.js';
import { startBerth } from './lib/servers.js';
import { parseBuildArg } from './lib/builds.js';

const MiB = 1024 * 1024;
const rounds = Number(process.env['PROBE_ROUNDS'] ?? 2);
const concurrent = Number(process.env['PROBE_CONCURRENT'] ?? 100);
const size = Number(process.env['PROBE_SIZE_MIB'] ?? 10) * MiB;
const after = Number(process.env['PROBE_AFTER'] ?? 1000);

const builds = process.argv.slice(2).map(parseBuildArg);

/**
 * The hook loaded into Berth with `--import`: on SIGUSR2 it writes process.memoryUsage() and V8's heap
 * spaces to $BERTH_PROBE_MEMORY as JSON, after a full collection when `$BERTH_PROBE_MEMORY.gc` exists.
 */
const HOOK = [
  "import { existsSync, writeFileSync } from 'node:fs';",
  "import { getHeapSpaceStatistics } from 'node:v8';",
  "import { runInNewContext } from 'node:vm';",
  "import { setFlagsFromString } from 'node:v8';",
  "setFlagsFromString('--expose-gc'); const gc = runInNewContext('gc'); setFlagsFromString('--no-expose-gc');",
  "process.on('SIGUSR2', () => {",
  "  const file = process.env.BERTH_PROBE_MEMORY;",
  "  if (existsSync(file + '.gc')) gc();",
  "  const spaces = getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: s.space_size, used: s.space_used_size, resident: s.physical_space_size }));",
  "  writeFileSync(file, JSON.stringify({ usage: process.memoryUsage(), spaces }));",
  '});',
].join('\n');

interface Inside {
  usage: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
  spaces: { name: string; size: number; used: number; resident: number }[];
}

async function inside(pid: number, file: string, collect: boolean): Promise<Inside> {
  await rm(file, { force: true });
  if (collect) await writeFile(`${file}.gc`, '');
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 20));
  const report = JSON.parse(await readFile(file, 'utf8')) as Inside;
  await rm(`${file}.gc`, { force: true });
  return report;
}

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  name: string;
  rssKiB: number;
}

async function mappings(pid: number): Promise<Mapping[]> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head?.[1] !== undefined && head[2] !== undefined && head[3] !== undefined) {
      out.push({ start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perms: head[3], name: head[4] ?? '', rssKiB: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    const last = out[out.length - 1];
    if (rss?.[1] !== undefined && last !== undefined) last.rssKiB = Number(rss[1]);
  }
  return out;
}

const ARENA = 64n * BigInt(MiB);

/** Resident MiB by kind: glibc's main heap, its thread arenas, other anonymous memory, files. */
function split(maps: Mapping[]): { heap: number; arenas: number; arenaCount: number; anon: number; files: number; topAnon: string } {
  let heap = 0;
  let arenas = 0;
  let arenaCount = 0;
  let anon = 0;
  let files = 0;
  const others: Mapping[] = [];
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    if (m === undefined) continue;
    if (m.name === '[heap]') heap += m.rssKiB;
    else if (m.name.startsWith('/')) files += m.rssKiB;
    else if (m.name !== '') anon += m.rssKiB; // stack, vdso, vvar
    else {
      // A thread arena's heap: 64 MiB-aligned, read-write at its start, the rest of the 64 MiB reserved (---p).
      const next = maps[i + 1];
      const isArena = m.start % ARENA === 0n && m.perms.startsWith('rw') && next !== undefined && next.start === m.end && next.perms.startsWith('---') && next.end - m.start === ARENA && next.name === '';
      if (isArena) {
        arenas += m.rssKiB;
        arenaCount += 1;
      } else {
        anon += m.rssKiB;
        others.push(m);
      }
    }
  }
  const topAnon = others
    .sort((a, b) => b.rssKiB - a.rssKiB)
    .slice(0, 4)
    .map((m) => `${(m.rssKiB / 1024).toFixed(1)}/${(Number(m.end - m.start) / MiB).toFixed(1)}`)
    .join(' ');
  return { heap: heap / 1024, arenas: arenas / 1024, arenaCount, anon: anon / 1024, files: files / 1024, topAnon };
}

const f = (bytes: number): string => (bytes / MiB).toFixed(1);

async function snapshot(label: string, pid: number, file: string, collect = false): Promise<string> {
  // After a collection the mappings are read after it; otherwise before (the hook's own work changes little).
  const first = collect ? await inside(pid, file, true) : undefined;
  const rss = await rssMiB(pid);
  const s = split(await mappings(pid));
  const i = first ?? (await inside(pid, file, false));
  const space = (name: string): string => {
    const sp = i.spaces.find((x) => x.name === name);
    return sp === undefined ? '-' : `${f(sp.used)}/${f(sp.resident)}`;
  };
  return (
    `  ${label.padEnd(22)} RSS ${rss.toFixed(1)} | [heap] ${s.heap.toFixed(1)}, arenas ${s.arenas.toFixed(1)} (${s.arenaCount}), other anon ${s.anon.toFixed(1)} (largest rss/size ${s.topAnon}), files ${s.files.toFixed(1)}` +
    ` | V8 used/committed ${f(i.usage.heapUsed)}/${f(i.usage.heapTotal)} (new ${space('new_space')}, old ${space('old_space')}, large ${space('large_object_space')}), external ${f(i.usage.external)}, arrayBuffers ${f(i.usage.arrayBuffers)}`
  );
}

const summary = new Map<string, string[]>(builds.map((b) => [b.name, []]));

for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const work = await mkdtemp(join(tmpdir(), 'berth-probe-burst-'));
    const file = join(work, 'memory.json');
    for (const e of b.env) process.env[e.key] = e.value;
    process.env['BERTH_PROBE_MEMORY'] = file;
    const hook = `data:text/javascript,${encodeURIComponent(HOOK)}`;
    const berth = await startBerth(join(work, 'root'), work, { command: { cmd: process.execPath, args: [b.main], label: b.main }, level: 'warn', nodeFlags: ['--import', hook, ...b.nodeFlags] });
    for (const e of b.env) delete process.env[e.key];
    delete process.env['BERTH_PROBE_MEMORY'];
    const pid = berth.server.pid;
    try {
      const lines: string[] = [];
      const seeds = Array.from({ length: concurrent }, (_, i) => 10_000 + r * concurrent + i);
      for (const seed of seeds) blobDigest(seed, size);
      await uploadMonolithic(berth.url, 'probe/burst', 1, 64 * 1024); // one warm-up upload
      await new Promise((resolve) => setTimeout(resolve, 1000));
      lines.push(await snapshot('at start', pid, file));
      const watch = peakWatcher(pid);
      await watch.start();
      // The mid-burst snapshot: once half the bytes have been sent (counted by the uploads' ends is too late).
      let midTaken: Promise<string> | undefined;
      const mid = setTimeout(() => {
        midTaken = snapshot('mid-burst', pid, file);
      }, 1500);
      const began = process.hrtime.bigint();
      await Promise.all(seeds.map((seed) => uploadMonolithic(berth.url, 'probe/burst', seed, size)));
      const seconds = Number(process.hrtime.bigint() - began) / 1e9;
      clearTimeout(mid);
      const peak = await watch.stop();
      if (midTaken !== undefined) lines.push(await midTaken);
      lines.push(`  burst: ${concurrent} × ${size / MiB} MiB in ${seconds.toFixed(2)} s, peak VmRSS ${peak.toFixed(1)} MiB`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      lines.push(await snapshot('1 s after', pid, file));
      await new Promise((resolve) => setTimeout(resolve, 4000));
      lines.push(await snapshot('5 s after', pid, file));
      for (let k = 0; k < 2; k++) {
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < after) {
            const i = next++;
            await uploadMonolithic(berth.url, 'probe/small', 500_000 + r * 10_000 + k * after + i, 256 * 1024);
          }
        };
        await Promise.all(Array.from({ length: 8 }, worker));
        await new Promise((resolve) => setTimeout(resolve, 1000));
        lines.push(await snapshot(`after ${after} small #${k + 1}`, pid, file));
      }
      lines.push(await snapshot('then a full gc', pid, file, true));
      console.log(`round ${r + 1} ${b.name}:\n${lines.join('\n')}`);
      summary.get(b.name)?.push(`${seconds.toFixed(2)} s, peak ${peak.toFixed(1)}`);
    } finally {
      await berth.server.stop();
      await rm(work, { recursive: true, force: true });
    }
  }
}
for (const [name, runs] of summary) console.log(`${name}: bursts ${runs.join('; ')}`);
