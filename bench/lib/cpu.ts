/** CPU time of processes, from /proc (Linux). */
import { readFile } from 'node:fs/promises';

/**
 * CPU time (user + system, all threads) `pid` has used so far, in seconds, from /proc/<pid>/stat
 * (fields 14 and 15 after the command name, in clock ticks of 1/100 s as on Linux x86-64).
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const fields = await statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU time (user + system) of `pid`'s children that it has waited for, in seconds (fields 16 and 17:
 * cutime, cstime). For this process: every finished child it spawned (curl runs, say).
 */
export async function childrenCpuSeconds(pid: number | 'self'): Promise<number> {
  const fields = await statFields(pid);
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** The fields of /proc/<pid>/stat after the command name; [0] is field 3 (state). */
async function statFields(pid: number | 'self'): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User and system CPU seconds `pid` has used so far (fields 14 and 15 apart). */
export async function cpuSplit(pid: number): Promise<{ readonly user: number; readonly system: number }> {
  const fields = await statFields(pid);
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}
