/**
 * The conformance suite against CNCF distribution 2.8.2 (Debian's docker-registry, i.e. registry:2):
 * it must fail exactly the checks conformance/README.md lists as failing for registry:2, and end
 * with the closing line recorded there, so the README stays true and the suite is shown able to fail
 * a real registry for real reasons.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, runConformance } from '../conformance/run.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';

const LABEL = 'docker-registry 2.8.2';
const TABLE_HEADING = `### Failing checks against ${LABEL}`;

/** The README's record for registry:2: the checks in its failing table, and its closing line. */
async function recorded(): Promise<{ failing: string[]; closing: string | undefined }> {
  const readme = await readFile(new URL('../conformance/README.md', import.meta.url), 'utf8');
  const start = readme.indexOf(TABLE_HEADING);
  const section = start === -1 ? '' : readme.slice(start + TABLE_HEADING.length).split(/^#{1,3} /m)[0] ?? '';
  const failing = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1] ?? '');
  const closing = new RegExp(`^- ${LABEL.replace(/\./g, '\\.')}: \`(\\d+ passed, \\d+ failed, \\d+ skipped)\``, 'm').exec(readme)?.[1];
  return { failing, closing };
}

describeWithTool('docker-registry', registry2Available(), 'the conformance suite against docker-registry 2.8.2', () => {
  let root: string;
  let registry: Registry2 | undefined;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'conformance-registry2-'));
    registry = await startRegistry2({ root, secret: 'conformance' });
  });
  afterAll(async () => {
    await registry?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('fails exactly the checks conformance/README.md records as failing for registry:2', async () => {
    if (registry === undefined) throw new Error('docker-registry did not start');
    const summary = await runConformance({ ...DEFAULT_SETTINGS, url: registry.url, autoMount: false, deleteEnabled: true });
    const failed = summary.results.filter((r) => r.outcome === 'fail').map((r) => `${r.section} ${r.name}`);
    const { failing, closing } = await recorded();
    expect(failing.length).toBeGreaterThan(0);
    expect([...failed].sort()).toEqual([...failing].sort());
    expect(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`).toBe(closing);
  });
});
