/**
 * Shared by every scenario family: alternating rounds (A B A B …), medians, the Berth-vs-registry:2
 * table printed on the terminal and written as markdown to bench/results/, and the machine it ran on.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, type Target } from './servers.js';

/** One measured scenario: samples per target, in the unit of `unit`. */
export interface Row {
  readonly scenario: string;
  /** `ms`: a duration (lower is better). */
  readonly unit: 'ms';
  readonly samples: Readonly<Record<Target, readonly number[]>>;
  /** A remark shown under the table (e.g. what one side ignores). */
  readonly note?: string;
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
 * Runs `measure` for each target in turn, `rounds` times (A B A B …, the order alternating which side
 * goes first each round), and answers the samples per target.
 */
export async function alternate(
  rounds: number,
  targets: readonly [Target, Target],
  measure: (t: Target) => Promise<number>,
): Promise<Record<Target, number[]>> {
  const samples: Record<Target, number[]> = { berth: [], registry2: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? targets : ([targets[1], targets[0]] as const);
    for (const t of order) samples[t].push(await measure(t));
  }
  return samples;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** registry:2 / Berth for durations: above 1 Berth is faster. */
export function formatRatio(berth: number, registry2: number): string {
  if (!(berth > 0) || !Number.isFinite(registry2)) return 'n/a';
  const r = registry2 / berth;
  const digits = r >= 100 ? 0 : r >= 10 ? 1 : 2;
  return r >= 1 ? `${r.toFixed(digits)}× faster` : `${r.toFixed(2)}× (Berth slower)`;
}

const HEADER = ['scenario', 'Berth median', 'registry:2 median', 'registry:2 / Berth'] as const;

function cells(row: Row): string[] {
  const b = median(row.samples.berth);
  const r = median(row.samples.registry2);
  return [row.scenario, formatMs(b), formatMs(r), formatRatio(b, r)];
}

/** The table as aligned plain text, for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const all = [[...HEADER], ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ');
  return [line(all[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

export function markdownTable(rows: readonly Row[]): string {
  const line = (c: readonly string[]): string => `| ${c.join(' | ')} |`;
  return [line(HEADER), '|---|--:|--:|--:|', ...rows.map((r) => line(cells(r)))].join('\n');
}

/** The machine, for the results file: CPUs, memory, kernel, Node, and the checkout's commit. */
export function machine(): string[] {
  const cpu = cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 5_000 }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 5_000 }).trim() !== '';
    if (dirty) commit += ' (with uncommitted changes)';
  } catch {
    // not a git checkout
  }
  return [
    `CPUs: ${cpu.length} (nproc) × ${cpu[0]?.model.trim() ?? 'unknown model'}`,
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `kernel: Linux ${release()}`,
    `Node.js: ${process.version}`,
    `Berth: ${commit}`,
  ];
}

function rawSamples(rows: readonly Row[]): string {
  return rows
    .map((r) => `- ${r.scenario}: Berth [${r.samples.berth.map((x) => x.toFixed(2)).join(', ')}] ms; registry:2 [${r.samples.registry2.map((x) => x.toFixed(2)).join(', ')}] ms`)
    .join('\n');
}

/** Writes the report to bench/results/<family>-<YYYY-MM-DD>[-n].md; answers the path. */
export async function writeResults(report: FamilyReport, extra: readonly string[]): Promise<string> {
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  let file = join(dir, `${report.family}-${date}.md`);
  for (let n = 2; existsSync(file); n++) file = join(dir, `${report.family}-${date}-${n}.md`);
  const notes = report.rows.filter((r) => r.note !== undefined).map((r) => `- ${r.scenario}: ${r.note ?? ''}`);
  const text = [
    `# ${report.title}`,
    '',
    `Run ${new Date().toISOString()} with \`npm run bench -- ${report.family}\`. Medians; the ratio is registry:2's time`,
    `divided by Berth's (above 1: Berth is faster). Results vary by machine and load.`,
    '',
    '## Machine',
    '',
    ...[...machine(), ...extra].map((l) => `- ${l}`),
    '',
    '## Results',
    '',
    markdownTable(report.rows),
    '',
    ...(notes.length > 0 ? ['Notes on scenarios:', '', ...notes, ''] : []),
    '## Context',
    '',
    ...report.notes.map((l) => `- ${l}`),
    '',
    '## Samples (ms, in run order)',
    '',
    rawSamples(report.rows),
    '',
  ].join('\n');
  await writeFile(file, text);
  return file;
}
