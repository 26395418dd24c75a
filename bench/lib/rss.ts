/**
 * Resident memory of a server process, from /proc/<pid>/status (Linux): VmRSS now, and VmHWM, the peak
 * since the process started or since `resetPeak` (writing 5 to /proc/<pid>/clear_refs resets it;
 * Linux ≥ 4.0, and the process must be ours). A sampler backs the peak up where the reset is refused.
 */
import { readFile, writeFile } from 'node:fs/promises';

async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (m?.[1] === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]);
}

/** Resident memory now, MiB. */
export async function rssMiB(pid: number): Promise<number> {
  return (await statusKiB(pid, 'VmRSS')) / 1024;
}

/**
 * Watches `pid`'s peak resident memory over some work: `start()` resets the kernel's high-water mark
 * (when allowed) and samples VmRSS every `everyMs`; `stop()` answers the larger of the kernel's mark
 * and the samples, in MiB.
 */
export function peakWatcher(pid: number, everyMs = 50): { start(): Promise<void>; stop(): Promise<number> } {
  let timer: NodeJS.Timeout | undefined;
  let sampled = 0;
  let reset = false;
  return {
    async start() {
      reset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(
        () => true,
        () => false,
      );
      sampled = await rssMiB(pid);
      timer = setInterval(() => {
        rssMiB(pid).then(
          (v) => {
            sampled = Math.max(sampled, v);
          },
          () => undefined,
        );
      }, everyMs);
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      const hwm = reset ? (await statusKiB(pid, 'VmHWM')) / 1024 : 0;
      return Math.max(hwm, sampled);
    },
  };
}
