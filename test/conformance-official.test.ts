/**
 * The official OCI conformance suite (opencontainers/distribution-spec v1.1.1, compiled unchanged in
 * `<project root>/../shared/tools/oci-conformance/`, run by its run.sh) against a real `berth serve`,
 * both ways the suite can judge automatic cross-mount: OCI_AUTOMATIC_CROSSMOUNT=1 against the default
 * (a mount without `from` links a blob the registry holds) and =0 against
 * `storage.automaticcrossmount: false` (it must answer a plain upload session). Each must end with
 * 0 failed and complete. Without the suite: fails under CI=true, skipped with the reason otherwise.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { answersV2 } from './helpers/oci.js';
import { describeWithTool, freePort } from './helpers/tools.js';

const PROJECT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const RUN = join(PROJECT, '..', 'shared', 'tools', 'oci-conformance', 'run.sh');
const available = existsSync(RUN) && existsSync(join(RUN, '..', 'conformance.test'))
  ? ({ ok: true } as const)
  : ({ ok: false, reason: `${RUN} (and conformance.test beside it) not found` } as const);

/** Runs run.sh against `url`; resolves with its output whatever its exit status. */
function runSuite(url: string, reportDir: string, crossMount: '0' | '1'): Promise<string> {
  return new Promise((done) => {
    execFile('bash', [RUN, url, reportDir], { env: { ...process.env, OCI_AUTOMATIC_CROSSMOUNT: crossMount }, maxBuffer: 16 << 20 }, (_err, stdout, stderr) => {
      done(`${stdout}${stderr}`);
    });
  });
}

describeWithTool('oci-conformance', available, 'the official conformance suite v1.1.1 against berth serve', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-official-conformance-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['1', 'the default (automatic cross-mount on)', ''],
    ['0', 'storage.automaticcrossmount: false', '  automaticcrossmount: false\n'],
  ] as const)('OCI_AUTOMATIC_CROSSMOUNT=%s against %s: 0 failed', async (crossMount, _what, extra) => {
    const port = await freePort();
    const root = join(dir, `root-${crossMount}`);
    const config = `version: 0.1\nlog:\n  accesslog:\n    disabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: conformance\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n${extra}`;
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerthProcess({ config, configPath: join(dir, `config-${crossMount}.yml`) });
      const url = `http://127.0.0.1:${port}`;
      expect(await answersV2(url)).toBe(true);
      const out = await runSuite(url, join(dir, `report-${crossMount}`), crossMount);
      console.log(`OCI_AUTOMATIC_CROSSMOUNT=${crossMount}: ${out.trim().split('\n').at(-1) ?? ''}`);
      const closing = /^conformance: (\d+) passed, (\d+) failed, (\d+) skipped(.*)$/m.exec(out);
      expect(closing, out).not.toBeNull();
      expect(closing?.[2], out).toBe('0');
      expect(closing?.[4], out).toBe(''); // not INCOMPLETE
      expect(Number(closing?.[1])).toBeGreaterThan(70);
    } finally {
      await berth?.stop();
    }
  }, 360_000);
});
