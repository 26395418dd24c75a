/**
 * The check runner every workflow uses: a check is a named async body that passes, fails with an
 * `expected vs actual`, or is skipped with a reason. A check may name the checks it needs; when one of
 * them did not pass it is skipped with that reason instead of failing for someone else's fault, so a
 * single failure never cascades silently into a wall of unrelated FAILs.
 */

/** The four workflow categories of the distribution-spec ("Workflow Categories"). */
export type Workflow = 'pull' | 'push' | 'discovery' | 'management';

/** Every workflow, in the order a run walks them. */
export const WORKFLOWS: readonly Workflow[] = ['pull', 'push', 'discovery', 'management'];

/** What a result line is filed under: a workflow, or the clean-up that ends a run. */
export type Section = Workflow | 'cleanup';

/** How one check ended. */
export type Outcome = 'pass' | 'fail' | 'skip';

/** One check's result; `detail` is `<expected> vs <actual>` for a failure and the reason for a skip. */
export interface CheckResult {
  readonly section: Section;
  readonly name: string;
  readonly outcome: Outcome;
  readonly detail?: string;
}

/** What a run is told: where the registry is and what it is expected to do. */
export interface Settings {
  /** Base URL of the registry, e.g. `http://127.0.0.1:5000` (a path prefix is kept). */
  readonly url: string;
  /** Repository the workflows push to and pull from. */
  readonly namespace: string;
  /** A second repository, the target of cross-repository mounts. */
  readonly otherNamespace: string;
  /** Credentials: sent as Basic to the registry's own origin, or used to get Bearer tokens from the realm it names (client.ts). */
  readonly credentials?: { readonly username: string; readonly password: string };
  /** Whether `POST …/uploads/?mount=<digest>` without `from` is expected to mount (spec: MAY). */
  readonly autoMount: boolean;
  /** Whether DELETE is expected to work (202); when false, deletes are expected to be refused (400/405). */
  readonly deleteEnabled: boolean;
  /** The workflows to run, in any order (they always run in WORKFLOWS order). */
  readonly only: readonly Workflow[];
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs: number;
}

/** Thrown by a check body when the registry's answer is not the expected one. */
export class CheckFailure extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${expected} vs ${actual}`);
    this.name = 'CheckFailure';
  }
}

/** Thrown by a check body that finds at run time that it cannot apply (reported as SKIP). */
export class CheckSkipped extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'CheckSkipped';
  }
}

/** A check that has run: later checks list it in `needs`. */
export interface CheckHandle {
  readonly name: string;
  readonly passed: boolean;
}

/** When a check runs: the checks it needs, or a reason (from the settings) not to run it at all. */
export interface CheckOptions {
  readonly needs?: readonly CheckHandle[];
  readonly skip?: string | undefined;
}

/** The body's failure (or skip) as a result detail. */
function describeThrown(err: unknown): { outcome: Outcome; detail: string } {
  if (err instanceof CheckSkipped) return { outcome: 'skip', detail: err.reason };
  if (err instanceof CheckFailure) return { outcome: 'fail', detail: `${err.expected} vs ${err.actual}` };
  const message = err instanceof Error ? err.message : String(err);
  return { outcome: 'fail', detail: `a complete HTTP answer vs ${message}` };
}

/** Runs the checks of one section and reports each result as it ends. */
export class CheckRunner {
  constructor(
    readonly section: Section,
    private readonly report: (result: CheckResult) => void,
  ) {}

  /** Runs `body` as the check `name` unless a needed check did not pass or `skip` gives a reason. */
  async check(name: string, body: () => Promise<void>, opts: CheckOptions = {}): Promise<CheckHandle> {
    const missing = (opts.needs ?? []).find((h) => !h.passed);
    if (opts.skip !== undefined) return this.record(name, 'skip', opts.skip);
    if (missing !== undefined) return this.record(name, 'skip', `needs "${missing.name}", which did not pass`);
    try {
      await body();
      return this.record(name, 'pass', undefined);
    } catch (err) {
      const { outcome, detail } = describeThrown(err);
      return this.record(name, outcome, detail);
    }
  }

  private record(name: string, outcome: Outcome, detail: string | undefined): CheckHandle {
    this.report(detail === undefined ? { section: this.section, name, outcome } : { section: this.section, name, outcome, detail });
    return { name, passed: outcome === 'pass' };
  }
}

/** A result as one output line: `PASS <section> <name>`, `FAIL …: <expected> vs <actual>`, `SKIP …: <reason>`. */
export function formatResult(result: CheckResult): string {
  const head = `${result.outcome.toUpperCase()} ${result.section} ${result.name}`;
  return result.detail === undefined ? head : `${head}: ${result.detail}`;
}
