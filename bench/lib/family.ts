/**
 * What a scenario family is to bench/main.ts: a name, numeric options (each with a full-run default,
 * a `--quick` default and bounds), and a run that answers a FamilyReport. The options of a run are
 * parsed here, once for every family in it: a flag applies to each family that declares it.
 */
import type { FamilyReport } from './report.js';
import type { BerthCommand } from './servers.js';

export interface OptionSpec {
  /** Without the dashes: `rounds` is `--rounds N`. */
  readonly name: string;
  readonly help: string;
  readonly full: number;
  readonly quick: number;
  readonly min: number;
  readonly max: number;
}

/** What every family's run gets besides its options. */
export interface RunContext {
  readonly log: (line: string) => void;
  /** How to run Berth (compiled, or from source). */
  readonly berth: BerthCommand;
  /** When set, Berth runs with `--cpu-prof` and writes its profiles here, one per family. */
  readonly cpuProfDir?: string;
  /** When set, Berth runs with `--heap-prof` and writes its profiles here. */
  readonly heapProfDir?: string;
}

export interface Family {
  readonly name: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  run(o: Readonly<Record<string, number>>, ctx: RunContext): Promise<FamilyReport>;
}

/** The rounds option every family declares (A B / B A rounds per scenario). */
export const roundsOption = (full: number, quick: number): OptionSpec => ({
  name: 'rounds',
  help: 'alternating rounds per scenario',
  full,
  quick,
  min: 1,
  max: 99,
});

/** The options of `families` from `args` (`--name N` pairs), quick defaults when `quick`. @returns an error message when bad */
export function parseOptions(families: readonly Family[], args: readonly string[], quick: boolean): Map<Family, Record<string, number>> | string {
  const result = new Map<Family, Record<string, number>>();
  for (const f of families) result.set(f, Object.fromEntries(f.options.map((o) => [o.name, quick ? o.quick : o.full])));
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i] ?? '';
    const name = flag.replace(/^--/, '');
    const raw = args[i + 1];
    const specs = families.flatMap((f) => f.options.filter((o) => o.name === name).map((o) => [f, o] as const));
    if (!flag.startsWith('--') || specs.length === 0) return `unknown option ${flag} for ${families.map((f) => f.name).join(', ')}`;
    const value = Number(raw);
    for (const [f, spec] of specs) {
      if (raw === undefined || !Number.isFinite(value) || value < spec.min || value > spec.max) {
        return `${flag} needs a number from ${spec.min} to ${spec.max}`;
      }
      (result.get(f) as Record<string, number>)[name] = value;
    }
  }
  return result;
}

/** A family option's value (every declared option has one after parseOptions). */
export function opt(o: Readonly<Record<string, number>>, name: string): number {
  const v = o[name];
  if (v === undefined) throw new Error(`option --${name} is not declared`);
  return v;
}

/** The Node flags that make Berth write its profiles for `family` into the run's directories. */
export function profileFlags(ctx: RunContext, family: string): string[] {
  const flags: string[] = [];
  if (ctx.cpuProfDir !== undefined) flags.push('--cpu-prof', '--cpu-prof-dir', ctx.cpuProfDir, '--cpu-prof-name', `berth-${family}.cpuprofile`);
  if (ctx.heapProfDir !== undefined) flags.push('--heap-prof', '--heap-prof-dir', ctx.heapProfDir, '--heap-prof-name', `berth-${family}.heapprofile`);
  return flags;
}
