/**
 * Who had the cores during a short window (a 30-70 ms pull), from /proc, at nanosecond resolution:
 * each thread's on-CPU time and the time it waited runnable for a CPU (`/proc/<pid>/task/<tid>/schedstat`),
 * for every thread on the machine (kernel threads included), with the machine's disk writes
 * (/proc/diskstats) and dirty and writeback pages (/proc/vmstat). A snapshot reads a few hundred small
 * files (10-30 ms; a few processes' threads about 1 ms): take one before and one after the window,
 * outside what is timed. Read synchronously, so this process's thread pool takes no part.
 * Linux only; bench code only (the mirror family's MIRROR_TRACE).
 */
import { readFileSync, readdirSync } from 'node:fs';

/** One thread's schedstat: nanoseconds on a CPU and waiting runnable, so far. */
interface ThreadTimes {
  readonly pid: number;
  /** The process's command name (its main thread's). */
  readonly proc: string;
  /** The thread's own name (libuv-worker, V8 DefaultWorke, kworker/…). */
  readonly comm: string;
  readonly runNs: number;
  readonly waitNs: number;
}

export interface Snapshot {
  readonly at: number;
  readonly threads: ReadonlyMap<number, ThreadTimes>;
  /** Sectors (512 B) written and milliseconds spent writing, all disks (whole disks, not partitions). */
  readonly sectorsWritten: number;
  readonly writeMs: number;
  /** Pages dirty and under writeback (/proc/vmstat nr_dirty, nr_writeback). */
  readonly dirtyPages: number;
  readonly writebackPages: number;
  /** /proc/stat's first line: user nice system idle iowait irq softirq steal … in ticks of 10 ms, all CPUs. */
  readonly cpuTicks: readonly number[];
}

/** A small /proc file's text, '' when it is gone (a thread that ended). Synchronous: this process's thread pool stays out of the picture. */
function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The schedstat of every thread of `pids` (every process on the machine when undefined: a few hundred
 * files, 10-30 ms), the disks' write counters, the dirty pages and the machine's CPU ticks, now.
 */
export function snapshot(pids?: Iterable<number>): Snapshot {
  const at = performance.now();
  const threads = new Map<number, ThreadTimes>();
  const entries = pids === undefined ? list('/proc').filter((e) => /^\d+$/.test(e)) : [...pids].map(String);
  for (const entry of entries) {
    const pid = Number(entry);
    const proc = read(`/proc/${entry}/comm`).trim();
    for (const tid of list(`/proc/${entry}/task`)) {
      const text = read(`/proc/${entry}/task/${tid}/schedstat`);
      const [run, wait] = text.trim().split(' ').map(Number);
      if (run === undefined || wait === undefined || Number.isNaN(run)) continue;
      threads.set(Number(tid), { pid, proc, comm: tid === entry ? proc : read(`/proc/${entry}/task/${tid}/comm`).trim(), runNs: run, waitNs: wait });
    }
  }
  let sectorsWritten = 0;
  let writeMs = 0;
  for (const line of read('/proc/diskstats').split('\n')) {
    const f = line.trim().split(/\s+/);
    // whole disks only (vda, sda, nvme0n1), not their partitions
    if (f.length < 11 || !/^(vd[a-z]+|sd[a-z]+|nvme\d+n\d+|xvd[a-z]+)$/.test(f[2] ?? '')) continue;
    sectorsWritten += Number(f[9]);
    writeMs += Number(f[10]);
  }
  const cpu = (read('/proc/stat').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const vm = read('/proc/vmstat');
  const field = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(vm)?.[1] ?? NaN);
  return { at, threads, sectorsWritten, writeMs, dirtyPages: field('nr_dirty'), writebackPages: field('nr_writeback'), cpuTicks: cpu };
}

/** What ran between two snapshots: per group of threads, ms on a CPU and ms waiting for one. */
export interface Window {
  readonly ms: number;
  /** By group name (see `group`), sorted by ms on a CPU, largest first. */
  readonly groups: ReadonlyArray<{ readonly name: string; readonly runMs: number; readonly waitMs: number }>;
  readonly mbWritten: number;
  readonly diskWriteMs: number;
  readonly dirtyMbBefore: number;
  readonly writebackMbBefore: number;
  /** The whole machine's busy CPU ms (not idle, not iowait) and steal ms, from /proc/stat's 10 ms ticks. */
  readonly busyMs: number;
  readonly stealMs: number;
}

/**
 * Names a thread's group: `label` of its process when `pids` names it ("berth main", "berth libuv-worker",
 * "berth V8 DefaultWorke", …), else kernel threads by kind ("kworker", "kdamond", …) and other
 * processes by command name.
 */
function group(tid: number, t: ThreadTimes, pids: ReadonlyMap<number, string>): string {
  const label = pids.get(t.pid);
  if (label !== undefined) return tid === t.pid ? `${label} main` : `${label} others`;
  return t.proc.replace(/[/:].*$/, '');
}

/** The CPU use between `a` and `b`, grouped by `pids` (pid → label); groups under 0.5 ms on a CPU and 0.5 ms waiting are left out. */
export function between(a: Snapshot, b: Snapshot, pids: ReadonlyMap<number, string>): Window {
  const sums = new Map<string, { runMs: number; waitMs: number }>();
  for (const [tid, after] of b.threads) {
    const before = a.threads.get(tid);
    const run = (after.runNs - (before?.runNs ?? 0)) / 1e6;
    const wait = (after.waitNs - (before?.waitNs ?? 0)) / 1e6;
    if (run <= 0 && wait <= 0) continue;
    const name = group(tid, after, pids);
    const s = sums.get(name) ?? { runMs: 0, waitMs: 0 };
    s.runMs += run;
    s.waitMs += wait;
    sums.set(name, s);
  }
  const groups = [...sums].map(([name, s]) => ({ name, ...s })).filter((g) => g.runMs >= 0.5 || g.waitMs >= 0.5).sort((x, y) => y.runMs - x.runMs);
  return {
    ms: b.at - a.at,
    groups,
    mbWritten: ((b.sectorsWritten - a.sectorsWritten) * 512) / 1e6,
    diskWriteMs: b.writeMs - a.writeMs,
    dirtyMbBefore: (a.dirtyPages * 4096) / 1e6,
    writebackMbBefore: (a.writebackPages * 4096) / 1e6,
    busyMs: 10 * [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + ((b.cpuTicks[i] ?? 0) - (a.cpuTicks[i] ?? 0)), 0),
    stealMs: 10 * ((b.cpuTicks[7] ?? 0) - (a.cpuTicks[7] ?? 0)),
  };
}

/** One line for a log: the window, disk writes, dirty pages before, then each group's run/wait ms. */
export function formatWindow(w: Window): string {
  const g = w.groups.map((x) => `${x.name} ${x.runMs.toFixed(1)}/${x.waitMs.toFixed(1)}`).join(', ');
  const known = w.groups.reduce((sum, x) => sum + x.runMs, 0);
  return `window ${w.ms.toFixed(1)} ms, machine busy ${w.busyMs} ms (10 ms ticks; the threads below ${known.toFixed(0)} ms; steal ${w.stealMs}); disk ${w.mbWritten.toFixed(1)} MB written (${w.diskWriteMs} ms); dirty ${w.dirtyMbBefore.toFixed(0)} MB, writeback ${w.writebackMbBefore.toFixed(0)} MB before; run/wait ms: ${g}`;
}
