/**
 * CPU time from /proc, for saying who used the cores during a sample: a process (all its threads), a
 * process with its descendants (Berth's workers), the children this process has waited for (wrk, once
 * it exits), and the whole machine's busy share. Linux only; times are in clock ticks of 1/100 s (x86-64).
 */
import { readFile, readdir } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name (fields[0] is field 3, the state). */
async function statFields(pid: number | 'self'): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (user + system, all threads) `pid` has used so far, in seconds (fields 14 and 15). */
export async function cpuSeconds(pid: number): Promise<number> {
  const f = await statFields(pid);
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

/** The live descendants of `pid` (children of every thread, recursively). */
export async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tasks) {
    const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const child of text.trim().split(/\s+/).filter((s) => s !== '').map(Number)) found.push(child, ...(await descendants(child)));
  }
  return found;
}

/** CPU seconds used so far by `pid` and its live descendants (a primary and its workers). */
export async function treeCpuSeconds(pid: number): Promise<number> {
  let total = await cpuSeconds(pid);
  for (const child of await descendants(pid)) total += await cpuSeconds(child).catch(() => 0);
  return total;
}

/** CPU seconds used by this process's children that have exited and been waited for (fields 16 and 17). */
export async function reapedChildrenCpuSeconds(): Promise<number> {
  const f = await statFields('self');
  return (Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND;
}

/** The whole machine's CPU time so far, busy and total, in seconds summed over every CPU (/proc/stat). */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const [, ...values] = line.trim().split(/\s+/);
  const n = values.map(Number); // user nice system idle iowait irq softirq steal guest guest_nice
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
  const idle = (n[3] ?? 0) + (n[4] ?? 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** CPU seconds used so far by each thread of `pid`, by thread id (the main thread's id is `pid`). */
export async function threadCpuSeconds(pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const text = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (text === '') continue;
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND);
  }
  return out;
}

/** CPU seconds of `pid`'s main thread and of its other threads together, between two readings of threadCpuSeconds. */
export function mainAndOthers(pid: number, before: Map<number, number>, after: Map<number, number>): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const [tid, t] of after) {
    const d = t - (before.get(tid) ?? 0);
    if (tid === pid) main += d;
    else others += d;
  }
  return { main, others };
}

/** CPU seconds used so far by every process on the machine (all threads; kernel threads included), with its command name, by pid. */
export async function allProcessesCpuSeconds(): Promise<Map<number, { comm: string; seconds: number }>> {
  const out = new Map<number, { comm: string; seconds: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const text = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (text === '') continue;
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    out.set(Number(entry), { comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), seconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND });
  }
  return out;
}

/** The `n` processes that used the most CPU between two readings of allProcessesCpuSeconds, leaving out `skip`: "comm[pid] seconds". */
export function busiestBetween(
  before: Map<number, { comm: string; seconds: number }>,
  after: Map<number, { comm: string; seconds: number }>,
  skip: ReadonlySet<number>,
  n: number,
): string[] {
  return [...after]
    .filter(([pid]) => !skip.has(pid))
    .map(([pid, a]) => ({ pid, comm: a.comm, used: a.seconds - (before.get(pid)?.seconds ?? 0) }))
    .filter((p) => p.used >= 0.05)
    .sort((x, y) => y.used - x.used)
    .slice(0, n)
    .map((p) => `${p.comm}[${p.pid}] ${p.used.toFixed(2)} s`);
}

/** User and system CPU seconds `pid` has used so far (fields 14 and 15 apart). */
export async function cpuSplit(pid: number): Promise<{ readonly user: number; readonly system: number }> {
  const f = await statFields(pid);
  return { user: Number(f[11]) / TICKS_PER_SECOND, system: Number(f[12]) / TICKS_PER_SECOND };
}
