/**
 * `berth usage [prefix] [config.yml]`, the real command line: on a root nobody serves it rebuilds the
 * index and prints the table (largest exclusive bytes first); on a root a `berth serve` holds it asks
 * that server (credentials from BERTH_USERNAME / BERTH_PASSWORD when the server wants them), and sees
 * a push made a moment before.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../src/gc/report.js';
import { writeLink } from '../src/storage/blobs/links.js';
import { digestOf } from '../src/storage/digest.js';
import { createDriver } from '../src/storage/driver/factory.js';
import { paths } from '../src/storage/paths.js';
import { parseRepoName } from '../src/storage/reference.js';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { startBerth } from './helpers/berth.js';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { type Image, makeImage, pushImage, raw } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';

const bytesOf = (img: Image): number => [img.config, ...img.layers, img.manifest].reduce((sum, b) => sum + b.size, 0);

/** The rows of the table (header and total line left out), split into columns. */
function rows(stdout: string): string[][] {
  const lines = stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^REPOSITORY\s+EXCLUSIVE\s+SHARED\s+LOGICAL\s+TAGS\s+MANIFESTS\s+LAST PUSH\s+LAST PULL$/);
  return lines.slice(1, -1).map((l) => l.split(/\s{2,}/));
}

describe('berth usage', () => {
  let dir: string;
  let configPath: string;
  let config: string;
  let port: number;
  const running: BerthProcess[] = [];
  const base = makeImage(7301, { layerCount: 2 });
  const big = makeImage(7302, { layerCount: 6 });
  const small = makeImage(7303, { layerCount: 1 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-usage-cli-'));
    const root = join(dir, 'root');
    // The tree is written by a Berth without an index, then stopped.
    const writer = await startBerth({ root });
    await pushImage(writer.url, 'cli/big', 'v1', base);
    await pushImage(writer.url, 'cli/big', 'v2', big);
    await pushImage(writer.url, 'cli/small', 'v1', base);
    await pushImage(writer.url, 'other/x', 'v1', small);
    await writer.close();
    const htpasswd = await runBerthCli(['htpasswd', 'alice'], { input: 'secret words\n' });
    expect(htpasswd.code).toBe(0);
    await writeFile(join(dir, 'htpasswd'), htpasswd.stdout);
    port = await freePort();
    configPath = join(dir, 'config.yml');
    // A wildcard address: the command asks 127.0.0.1.
    config = rootConfig(root, [
      `http: {addr: ":${port}", secret: usage-cli}`,
      `auth: {htpasswd: {realm: test, path: ${JSON.stringify(join(dir, 'htpasswd'))}}}`,
    ]);
    await writeFile(configPath, config);
  }, 60_000);
  afterAll(async () => {
    for (const p of running) await p.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('on a root nobody serves: rebuilds the index and prints the figures, largest exclusive bytes first', async () => {
    const r = await runBerthCli(['usage', 'cli/', configPath]);
    expect(r.stderr).toContain('no server holds');
    expect(r.code).toBe(0);
    expect(rows(r.stdout).map((c) => c.slice(0, 6))).toEqual([
      ['cli/big', formatBytes(bytesOf(big)), formatBytes(bytesOf(base)), formatBytes(bytesOf(big) + bytesOf(base)), '2', '2'],
      ['cli/small', formatBytes(0), formatBytes(bytesOf(base)), formatBytes(bytesOf(base)), '1', '1'],
    ]);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe(`2 repositories, ${formatBytes(bytesOf(big))} exclusive in all`);
    // Without a prefix every repository; other/x is smaller than cli/big, larger than cli/small.
    const all = await runBerthCli(['usage', configPath]);
    expect(all.code).toBe(0);
    expect(rows(all.stdout).map((c) => c[0])).toEqual(['cli/big', 'other/x', 'cli/small']);
  }, 60_000);

  it('on a served root: asks the server (with credentials when it wants them) and sees its latest writes', async () => {
    const server = await startBerthProcess({ config, configPath, readyWhen: /index: rebuilt from storage/ });
    running.push(server);
    const denied = await runBerthCli(['usage', configPath]);
    expect(denied.stderr).toContain('asking the server holding the root, berth serve');
    expect(denied.stderr).toContain('set BERTH_USERNAME and BERTH_PASSWORD');
    expect(denied.code).toBe(1);
    const wrong = await runBerthCli(['usage', configPath], { env: { BERTH_USERNAME: 'alice', BERTH_PASSWORD: 'wrong' } });
    expect(wrong.stderr).toMatch(/answered 401/);
    expect(wrong.code).toBe(1);

    // A push through the server a moment before: its figures are the server's, live.
    const url = `http://127.0.0.1:${port}`;
    const auth = { Authorization: `Basic ${Buffer.from('alice:secret words').toString('base64')}` };
    const fresh = makeImage(7304, { layerCount: 8 });
    for (const b of [fresh.config, ...fresh.layers]) {
      const res = await raw(url, 'POST', `/v2/cli/fresh/blobs/uploads/?digest=${b.digest}`, { headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: b.bytes });
      expect(res.status).toBe(201);
    }
    const put = await raw(url, 'PUT', '/v2/cli/fresh/manifests/v1', { headers: { ...auth, 'Content-Type': fresh.mediaType }, body: fresh.manifest.bytes });
    expect(put.status).toBe(201);

    const r = await runBerthCli(['usage', 'cli/', configPath], { env: { BERTH_USERNAME: 'alice', BERTH_PASSWORD: 'secret words' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('asking the server');
    const table = rows(r.stdout);
    expect(table.map((c) => c.slice(0, 4))).toEqual([
      ['cli/fresh', formatBytes(bytesOf(fresh)), formatBytes(0), formatBytes(bytesOf(fresh))],
      ['cli/big', formatBytes(bytesOf(big)), formatBytes(bytesOf(base)), formatBytes(bytesOf(big) + bytesOf(base))],
      ['cli/small', formatBytes(0), formatBytes(bytesOf(base)), formatBytes(bytesOf(base))],
    ]);
    expect(table[0]?.[6]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/); // the push time the server recorded
  }, 60_000);

  it('prints every row of a long table into a pipe (4,000 repositories, about 400 KiB: a table main once cut by exiting)', async () => {
    const root = join(dir, 'long');
    const driver = createDriver({ kind: 'filesystem', root });
    const layer = Buffer.from('one layer for all\n');
    const d = digestOf(layer);
    await driver.putContent(paths.blobData(d), layer);
    for (let i = 0; i < 4000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => writeLink(driver, paths.layerLink(parseRepoName(`long/repository-number-${String(i + j).padStart(4, '0')}`), d), d)));
    }
    const longConfig = join(dir, 'long.yml');
    await writeFile(longConfig, rootConfig(root));
    const r = await runBerthCli(['usage', longConfig]);
    expect(r.code, r.stderr).toBe(0);
    expect(rows(r.stdout)).toHaveLength(4000);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('4000 repositories, 0 B exclusive in all');
  }, 60_000);

  it('refuses a bad command line (exit 2)', async () => {
    expect((await runBerthCli(['usage', 'a', 'b'])).code).toBe(2);
    expect((await runBerthCli(['usage', '--by-size'])).code).toBe(2);
  });
});
