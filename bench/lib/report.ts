/**
 * What a benchmark run reports: rows of samples per registry, their medians, how Berth compares, each
 * target of issue #8 met or missed, and the markdown file under bench/results/ naming the machine.
 *
 * A row has a unit, and the unit says which way is better: durations, latencies and memory are better
 * lower, throughput and request rates higher. The comparison column is always "how many times better
 * Berth does" (registry:2's time over Berth's, Berth's throughput over registry:2's, …), so above 1 is
 * Berth ahead whatever the unit, which is how the issue's targets (≥ 1.8×, ≥ 10×) read.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, type Target } from './servers.js';

/** `ms` a duration or latency; `MB/s` bytes per second / 10^6; `req/s`; `MiB` memory. */
export type Unit = 'ms' | 'MB/s' | 'req/s' | 'MiB';

const HIGHER_IS_BETTER: Readonly<Record<Unit, boolean>> = { ms: false, 'MB/s': true, 'req/s': true, MiB: false };

/** A target of the issue, judged on one row's medians. */
export interface Goal {
  /** As shown in the table, e.g. `≥ 1.8×`. */
  readonly label: string;
  /** Met or not, and by how much it is missed (empty when met). */
  judge(berth: number, registry2: number): { readonly met: boolean; readonly miss: string };
}

/** One measured scenario: samples per target, in `unit`. */
export interface Row {
  readonly scenario: string;
  readonly unit: Unit;
  readonly samples: Readonly<Record<Target, readonly number[]>>;
  /** A remark shown under the table (e.g. what one side ignores). */
  readonly note?: string;
  readonly goal?: Goal;
  /** No comparison column (a quantity near zero, such as memory growth). */
  readonly noRatio?: boolean;
}

/** What a family hands back to main. */
export interface FamilyReport {
  readonly family: string;
  readonly title: string;
  readonly rows: readonly Row[];
  /** Lines of context: tree shape, sanity checks, caveats. */
  readonly notes: readonly string[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * Runs `measure` for each target in turn, `rounds` times (A B then B A, the order alternating which side
 * goes first each round), and answers the samples per target. `measure` gets the round's index.
 */
export async function alternate(
  rounds: number,
  targets: readonly [Target, Target],
  measure: (t: Target, round: number) => Promise<number>,
): Promise<Record<Target, number[]>> {
  const samples: Record<Target, number[]> = { berth: [], registry2: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? targets : ([targets[1], targets[0]] as const);
    for (const t of order) samples[t].push(await measure(t, r));
  }
  return samples;
}

/**
 * `alternate` over any number of sides (e.g. Berth, Berth with workers, registry:2): each round runs every
 * side once, in the given order on even rounds and reversed on odd ones.
 */
export async function alternateSides<K extends string>(
  rounds: number,
  sides: readonly K[],
  measure: (side: K, round: number) => Promise<number>,
): Promise<Record<K, number[]>> {
  const samples = Object.fromEntries(sides.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const k of order) samples[k].push(await measure(k, r));
  }
  return samples;
}

/** Milliseconds taken by `op`, and what it answered. */
export async function timed<T>(op: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await op();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return 'n/a';
  switch (unit) {
    case 'ms':
      return formatMs(value);
    case 'MB/s':
      return `${value.toFixed(value >= 100 ? 0 : 1)} MB/s`;
    case 'req/s':
      return `${value.toFixed(0)} req/s`;
    case 'MiB':
      return `${value.toFixed(1)} MiB`;
  }
}

/** How many times better Berth does than registry:2 on this row's medians (above 1: Berth ahead). */
export function advantage(row: Row): number {
  const b = median(row.samples.berth);
  const r = median(row.samples.registry2);
  if (!(b > 0) || !(r > 0)) return Number.NaN;
  return HIGHER_IS_BETTER[row.unit] ? b / r : r / b;
}

function formatAdvantage(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return `${x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2)}×`;
}

/** Goal: Berth at least `min` times better than registry:2. */
export function atLeast(min: number): Goal {
  return {
    label: `≥ ${min}×`,
    judge(b, r) {
      const x = b > 0 && r > 0 ? b / r : Number.NaN;
      return { met: x >= min, miss: Number.isFinite(x) ? `missed by ${((1 - x / min) * 100).toFixed(0)}%` : 'missed' };
    },
  };
}

/** Goal for a higher-is-better row seen as a ratio: see atLeast; for lower-is-better rows, inverted. */
export function atLeastFor(unit: Unit, min: number): Goal {
  if (HIGHER_IS_BETTER[unit]) return atLeast(min);
  const inner = atLeast(min);
  return { label: inner.label, judge: (b, r) => inner.judge(r, b) };
}

/** Goal: Berth's median at most `max` (in the row's unit). */
export function atMost(max: number, unit: Unit): Goal {
  return {
    label: `Berth ≤ ${formatValue(max, unit)}`,
    judge: (b) => ({ met: b <= max, miss: `missed by ${formatValue(b - max, unit)}` }),
  };
}

/** Goal: Berth's median below `limit` (a figure from another row, named by `what`). */
export function below(limit: number, what: string, unit: Unit): Goal {
  return {
    label: `Berth < ${what} (${formatValue(limit, unit)})`,
    judge: (b) => ({ met: b < limit, miss: `missed by ${formatValue(b - limit, unit)}` }),
  };
}

function goalCell(row: Row): string {
  if (row.goal === undefined) return '';
  const v = row.goal.judge(median(row.samples.berth), median(row.samples.registry2));
  return `${row.goal.label}: ${v.met ? 'met' : `**${v.miss}**`}`;
}

const HEADER = ['scenario', 'Berth', 'registry:2', 'Berth vs registry:2', 'target'] as const;

function cells(row: Row): string[] {
  const b = median(row.samples.berth);
  const r = median(row.samples.registry2);
  return [row.scenario, formatValue(b, row.unit), formatValue(r, row.unit), row.noRatio === true ? '' : formatAdvantage(advantage(row)), goalCell(row)];
}

/** The table as aligned plain text, for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const all = [[...HEADER], ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string =>
    c.map((x, i) => (i === 0 || i === HEADER.length - 1 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(all[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

export function markdownTable(rows: readonly Row[]): string {
  const line = (c: readonly string[]): string => `| ${c.join(' | ')} |`;
  return [line(HEADER), '|---|--:|--:|--:|---|', ...rows.map((r) => line(cells(r)))].join('\n');
}

/** The lines under the table: what the comparison column means, and each row's note. */
export function legend(rows: readonly Row[]): string[] {
  return [
    'Medians. "Berth vs registry:2" is how many times better Berth does (time, latency and memory: registry:2 ÷ Berth; throughput and requests/s: Berth ÷ registry:2); above 1 Berth is ahead.',
    ...rows.filter((r) => r.note !== undefined).map((r) => `${r.scenario}: ${r.note ?? ''}`),
  ];
}

/**
 * The checkout's commit (read without taking git's index lock, so a concurrent commit is not disturbed),
 * marked when tracked files differ from it. Untracked files are not counted: a results file written by an
 * earlier run and not yet committed changes nothing that runs.
 */
function commitOf(): string {
  try {
    const git = (args: string[]): string =>
      execFileSync('git', ['--no-optional-locks', ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 5_000 }).trim();
    const commit = git(['rev-parse', '--short', 'HEAD']);
    return git(['status', '--porcelain', '--untracked-files=no']) !== '' ? `${commit} (with uncommitted changes)` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** The machine, for the results file: CPUs, memory, kernel, Node, and the checkout's commit. */
export function machine(): string[] {
  const cpu = cpus();
  return [
    `CPUs: ${cpu.length} (nproc) × ${cpu[0]?.model.trim() ?? 'unknown model'}`,
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `kernel: Linux ${release()}`,
    `Node.js: ${process.version}`,
    `Berth: ${commitOf()}`,
  ];
}

function rawSamples(rows: readonly Row[]): string {
  const fmt = (xs: readonly number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
  return rows.map((r) => `- ${r.scenario} (${r.unit}): Berth [${fmt(r.samples.berth)}]; registry:2 [${fmt(r.samples.registry2)}]`).join('\n');
}

/**
 * Writes the reports to bench/results/<name>-<YYYY-MM-DD>[-n].md: the machine, one table of every
 * row, the notes, each family's context and every raw sample. Answers the path.
 */
export async function writeResults(name: string, command: string, reports: readonly FamilyReport[], extra: readonly string[]): Promise<string> {
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  let file = join(dir, `${name}-${date}.md`);
  for (let n = 2; existsSync(file); n++) file = join(dir, `${name}-${date}-${n}.md`);
  const rows = reports.flatMap((r) => r.rows);
  const title = reports.length === 1 ? (reports[0]?.title ?? name) : 'Berth vs registry:2: the benchmark suite';
  const text = [
    `# ${title}`,
    '',
    `Run ${new Date().toISOString()} with \`${command}\`. Results vary by machine and load: compare the ratios of one run.`,
    '',
    '## Machine',
    '',
    ...[...machine(), ...extra].map((l) => `- ${l}`),
    '',
    '## Results',
    '',
    markdownTable(rows),
    '',
    ...legend(rows).map((l) => `- ${l}`),
    '',
    ...reports.flatMap((r) => [`## Context: ${r.family}`, '', ...r.notes.map((l) => `- ${l}`), '']),
    '## Samples (in run order)',
    '',
    rawSamples(rows),
    '',
  ].join('\n');
  await writeFile(file, text);
  return file;
}
