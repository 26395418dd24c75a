/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary, so any
 * tool that reads test output (CI included) can count the run without knowing vitest's format.
 * The counts are taken when the run ends; the line is written from `onFinished`, which vitest calls
 * after its own reporter has printed its summary, so it is the last line of the run.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  private line = '';

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of modules) {
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failedHere += 1;
        else skipped += 1;
      }
      // A file can fail outside any test (a hook, an import): count that as one failure.
      failed += mod.state() === 'failed' && failedHere === 0 ? 1 : failedHere;
    }
    this.line = `${passed} passed, ${failed} failed, ${skipped} skipped`;
  }

  onFinished(): void {
    if (this.line !== '') process.stdout.write(`\n${this.line}\n`);
  }
}
