/**
 * The one test suite every storage driver passes (distribution registry/storage/driver/testsuites).
 * A driver's test file is a few lines:
 *
 * ```ts
 * runDriverSuite('inmemory', async () => ({ driver: createMemoryDriver(), cleanup: async () => {} }));
 * ```
 *
 * Each test gets a fresh driver (through `instrument()`) and a prefix of its own, which the harness
 * deletes after the test; `afterEach` then asserts the driver root is empty, like testsuites'
 * TearDownTest, so a driver whose delete leaves anything behind fails. The cases live in
 * cases-*.ts; tests are named by their title, which is also the key of `opts.skip`.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDriverError } from '../driver.js';
import type { StorageDriver } from '../driver.js';
import { instrument } from '../instrument.js';
import { contentCases } from './cases-content.js';
import { pathCases } from './cases-paths.js';
import { slowCases } from './cases-slow.js';
import { streamCases } from './cases-stream.js';
import { treeCases } from './cases-tree.js';
import type { CaseContext, DriverCase } from './helpers.js';

/** A driver made for one test, and how to dispose of it (remove its temporary root, say). */
export interface DriverUnderTest {
  readonly driver: StorageDriver;
  cleanup(): Promise<void>;
}

/** Options of {@link runDriverSuite}. */
export interface DriverSuiteOptions {
  /** Tests to skip, by title, each with the reason, which is printed. */
  readonly skip?: Readonly<Record<string, string>>;
}

/** The groups of the suite, by describe() title. */
const GROUPS: ReadonlyArray<[string, readonly DriverCase[]]> = [
  ['paths and errors', pathCases],
  ['getContent and putContent', contentCases],
  ['reader and writer', streamCases],
  ['stat, list, move, delete, walk', treeCases],
  ['slow', slowCases],
];

/**
 * Declares the shared driver suite (vitest describe/it) for the driver `makeDriver` returns.
 * @throws Error at collection when `opts.skip` names a test that does not exist.
 */
export function runDriverSuite(
  name: string,
  makeDriver: () => Promise<DriverUnderTest>,
  opts: DriverSuiteOptions = {},
): void {
  const skip = opts.skip ?? {};
  const unknown = Object.keys(skip).filter((t) => !GROUPS.some(([, cases]) => cases.some((c) => c.title === t)));
  if (unknown.length > 0) throw new Error(`runDriverSuite(${name}): skip names unknown tests: ${unknown.join('; ')}`);

  describe(`storage driver suite: ${name}`, () => {
    let current: DriverUnderTest | undefined;
    beforeEach(async () => {
      const made = await makeDriver();
      current = { driver: instrument(made.driver), cleanup: () => made.cleanup() };
    });
    afterEach(async () => {
      const done = current;
      current = undefined;
      if (done === undefined) return;
      try {
        expect(await rootEntries(done.driver), 'the test left files in the driver root').toEqual([]);
      } finally {
        await done.cleanup();
      }
    });
    const driver = (): StorageDriver => {
      if (current === undefined) throw new Error('no driver: beforeEach did not run');
      return current.driver;
    };
    for (const [group, cases] of GROUPS) {
      describe(group, () => cases.forEach((c) => declare(name, c, skip[c.title] ?? c.skipReason, driver)));
    }
  });
}

/** Declares one case: skipped with its reason printed, or run with a prefix deleted afterwards. */
function declare(suite: string, c: DriverCase, reason: string | undefined, driver: () => StorageDriver): void {
  if (reason !== undefined) console.log(`[driver suite ${suite}] skipping "${c.title}": ${reason}`);
  it.skipIf(reason !== undefined)(c.title, async (test) => {
    const ctx: CaseContext = { d: driver(), p: `/t-${randomBytes(6).toString('hex')}` };
    if (c.requires !== undefined && ctx.d.capabilities?.[c.requires] !== true) {
      const why = `the driver does not declare the optional capability ${c.requires}`;
      console.log(`[driver suite ${suite}] skipping "${c.title}": ${why}`);
      test.skip(why);
      return;
    }
    let passed = false;
    try {
      await c.body(ctx);
      passed = true;
    } finally {
      await removePrefix(ctx, passed);
    }
  }, c.timeout);
}

/** Deletes the test's prefix (which may not exist). Its errors count only when the test passed. */
async function removePrefix({ d, p }: CaseContext, report: boolean): Promise<void> {
  try {
    await d.delete(p);
  } catch (err) {
    if (report && !isDriverError(err, 'PATH_NOT_FOUND')) throw err;
  }
}

/** What `list('/')` returns; a missing root counts as empty. */
async function rootEntries(d: StorageDriver): Promise<string[]> {
  try {
    return await d.list('/');
  } catch (err) {
    if (isDriverError(err, 'PATH_NOT_FOUND')) return [];
    throw err;
  }
}
