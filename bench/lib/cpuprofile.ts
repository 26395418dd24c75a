/**
 * Reading the V8 CPU profiles (`.cpuprofile`, written by `node --cpu-prof`) of a benchmark run: the
 * functions with the most self time, and self time summed per place (a package under node_modules,
 * Node's own `node:` modules, a file of Berth's src/, or V8's pseudo-nodes such as `(garbage
 * collector)` and `(idle)`). Self time is the sum of the sampling intervals that landed in a function.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './servers.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives, shortened: `koa`, `node:stream`, `src/storage/uploads/uploads.ts`, `(garbage collector)`. */
function place(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (nm?.[1] !== undefined) return nm[1];
  if (path.startsWith('node:')) return path;
  const rel = relative(REPO_ROOT, path);
  return rel.startsWith('..') ? path : rel.replace(/^.*?\bdist\//, 'dist/');
}

/** Self time in ms per function and per place, over one profile. */
function selfTimes(p: CpuProfile): { total: number; fns: Map<string, number>; places: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fns = new Map<string, number>();
  const places = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(id);
    if (node === undefined) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = place(url, functionName || '(anonymous)');
    const key = `${functionName || '(anonymous)'}  ${where}${url !== '' ? `:${lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + ms);
    places.set(where, (places.get(where) ?? 0) + ms);
    total += ms;
  });
  return { total, fns, places };
}

function top(m: Map<string, number>, n: number, total: number): string[] {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, ms]) => `  ${ms.toFixed(0).padStart(8)} ms ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}

/** A plain-text summary of one profile file: its top `n` functions and places by self time. */
export async function summarizeProfile(file: string, n: number): Promise<string> {
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const { total, fns, places } = selfTimes(p);
  return [
    `${file}: ${(total / 1000).toFixed(1)} s sampled`,
    `top ${n} functions by self time:`,
    ...top(fns, n, total),
    'self time by place:',
    ...top(places, 15, total),
  ].join('\n');
}

/** Summaries of every `.cpuprofile` in `dir`. */
export async function summarizeProfiles(dir: string, n: number): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (files.length === 0) return `no .cpuprofile in ${dir} (did Berth exit cleanly?)`;
  const parts: string[] = [];
  for (const f of files) parts.push(await summarizeProfile(join(dir, f), n));
  return parts.join('\n\n');
}

// `tsx bench/lib/cpuprofile.ts <file.cpuprofile> [N]` prints one summary.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const [file, n] = process.argv.slice(2);
  if (file !== undefined) process.stdout.write(`${await summarizeProfile(file, Number(n ?? 30))}\n`);
}
