/**
 * Berth's own conformance suite (conformance/) run in-process: against a fresh Berth it must pass
 * every check, with deletion enabled (automatic cross-mount expected, absolute Locations) and with
 * deletion disabled (deletes refused with 405, relative Locations). And it must be able to fail: a
 * server that answers 200 `{}` to everything fails it, and the CLI says so with exit code 1.
 */
import { readFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../conformance/cli.js';
import { DEFAULT_SETTINGS, type RunSummary, formatResult, runConformance } from '../conformance/run.js';
import { startBerth } from './helpers/berth.js';
import { errorCode, raw } from './helpers/oci.js';

/** Fewer passes than this means checks stopped running (skipped or lost), not that Berth got better. */
const MIN_PASSED = 95;

/** The closing line conformance/README.md records for `label` (`- <label>: \`N passed, …\``). */
async function recordedClosingLine(label: string): Promise<string | undefined> {
  const readme = await readFile(new URL('../conformance/README.md', import.meta.url), 'utf8');
  return new RegExp(`^- ${label}: \`(\\d+ passed, \\d+ failed, \\d+ skipped)\``, 'm').exec(readme)?.[1];
}

const failures = (summary: RunSummary): string[] => summary.results.filter((r) => r.outcome === 'fail').map(formatResult);
const closingLine = (s: RunSummary): string => `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;

describe('the conformance suite against Berth', () => {
  it('passes every check with deletion enabled and automatic cross-mount expected', async () => {
    const berth = await startBerth();
    try {
      const summary = await runConformance({ ...DEFAULT_SETTINGS, url: berth.url, autoMount: true });
      expect(failures(summary)).toEqual([]);
      expect(summary.failed).toBe(0);
      expect(summary.passed).toBeGreaterThanOrEqual(MIN_PASSED);
      expect(closingLine(summary)).toBe(await recordedClosingLine('Berth'));
      expect(berth.errors).toEqual([]);
    } finally {
      await berth.close();
    }
  });

  it('passes with deletion disabled: every delete is refused with 405 and changes nothing', async () => {
    const berth = await startBerth({ deleteEnabled: false, relativeUrls: true });
    try {
      const summary = await runConformance({ ...DEFAULT_SETTINGS, url: berth.url, deleteEnabled: false });
      expect(failures(summary)).toEqual([]);
      expect(summary.passed).toBeGreaterThanOrEqual(MIN_PASSED - 10);
      expect(closingLine(summary)).toBe(await recordedClosingLine('Berth with deletion disabled'));
      const refusals = summary.results.filter((r) => r.section === 'management' && r.name.includes('while deletion is disabled'));
      expect(refusals.map((r) => r.outcome)).toEqual(['pass', 'pass', 'pass']);
      const del = await raw(berth.url, 'DELETE', '/v2/conformance/test/manifests/mgmt-kept');
      expect([del.status, errorCode(del)]).toEqual([405, 'UNSUPPORTED']);
      expect(berth.errors).toEqual([]);
    } finally {
      await berth.close();
    }
  });
});

describe('the conformance suite can fail', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // Answers 200 `{}` to every request, whatever it asks.
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('reports failures against a server that answers 200 {} to everything, and skips what depends on them', async () => {
    const summary = await runConformance({ ...DEFAULT_SETTINGS, url, timeoutMs: 5_000 });
    expect(summary.failed).toBeGreaterThan(20);
    expect(summary.results.find((r) => r.name === 'GET /v2/ answers 200')?.outcome).toBe('pass');
    const skippedForCause = summary.results.filter((r) => r.outcome === 'skip' && r.detail?.startsWith('needs "'));
    expect(skippedForCause.length).toBeGreaterThan(0);
    expect(summary.passed + summary.failed + summary.skipped).toBe(summary.results.length);
  });

  it('the command prints one line per check and the closing line, and exits 1', async () => {
    const out: string[] = [];
    const code = await main([url, '--only', 'pull', '--timeout', '5'], {}, (l) => out.push(l), () => undefined);
    expect(code).toBe(1);
    expect(out.slice(0, -1).every((l) => /^(PASS|FAIL|SKIP) (pull|cleanup) \S/.test(l))).toBe(true);
    expect(out.filter((l) => l.startsWith('FAIL ')).every((l) => / vs /.test(l))).toBe(true);
    expect(out.at(-1)).toMatch(/^\d+ passed, [1-9]\d* failed, \d+ skipped$/);
  });

  it('the command exits 2 for bad arguments and 0 for --help', async () => {
    const quiet = (): undefined => undefined;
    for (const argv of [[], ['not-a-url'], [url, '--only', 'everything'], [url, '--namespace', 'Bad_Name'], [url, '--bogus']]) {
      expect(await main(argv, {}, quiet, quiet)).toBe(2);
    }
    expect(await main(['--help'], {}, quiet, quiet)).toBe(0);
  });
});
