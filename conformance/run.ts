/**
 * One conformance run: the chosen workflows in the spec's order (pull, push, content discovery,
 * content management), then the clean-up of what the run pushed when deletion is enabled. Results are
 * reported one by one as they end and returned with their counts, so the CLI prints as it goes and
 * tests can call the run in-process.
 */
import { CheckRunner, type CheckResult, type Section, type Settings, WORKFLOWS, type Workflow } from './check.js';
import { createClient } from './client.js';
import { runDiscovery } from './discovery.js';
import { runManagement } from './management.js';
import { PushedLog, type SuiteContext, cleanup } from './ops.js';
import { runPull } from './pull.js';
import { runPush } from './push.js';

export type { CheckResult, Settings, Workflow } from './check.js';
export { WORKFLOWS, formatResult } from './check.js';

/** The counts of a run and every result in the order reported. */
export interface RunSummary {
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly results: readonly CheckResult[];
}

const RUNNERS: Readonly<Record<Workflow, (ctx: SuiteContext, runner: CheckRunner) => Promise<void>>> = {
  pull: runPull,
  push: runPush,
  discovery: runDiscovery,
  management: runManagement,
};

/** The defaults of every setting but the URL. */
export const DEFAULT_SETTINGS: Omit<Settings, 'url'> = {
  namespace: 'conformance/test',
  otherNamespace: 'conformance/other',
  autoMount: false,
  deleteEnabled: true,
  only: WORKFLOWS,
  timeoutMs: 30_000,
};

/** Runs a section; a bug in the suite itself (an exception outside any check) is reported as a failure, not thrown. */
async function runSection(section: Section, body: (runner: CheckRunner) => Promise<unknown>, report: (r: CheckResult) => void): Promise<void> {
  const runner = new CheckRunner(section, report);
  try {
    await body(runner);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    report({ section, name: 'the workflow runs to its end', outcome: 'fail', detail: `no error vs ${message}` });
  }
}

/**
 * Runs the suite against `settings.url`, calling `report` with each result as it ends.
 * Never rejects because of the registry: a registry that answers wrongly, or not at all, gives FAILs.
 */
export async function runConformance(settings: Settings, report: (result: CheckResult) => void = () => undefined): Promise<RunSummary> {
  const results: CheckResult[] = [];
  const record = (r: CheckResult): void => {
    results.push(r);
    report(r);
  };
  const client = createClient({
    baseUrl: settings.url,
    timeoutMs: settings.timeoutMs,
    ...(settings.credentials !== undefined && { credentials: settings.credentials }),
  });
  const ctx: SuiteContext = { client, settings, pushed: new PushedLog() };
  for (const workflow of WORKFLOWS.filter((w) => settings.only.includes(w))) {
    await runSection(workflow, (runner) => RUNNERS[workflow](ctx, runner), record);
  }
  await runSection('cleanup', async (runner) => {
    if (settings.deleteEnabled) return cleanup(ctx, runner);
    return runner.check('DELETE what the run pushed', async () => undefined, { skip: 'deletion is disabled by the settings' });
  }, record);
  const count = (outcome: CheckResult['outcome']): number => results.filter((r) => r.outcome === outcome).length;
  return { passed: count('pass'), failed: count('fail'), skipped: count('skip'), results };
}
