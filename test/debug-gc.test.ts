/**
 * `POST /debug/gc` on a real `berth serve`'s debug listener: `?dryrun=true` reports and deletes nothing
 * (before the fix it ran a real collection), and any parameter or value it does not know is 400 with
 * nothing run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { blob, pushBlob, raw } from './helpers/oci.js';
import { sleep } from './helpers/tools.js';

let dir: string;
let s: Serving;
let debug: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-debug-gc-'));
  const config = join(dir, 'config.yml');
  await writeFile(config, [
    'version: 0.1', 'log:', '  level: error', 'http:', '  addr: 127.0.0.1:0', '  debug:', '    addr: 127.0.0.1:0',
    'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`, '  delete:', '    enabled: true',
    '  maintenance:', '    gc:', '      graceperiod: 0s', '',
  ].join('\n'));
  s = await serve(config, {});
  if (!s.debug) throw new Error('no debug listener');
  debug = s.debug.url;
});
afterAll(async () => {
  await s.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('POST /debug/gc parameters', () => {
  const loose = blob('unreferenced, collectable at once');

  it('dryrun=true (and a bare dryrun) report what would go and delete nothing', async () => {
    await pushBlob(s.running.url, 'app', loose);
    await sleep(5); // the run's start must come after the upload's link time (grace period 0s)
    for (const query of ['?dryrun=true', '?dryrun', '?dryrun=1']) {
      const res = await raw(debug, 'POST', `/debug/gc${query}`);
      expect(res.status, query).toBe(200);
      expect(res.json(), query).toMatchObject({ dryRun: true, swept: 1 });
      expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status, query).toBe(200);
    }
  });

  it.each(['?dryRun=true', '?force=1', '?dryrun=yes', '?dryrun=true&dryrun=false', '?dryrun=true&x='])(
    '%s is 400 and runs nothing',
    async (query) => {
      const res = await raw(debug, 'POST', `/debug/gc${query}`);
      expect(res.status).toBe(400);
      expect((res.json() as { error: string }).error).toMatch(/parameter|dryrun/);
      expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status).toBe(200);
    },
  );

  it('dryrun=false and no parameter run a real collection', async () => {
    const res = await raw(debug, 'POST', '/debug/gc?dryrun=false');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ dryRun: false, swept: 1 });
    expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status).toBe(404);
  });
});
