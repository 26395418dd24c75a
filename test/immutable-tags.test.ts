/**
 * Immutable tags (`storage.immutabletags`, issue #16) against a real Berth: skopeo pushes a tag the
 * rule covers, pushes the same image again (accepted), pushes another image to it (refused), and
 * tries to delete it; raw HTTP checks the 403 DENIED body names the rule, by tag and by digest, and
 * that tags the rule does not cover move and delete as usual.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { dockerArchive, singlePlatformImage, writeImageLayout } from './helpers/images.js';
import { ACCEPT_ALL, errorCode, makeImage, pushBlob, pushImage, putManifest, raw } from './helpers/oci.js';
import { type ContainersStore, containersStore, describeWithTool, describeWithTools, run, runResult, toolAvailable } from './helpers/tools.js';

const RULE = { repositories: ['team/*'], patterns: ['^v[0-9]'] };

describeWithTool('skopeo', toolAvailable('skopeo'), 'immutable tags with skopeo re-pushes', () => {
  const first = singlePlatformImage('immutable-first');
  const second = singlePlatformImage('immutable-second');
  let berth: TestBerth;
  let work = '';
  let host = '';
  let store: ContainersStore;

  const layout = async (name: string, img: typeof first): Promise<string> => {
    const dir = join(work, name);
    await writeImageLayout(dir, 'v1', img);
    return `oci:${dir}:v1`;
  };
  const copy = (src: string, repoAndTag: string) =>
    runResult('skopeo', ['copy', '--dest-tls-verify=false', src, `docker://${host}/${repoAndTag}`], { env: store.env, timeoutMs: 120_000 });
  const digestOf = async (repoAndTag: string): Promise<string | undefined> => {
    const [repo, tag] = repoAndTag.split(':');
    const res = await raw(berth.url, 'HEAD', `/v2/${repo ?? ''}/manifests/${tag ?? ''}`, { headers: { Accept: ACCEPT_ALL } });
    return res.status === 200 ? res.header('Docker-Content-Digest') : undefined;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-immutable-'));
    store = await containersStore(join(work, 'containers'));
    berth = await startBerth({ index: true, immutableTags: [RULE] });
    host = new URL(berth.url).host;
  }, 60_000);

  afterAll(async () => {
    await berth?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('a covered tag, once set, takes the same image again but not another one', async () => {
    const a = await layout('first', first);
    const b = await layout('second', second);
    expect((await copy(a, 'team/app:v1')).code).toBe(0);
    const pinned = await digestOf('team/app:v1');
    expect(pinned).toBe(first.manifest.digest);
    const again = await copy(a, 'team/app:v1');
    expect(again.code, again.stderr).toBe(0);
    const moved = await copy(b, 'team/app:v1');
    expect(moved.code).not.toBe(0);
    expect(moved.stderr).toMatch(/denied/i);
    expect(await digestOf('team/app:v1')).toBe(pinned);
    // Not covered: another repository level, or a tag the patterns do not match, moves as usual.
    expect((await copy(a, 'team/app:latest')).code).toBe(0);
    expect((await copy(b, 'team/app:latest')).code).toBe(0);
    expect(await digestOf('team/app:latest')).toBe(second.manifest.digest);
    expect((await copy(a, 'team/app/deeper:v1')).code).toBe(0);
    expect((await copy(b, 'team/app/deeper:v1')).code).toBe(0);
  }, 240_000);

  it('refuses to delete a covered tag, or its manifest, with 403 DENIED naming the rule', async () => {
    const byTag = await raw(berth.url, 'DELETE', '/v2/team/app/manifests/v1');
    expect(byTag.status).toBe(403);
    expect(errorCode(byTag)).toBe('DENIED');
    expect(byTag.body.toString()).toContain('storage.immutabletags[0]');
    const byDigest = await raw(berth.url, 'DELETE', `/v2/team/app/manifests/${first.manifest.digest}`);
    expect(byDigest.status).toBe(403);
    expect(errorCode(byDigest)).toBe('DENIED');
    const skopeoDelete = await runResult('skopeo', ['delete', '--tls-verify=false', `docker://${host}/team/app:v1`], { env: store.env });
    expect(skopeoDelete.code).not.toBe(0);
    expect(await digestOf('team/app:v1')).toBe(first.manifest.digest);
    // The uncovered tag deletes as usual.
    await run('skopeo', ['delete', '--tls-verify=false', `docker://${host}/team/app:latest`], { env: store.env });
    expect(await digestOf('team/app:latest')).toBeUndefined();
  }, 120_000);
});

describeWithTools(DOCKER_TOOLS, 'immutable tags with docker re-pushes', () => {
  const first = singlePlatformImage('immutable-docker-first');
  const second = singlePlatformImage('immutable-docker-second');
  let berth: TestBerth;
  let dockerd: Dockerd | undefined;
  let unavailable = '';
  let work = '';
  let host = '';

  beforeAll(async () => {
    berth = await startBerth({ immutableTags: [RULE] });
    const port = Number(new URL(berth.url).port);
    host = `127.0.0.1:${port}`;
    work = await mkdtemp(join(tmpdir(), 'berth-immutable-docker-'));
    const started = await startDockerdOrReason({ registryPorts: [port] });
    if ('reason' in started) unavailable = started.reason;
    else dockerd = started.dockerd;
  }, 120_000);

  afterAll(async () => {
    await dockerd?.close();
    await berth?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('docker push of the same image to a covered tag succeeds again; of another image it is denied', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    const load = async (img: typeof first, tag: string): Promise<void> => {
      const archive = join(work, `${tag.replace(/[/:]/g, '_')}.tar`);
      await writeFile(archive, dockerArchive(img, [tag]));
      await d.docker(['load', '-i', archive]);
    };
    const target = `${host}/team/app:v1`;
    await load(first, 'immutable/first:v1');
    await load(second, 'immutable/second:v1');
    await d.docker(['tag', 'immutable/first:v1', target]);
    const pushed = await d.docker(['push', target], { timeoutMs: 120_000 });
    const digest = /v1: digest: (sha256:[a-f0-9]{64})/.exec(pushed.stdout)?.[1];
    expect(digest, pushed.stdout).toBeDefined();
    const again = await d.dockerResult(['push', target], { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`v1: digest: ${digest ?? ''}`);
    await d.docker(['tag', 'immutable/second:v1', target]);
    const moved = await d.dockerResult(['push', target], { timeoutMs: 120_000 });
    expect(moved.code).not.toBe(0);
    expect(`${moved.stdout}${moved.stderr}`).toMatch(/denied/i);
    const head = await raw(berth.url, 'HEAD', '/v2/team/app/manifests/v1', { headers: { Accept: ACCEPT_ALL } });
    expect(head.header('Docker-Content-Digest')).toBe(digest);
  }, 300_000);
});

describe('immutable tags over HTTP', () => {
  it('of two racing first pushes of different manifests to a covered tag, one wins and the other is denied', async () => {
    const berth = await startBerth({ immutableTags: [RULE] });
    try {
      const images = [makeImage(901), makeImage(902)];
      for (const img of images) for (const b of [img.config, ...img.layers]) await pushBlob(berth.url, 'team/race', b);
      for (let round = 0; round < 5; round += 1) {
        const tag = `v${round}`;
        const answers = await Promise.all(images.map((img) => putManifest(berth.url, 'team/race', tag, img.manifest, img.mediaType)));
        expect(answers.map((a) => a.status).sort()).toEqual([201, 403]);
        const winner = images[answers.findIndex((a) => a.status === 201)];
        const head = await raw(berth.url, 'HEAD', `/v2/team/race/manifests/${tag}`, { headers: { Accept: ACCEPT_ALL } });
        expect(head.header('Docker-Content-Digest')).toBe(winner?.manifest.digest);
      }
    } finally {
      await berth.close();
    }
  });

  it('refuses a repository delete while it holds a covered tag, and leaves it whole', async () => {
    const berth = await startBerth({ index: true, immutableTags: [RULE] });
    try {
      const img = makeImage(903);
      await pushImage(berth.url, 'team/kept', 'v1', img);
      await pushImage(berth.url, 'team/kept', 'latest', img);
      const refused = await raw(berth.url, 'DELETE', '/berth/v1/repositories/team/kept');
      expect(refused.status).toBe(403);
      expect(errorCode(refused)).toBe('DENIED');
      expect(refused.body.toString()).toContain('team/kept:v1');
      expect(refused.body.toString()).toContain('storage.immutabletags[0]');
      const tags = await raw(berth.url, 'GET', '/v2/team/kept/tags/list');
      expect((tags.json() as { tags: string[] }).tags).toEqual(['latest', 'v1']);
      // A repository whose tags no rule covers is deleted as usual.
      await pushImage(berth.url, 'team/loose', 'latest', img);
      const deleted = await raw(berth.url, 'DELETE', '/berth/v1/repositories/team/loose');
      expect(deleted.status).toBe(202);
    } finally {
      await berth.close();
    }
  });
});
