/**
 * Quotas (`storage.quotas`, issue #16) with docker and skopeo: what a user sees when a push is over a limit.
 *
 * Two Berths serve one root, used one after the other: `open` has no quotas (it seeds the root, as a
 * registry looks before its operator adds or lowers a quota), `limited` has them. docker pushes to both.
 * - over a storage limit already: the push fails with the quota's message, refused at the upload's POST,
 *   so the big layer is never sent (no PATCH reaches Berth, no blob lands);
 * - a re-push of what is there succeeds;
 * - a push whose layers docker mounts from a repository of the glob fits where counting them twice
 *   would not; a push whose big layer would take a glob over is refused at the layer's completion;
 * - the repository-count limit.
 * skopeo: a copy over a storage limit fails with the quota's message, and a re-copy of what is there works.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { type BuiltImage, buildImage, dockerArchive, layer, singlePlatformImage, writeImageLayout } from './helpers/images.js';
import { uploadsDir, v2 } from './helpers/layout.js';
import { randomBytesSeeded } from './helpers/oci.js';
import { type ContainersStore, containersStore, describeWithTool, describeWithTools, runResult, toolAvailable } from './helpers/tools.js';

const MIB = 1024 * 1024;

interface AccessLine {
  readonly msg?: string;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly bytesIn?: number;
}

describeWithTools(DOCKER_TOOLS, 'quotas with docker push', () => {
  const small = singlePlatformImage('quota-small'); // a 2 MiB base layer and a 16 KiB one
  const big = buildImage({
    platform: { architecture: 'amd64', os: 'linux' },
    layers: [layer([{ path: 'big.bin', content: randomBytesSeeded(8 * MIB, 4242) }])],
  });
  const lines: AccessLine[] = [];
  let root = '';
  let work = '';
  let open: TestBerth | undefined;
  let limited: TestBerth | undefined;
  let dockerd: Dockerd | undefined;
  let unavailable = '';
  let openHost = '';
  let limitedHost = '';

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-quota-docker-root-'));
    work = await mkdtemp(join(tmpdir(), 'berth-quota-docker-'));
    open = await startBerth({ root });
    limited = await startBerth({
      root,
      quotas: [
        { repositories: ['team/**'], storageBytes: 1 * MIB },
        { repositories: ['small/**'], storageBytes: 3 * MIB },
        { repositories: ['few/*'], maxrepositories: 1 },
      ],
      logLevel: 'info',
      onLog: (line) => lines.push(JSON.parse(line) as AccessLine),
    });
    const ports = [open.url, limited.url].map((u) => Number(new URL(u).port));
    [openHost, limitedHost] = ports.map((p) => `127.0.0.1:${p}`) as [string, string];
    const started = await startDockerdOrReason({ registryPorts: ports });
    if ('reason' in started) unavailable = started.reason;
    else dockerd = started.dockerd;
  }, 120_000);

  afterAll(async () => {
    await dockerd?.close();
    await limited?.close();
    await open?.close();
    for (const dir of [root, work]) if (dir !== '') await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const load = async (d: Dockerd, img: BuiltImage, tag: string): Promise<void> => {
    const archive = join(work, `${tag.replace(/[/:]/g, '_')}.tar`);
    await writeFile(archive, dockerArchive(img, [tag]));
    await d.docker(['load', '-i', archive]);
  };
  const push = async (d: Dockerd, local: string, target: string) => {
    await d.docker(['tag', local, target]);
    return d.dockerResult(['push', target], { timeoutMs: 180_000 });
  };
  const requests = (method: string, repo: string): AccessLine[] =>
    lines.filter((l) => l.msg === 'request' && l.method === method && (l.path ?? '').startsWith(`/v2/${repo}/blobs/uploads/`));
  const largestBlob = async (): Promise<number> => {
    let largest = 0;
    const base = join(v2(root), 'blobs', 'sha256');
    for (const two of await readdir(base).catch(() => [])) {
      for (const hex of await readdir(join(base, two))) {
        largest = Math.max(largest, (await stat(join(base, two, hex, 'data')).catch(() => undefined))?.size ?? 0);
      }
    }
    return largest;
  };
  const sessions = async (repo: string): Promise<string[]> => readdir(join(v2(root), uploadsDir(repo))).catch(() => []);

  it('over the limit already: refused at the upload POST with the quota message, before the big layer is sent', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    await load(d, small, 'quota/small:1');
    await load(d, big, 'quota/big:1');
    const seeded = await push(d, 'quota/small:1', `${openHost}/team/a:v1`);
    expect(seeded.code, seeded.stderr).toBe(0);

    const refused = await push(d, 'quota/big:1', `${limitedHost}/team/b:v1`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/denied: quota exceeded: storage of team\/\*\* is 2(\.\d+)? MiB, limit 1 MiB \(storage\.quotas\[0\]\)/);
    expect(requests('POST', 'team/b').map((l) => l.status)).toContain(403);
    expect(requests('PATCH', 'team/b')).toEqual([]);
    expect(requests('PUT', 'team/b')).toEqual([]);
    expect(await sessions('team/b')).toEqual([]);
    // docker compresses the layer itself (its digest is docker's): no blob of its size landed anywhere.
    expect(await largestBlob()).toBeLessThan(8 * MIB);
  }, 300_000);

  it('over the limit, a re-push of what is there succeeds', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    const again = await push(d, 'quota/small:1', `${limitedHost}/team/a:v1`);
    expect(again.code, again.stderr).toBe(0);
  }, 300_000);

  it('blobs docker mounts from a repository of the glob cost nothing; a big layer that would take the glob over is refused at its completion', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    const first = await push(d, 'quota/small:1', `${limitedHost}/small/a:v1`);
    expect(first.code, first.stderr).toBe(0);
    // Counted twice, the image would not fit in 3 MiB: docker mounts its layers from small/a.
    const mounted = await push(d, 'quota/small:1', `${limitedHost}/small/c:v1`);
    expect(mounted.code, mounted.stderr).toBe(0);
    expect(requests('POST', 'small/c').filter((l) => l.status === 201).length).toBeGreaterThan(0);
    expect(requests('PATCH', 'small/c').every((l) => (l.bytesIn ?? 0) < 64 * 1024)).toBe(true); // the config at most
    const refused = await push(d, 'quota/big:1', `${limitedHost}/small/b:v1`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/denied: quota exceeded: storage of small\/\*\* would be 1\d(\.\d+)? MiB, limit 3 MiB \(storage\.quotas\[1\]\)/);
    expect(requests('PUT', 'small/b').map((l) => l.status)).toContain(403);
    expect(await sessions('small/b')).toEqual([]);
  }, 300_000);

  it('refuses a repository over the count limit', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    const first = await push(d, 'quota/small:1', `${limitedHost}/few/a:v1`);
    expect(first.code, first.stderr).toBe(0);
    const second = await push(d, 'quota/small:1', `${limitedHost}/few/b:v1`);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/denied: quota exceeded: few\/\* would hold 2 repositories, limit 1 \(storage\.quotas\[2\]\)/);
  }, 300_000);
});

describeWithTool('skopeo', toolAvailable('skopeo'), 'quotas with skopeo copy', () => {
  const image = singlePlatformImage('quota-skopeo'); // about 2 MiB
  let berth: TestBerth;
  let work = '';
  let store: ContainersStore;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-quota-skopeo-'));
    store = await containersStore(join(work, 'containers'));
    await writeImageLayout(join(work, 'image'), 'v1', image);
    berth = await startBerth({ quotas: [{ repositories: ['tight/*'], storageBytes: 1 * MIB }, { repositories: ['roomy/*'], storageBytes: 3 * MIB }] });
  }, 60_000);

  afterAll(async () => {
    await berth?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  const copy = (repo: string) =>
    runResult('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(work, 'image')}:v1`, `docker://${new URL(berth.url).host}/${repo}:v1`], {
      env: store.env, timeoutMs: 120_000,
    });

  it('a copy over the limit fails with the quota message; one that fits is taken, and taken again', async () => {
    const refused = await copy('tight/app');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/quota exceeded: storage of tight\/\* would be 2(\.\d+)? MiB, limit 1 MiB \(storage\.quotas\[0\]\)/);
    const fits = await copy('roomy/app');
    expect(fits.code, fits.stderr).toBe(0);
    const again = await copy('roomy/app');
    expect(again.code, again.stderr).toBe(0);
  }, 240_000);
});
