/**
 * `npm run bench -- [family …] [--quick] [--from-source] [--cpu-prof] [--heap-prof] [--<option> N …]`:
 * runs scenario families of the benchmark suite against Berth and docker-registry 2.8 on this machine
 * (every family when none is named), prints one table of medians, the comparison and the issue's
 * targets, and writes it as markdown to bench/results/<family or "all">-<date>.md with the machine.
 *
 * Berth is built first as `npm run build` builds it (scripts/build-server.ts's bundle, into a temporary
 * directory) and run as `node dist/main.js`, as in production; `--from-source` runs it through tsx instead (starts sooner, for
 * development). `--cpu-prof` / `--heap-prof` make Berth write V8 profiles into a directory under the
 * system's temporary directory (kept, and named at the end) and print the functions with the most self
 * time (bench/lib/cpuprofile.ts).
 */
import { mkdir } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobsFamily } from './blobs.js';
import { dockerFamily } from './docker.js';
import { listingFamily } from './listing.js';
import { manifestsFamily } from './manifests.js';
import { mirrorFamily } from './mirror.js';
import { mixedFamily } from './mixed.js';
import { s3Family } from './s3.js';
import { usageFamily } from './usage.js';
import { summarizeProfiles } from './lib/cpuprofile.js';
import { type Family, type RunContext, parseOptions } from './lib/family.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { type FamilyReport, legend, textTable, writeResults } from './lib/report.js';
import { BERTH_TSX, buildBerth, registry2Version } from './lib/servers.js';
import { BENCH_TOOLS, ensureTools } from './lib/tools.js';

/** In the order `npm run bench` runs them. */
const FAMILIES: readonly Family[] = [blobsFamily, manifestsFamily, listingFamily, usageFamily, dockerFamily, s3Family, mirrorFamily, mixedFamily];

function usage(): string {
  return [
    'usage: npm run bench -- [family …] [--quick] [--from-source] [--cpu-prof] [--heap-prof] [--<option> N …]',
    '',
    'With no family, runs every family and writes one table. --quick: small sizes and short runs (the',
    'defaults in brackets). --from-source: run Berth through tsx instead of compiling it first.',
    '--cpu-prof / --heap-prof: Berth writes V8 profiles to $TMPDIR/berth-bench-profiles-<time>/ (kept).',
    'BERTH_BENCH_MAIN=<path>/dist/main.js: run that compiled Berth instead of compiling this checkout.',
    '',
    'families and their options (full run [quick]):',
    ...FAMILIES.map((f) =>
      [`  ${f.name}: ${f.summary}`, ...f.options.map((o) => `      --${o.name} N  ${o.help} (${o.full} [${o.quick}])`)].join('\n'),
    ),
    '',
  ].join('\n');
}

interface Invocation {
  readonly families: readonly Family[];
  readonly flags: ReadonlySet<string>;
  readonly options: readonly string[];
}

const SWITCHES = new Set(['--quick', '--from-source', '--cpu-prof', '--heap-prof']);

function parseArgs(argv: readonly string[]): Invocation | string {
  const families: Family[] = [];
  const flags = new Set<string>();
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (SWITCHES.has(a)) flags.add(a);
    else if (a.startsWith('--')) options.push(a, argv[++i] ?? '');
    else {
      const f = FAMILIES.find((x) => x.name === a);
      if (f === undefined) return `unknown family ${a}`;
      if (!families.includes(f)) families.push(f);
    }
  }
  return { families: families.length > 0 ? families : FAMILIES, flags, options };
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.some((a) => a === 'help' || a === '--help' || a === '-h')) {
    process.stdout.write(usage());
    return 0;
  }
  const inv = parseArgs(argv);
  if (typeof inv === 'string') {
    process.stderr.write(`${inv}\n${usage()}`);
    return 2;
  }
  const parsed = parseOptions(inv.families, inv.options, inv.flags.has('--quick'));
  if (typeof parsed === 'string') {
    process.stderr.write(`${parsed}\n${usage()}`);
    return 2;
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  await ensureTools(BENCH_TOOLS, log);
  const version = await registry2Version();
  const build = await makeTempDir('berth-bench-build-');
  try {
    let berth = BERTH_TSX;
    const prebuilt = process.env['BERTH_BENCH_MAIN'];
    if (prebuilt !== undefined && prebuilt !== '') {
      // A Berth compiled elsewhere (another commit's dist/main.js), to compare two commits with one bench.
      berth = { label: `node ${prebuilt} (BERTH_BENCH_MAIN)`, cmd: process.execPath, args: [prebuilt] };
    } else if (!inv.flags.has('--from-source')) {
      log('building Berth (scripts/build-server.ts) …');
      berth = await buildBerth(build, log);
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const profDir = join(tmpdir(), `berth-bench-profiles-${stamp}`); // kept after the run, outside the checkout
    const profiling = inv.flags.has('--cpu-prof') || inv.flags.has('--heap-prof');
    if (profiling) await mkdir(profDir, { recursive: true });
    const ctx: RunContext = {
      log,
      berth,
      ...(inv.flags.has('--cpu-prof') && { cpuProfDir: profDir }),
      ...(inv.flags.has('--heap-prof') && { heapProfDir: profDir }),
    };
    const loadAtStart = loadAverage();
    const reports: FamilyReport[] = [];
    for (const f of inv.families) {
      log(`== ${f.name}`);
      reports.push(await f.run(parsed.get(f) ?? {}, ctx));
    }
    const name = inv.families.length === 1 ? (inv.families[0]?.name ?? 'bench') : inv.families.length === FAMILIES.length ? 'all' : inv.families.map((f) => f.name).join('+');
    const command = `npm run bench -- ${argv.join(' ')}`.trim();
    const loads = `load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAverage()} at the end`;
    const extra = [`registry:2: ${version}`, `Berth ran as: ${berth.label}`, loads, ...(inv.flags.has('--quick') ? ['quick run (--quick): small sizes, not the issue\'s figures'] : [])];
    const file = await writeResults(name, command, reports, extra);
    const rows = reports.flatMap((r) => r.rows);
    process.stdout.write(`\n${textTable(rows)}\n\n${legend(rows).map((l) => `* ${l}`).join('\n')}\n\nwritten to ${file}\n`);
    if (ctx.cpuProfDir !== undefined) process.stdout.write(`\n${await summarizeProfiles(profDir, 25)}\n`);
    if (profiling) process.stdout.write(`profiles in ${profDir}\n`);
    return 0;
  } finally {
    await removeTempDir(build);
  }
}

/** The machine's load averages now, as uptime prints them. */
function loadAverage(): string {
  return loadavg().map((l) => l.toFixed(2)).join(', ');
}

// An interrupted run exits through process.exit, whose hooks stop every child by its PID and remove
// the temporary directories (bench/lib/proc.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
