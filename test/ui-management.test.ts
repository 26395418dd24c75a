/**
 * The web UI's endpoints of the management API, on real servers:
 * - `GET /berth/v1/repositories/<name>/tags`: every tag with the digest, media type and size of its
 *   manifest and its push time, the same from the index and from a storage walk; pages with `Link`;
 *   the tags named by `tag`; sorted by version or push time on the server (`sort`, with `total` and a
 *   cursor that holds across deletes and re-pushes); NAME_UNKNOWN, and refused without pull.
 * - `GET /berth/v1/status` and `POST /berth/v1/gc` on `berth serve`: the document's figures, a dry run
 *   then a real run listed among the last runs, the bad parameter and the grants they need.
 */
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GC_ACCESS } from '../src/auth/access.js';
import { grantFor } from '../src/auth/rules.js';
import { type Serving, serve } from '../src/cli/serve.js';
import { builtinAuth, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { MT, blob, errorCode, makeImage, pushBlob, pushImage, raw } from './helpers/oci.js';
import { sleep } from './helpers/tools.js';

interface TagJson {
  tag: string;
  digest: string | null;
  mediaType: string | null;
  size: number | null;
  pushed: string | null;
}

const images = [makeImage(1), makeImage(2, { docker: true }), makeImage(3)];

describe.each([{ index: true }, { index: false }])('GET /berth/v1/repositories/<name>/tags (index: $index)', ({ index }) => {
  let berth: TestBerth;
  const before = Date.now() - 2000; // file times have a coarser clock than Date.now
  beforeAll(async () => {
    berth = await startBerth({ index });
    await pushImage(berth.url, 'team/app', 'v1', images[0]!);
    await pushImage(berth.url, 'team/app', 'latest', images[0]!);
    await pushImage(berth.url, 'team/app', 'v2', images[1]!);
    await pushImage(berth.url, 'team/app', 'v10', images[2]!);
  });
  afterAll(() => berth.close());

  it('lists every tag with its manifest digest, media type, size and push time', async () => {
    const res = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags');
    expect(res.status, res.body.toString()).toBe(200);
    const { tags } = res.json() as { tags: TagJson[] };
    expect(tags.map((t) => t.tag)).toEqual(['latest', 'v1', 'v10', 'v2']);
    const byTag = new Map(tags.map((t) => [t.tag, t]));
    for (const [tag, img] of [['v1', images[0]!], ['latest', images[0]!], ['v2', images[1]!], ['v10', images[2]!]] as const) {
      expect(byTag.get(tag), tag).toMatchObject({ digest: img.manifest.digest, mediaType: img.mediaType, size: img.manifest.size });
      const pushed = Date.parse(byTag.get(tag)?.pushed ?? '');
      expect(pushed, tag).toBeGreaterThanOrEqual(before);
      expect(pushed, tag).toBeLessThanOrEqual(Date.now());
    }
    expect(byTag.get('v2')?.mediaType).toBe(MT.dockerManifest);
  });

  it('pages with n and last, and a Link to the next page', async () => {
    const first = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags?n=3');
    expect((first.json() as { tags: TagJson[] }).tags.map((t) => t.tag)).toEqual(['latest', 'v1', 'v10']);
    expect(first.header('Link')).toBe('</berth/v1/repositories/team/app/tags?n=3&last=v10>; rel="next"');
    const second = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags?n=3&last=v10');
    expect((second.json() as { tags: TagJson[] }).tags.map((t) => t.tag)).toEqual(['v2']);
    expect(second.header('Link')).toBeUndefined();
    const bad = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags?n=x');
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe('PAGINATION_NUMBER_INVALID');
  });

  it('answers the tags named by tag (those that exist, in tag order); a bad tag or too many are refused', async () => {
    const res = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags?tag=v2&tag=latest&tag=nope&tag=v2');
    expect(res.status, res.body.toString()).toBe(200);
    const { tags } = res.json() as { tags: TagJson[] };
    expect(tags.map((t) => [t.tag, t.digest, t.mediaType])).toEqual([
      ['latest', images[0]!.manifest.digest, images[0]!.mediaType], ['v2', images[1]!.manifest.digest, MT.dockerManifest],
    ]);
    expect(Date.parse(tags[0]?.pushed ?? '')).toBeGreaterThanOrEqual(before);
    expect(res.header('Link')).toBeUndefined();
    const bad = await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags?tag=v1&tag=-x');
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe('TAG_INVALID');
    const many = Array.from({ length: 101 }, (_, i) => `tag=t${i}`).join('&');
    const tooMany = await raw(berth.url, 'GET', `/berth/v1/repositories/team/app/tags?${many}`);
    expect(tooMany.status).toBe(400);
    expect(errorCode(tooMany)).toBe('PAGINATION_NUMBER_INVALID');
    const unknown = await raw(berth.url, 'GET', '/berth/v1/repositories/no/such/tags?tag=v1');
    expect(errorCode(unknown)).toBe('NAME_UNKNOWN');
  });

  it('sorts by version on the server (newest first), pages with a Link cursor and gives the total', async () => {
    for (const tag of ['1.0', '1.2', '1.10', '2.0-rc1', 'latest']) await pushImage(berth.url, 'team/sorted', tag, images[0]!);
    const all = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=version');
    expect(all.status, all.body.toString()).toBe(200);
    expect(all.json()).toMatchObject({ total: 5, tags: [{ tag: '2.0-rc1' }, { tag: '1.10' }, { tag: '1.2' }, { tag: '1.0' }, { tag: 'latest' }] });
    expect((all.json() as { tags: TagJson[] }).tags[0]).toMatchObject({ digest: images[0]!.manifest.digest, mediaType: images[0]!.mediaType, size: images[0]!.manifest.size });
    const first = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=version&n=2');
    expect(tagsOf(first)).toEqual(['2.0-rc1', '1.10']);
    expect(first.header('Link')).toBe('</berth/v1/repositories/team/sorted/tags?sort=version&n=2&last=1.10>; rel="next"');
    const second = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=version&n=2&last=1.10');
    expect(tagsOf(second)).toEqual(['1.2', '1.0']);
    const third = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=version&n=2&last=1.0');
    expect(tagsOf(third)).toEqual(['latest']);
    expect(third.header('Link')).toBeUndefined();
    // A cursor tag deleted since (or never there) still marks a place in the order.
    expect(tagsOf(await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=version&n=2&last=1.5'))).toEqual(['1.2', '1.0']);
    // sort=name is the default order.
    expect(tagsOf(await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=name'))).toEqual(['1.0', '1.10', '1.2', '2.0-rc1', 'latest']);
    const unknown = await raw(berth.url, 'GET', '/berth/v1/repositories/no/such/tags?sort=version');
    expect(errorCode(unknown)).toBe('NAME_UNKNOWN');
  });

  it('sorts by push time on the server; the Link carries the cursor\'s push time, so a tag pushed again between pages is not shown twice; a push moves the tag up', async () => {
    const times = [['1.0', 3], ['1.2', 1], ['1.10', 5], ['2.0-rc1', 2], ['latest', 4]] as const; // minutes after an hour ago
    const base = Math.floor(Date.now() / 1000) - 3600;
    for (const [tag, min] of times) await setPushTime(berth.root, 'team/sorted', tag, base + min * 60);
    const first = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=pushed&n=2');
    expect(first.status, first.body.toString()).toBe(200);
    expect(tagsOf(first)).toEqual(['1.10', 'latest']);
    expect((first.json() as { tags: TagJson[]; total: number }).total).toBe(5);
    expect((first.json() as { tags: TagJson[] }).tags[0]?.pushed).toBe(new Date((base + 5 * 60) * 1000).toISOString());
    const link = /^<([^>]+)>; rel="next"$/.exec(first.header('Link') ?? '')?.[1] ?? '';
    expect(link).toBe(`/berth/v1/repositories/team/sorted/tags?sort=pushed&n=2&last=latest&lastpushed=${encodeURIComponent(new Date((base + 4 * 60) * 1000).toISOString())}`);
    await pushImage(berth.url, 'team/sorted', 'latest', images[1]!); // pushed again (through the API, as the index hears it): now the newest
    expect(tagsOf(await raw(berth.url, 'GET', link))).toEqual(['1.0', '2.0-rc1']);
    // Without lastpushed the tag's push time now is its place: latest is first now, so everything follows it.
    expect(tagsOf(await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=pushed&n=2&last=latest'))).toEqual(['1.10', '1.0']);
    const bad = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=pushed&last=latest&lastpushed=yesterday');
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe('NAME_INVALID');
    const badSort = await raw(berth.url, 'GET', '/berth/v1/repositories/team/sorted/tags?sort=size');
    expect(badSort.status).toBe(400);
    expect(errorCode(badSort)).toBe('NAME_INVALID');
  });

  it('follows a tag moved and a tag deleted; an unknown repository is NAME_UNKNOWN', async () => {
    await pushImage(berth.url, 'team/app', 'latest', images[2]!);
    expect((await raw(berth.url, 'DELETE', '/v2/team/app/manifests/v2')).status).toBe(202);
    const { tags } = (await raw(berth.url, 'GET', '/berth/v1/repositories/team/app/tags')).json() as { tags: TagJson[] };
    expect(tags.map((t) => [t.tag, t.digest])).toEqual([
      ['latest', images[2]!.manifest.digest], ['v1', images[0]!.manifest.digest], ['v10', images[2]!.manifest.digest],
    ]);
    const unknown = await raw(berth.url, 'GET', '/berth/v1/repositories/no/such/tags');
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('NAME_UNKNOWN');
  });
});

/** The tag names of a tags endpoint answer. */
function tagsOf(res: { json(): unknown }): string[] {
  return (res.json() as { tags: TagJson[] }).tags.map((t) => t.tag);
}

/** Sets a tag's push time (its current link's modification time), in seconds since the epoch. */
async function setPushTime(root: string, repo: string, tag: string, seconds: number): Promise<void> {
  await utimes(join(root, 'docker/registry/v2/repositories', repo, '_manifests/tags', tag, 'current/link'), seconds, seconds);
}

describe('the tags endpoint under the built-in issuer', () => {
  let berth: TestBerth;
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-ui-mgmt-auth-'));
    const loader = await startBerth({ root });
    await pushImage(loader.url, 'private/app', 'v1', images[0]!);
    await loader.close();
    const htpasswd = await writeHtpasswd(root, { alice: 'pw' });
    berth = await startBerth({ root, auth: builtinAuth({ htpasswd, rules: [{ repositories: ['private/**'], users: ['alice'], actions: ['pull'] }] }) });
  });
  afterAll(async () => {
    await berth.close();
    await rm(root, { recursive: true, force: true });
  });

  it('needs pull on the repository: anonymous is challenged for it, alice gets the list', async () => {
    const anonymous = await raw(berth.url, 'GET', '/berth/v1/repositories/private/app/tags');
    expect(anonymous.status).toBe(401);
    expect(anonymous.header('WWW-Authenticate')).toContain('scope="repository:private/app:pull"');
    const tokenRes = await fetch(`${berth.url}/auth/token?service=berth&scope=repository:private/app:pull`, {
      headers: { Authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` },
    });
    const { token } = (await tokenRes.json()) as { token: string };
    const res = await raw(berth.url, 'GET', '/berth/v1/repositories/private/app/tags', { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect((res.json() as { tags: TagJson[] }).tags.map((t) => t.digest)).toEqual([images[0]!.manifest.digest]);
  });
});

describe('GET /berth/v1/status and POST /berth/v1/gc on berth serve', () => {
  let dir: string;
  let s: Serving;
  const loose = blob('unreferenced, for the collector');
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-ui-status-'));
    const config = join(dir, 'config.yml');
    await writeFile(config, [
      'version: 0.1', 'log:', '  level: error', 'http:', '  addr: 127.0.0.1:0',
      'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`, '  delete:', '    enabled: true',
      '  maintenance:', '    gc:', '      graceperiod: 0s',
      '  quotas:', '    - repositories: ["team/**"]', '      storage: 10GiB', '      maxrepositories: 50', '',
    ].join('\n'));
    s = await serve(config, {});
  });
  afterAll(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('describes the server', async () => {
    const res = await raw(s.running.url, 'GET', '/berth/v1/status');
    expect(res.status, res.body.toString()).toBe(200);
    expect(res.json()).toMatchObject({
      version: '0.1.0',
      storage: { driver: 'filesystem', deleteEnabled: true, readOnly: false },
      auth: 'none',
      health: { status: 'ok', checks: {} },
      collector: { enabled: false, gracePeriodSeconds: 0, deleteUntagged: false, dryRun: false, lastRuns: [] },
      mirror: { upstreams: [] },
      policies: { quotas: 'team/**: storage 10 GiB, 50 repositories' },
    });
  });

  it('runs a dry run, then a real collection, and lists both among the last runs', async () => {
    await pushBlob(s.running.url, 'app', loose);
    await sleep(5); // the run must start after the upload's link time (grace period 0s)
    const dry = await raw(s.running.url, 'POST', '/berth/v1/gc?dryrun=true');
    expect(dry.status, dry.body.toString()).toBe(200);
    expect(dry.json()).toMatchObject({ dryRun: true, swept: 1, bytesFreed: loose.size });
    expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status).toBe(200);
    const real = await raw(s.running.url, 'POST', '/berth/v1/gc?dryrun=false');
    expect(real.json()).toMatchObject({ dryRun: false, swept: 1, bytesFreed: loose.size });
    expect((await raw(s.running.url, 'GET', `/v2/app/blobs/${loose.digest}`)).status).toBe(404);
    const { collector } = (await raw(s.running.url, 'GET', '/berth/v1/status')).json() as { collector: { lastRuns: { dryRun: boolean; swept: number }[] } };
    expect(collector.lastRuns.map((r) => [r.dryRun, r.swept])).toEqual([[false, 1], [true, 1]]);
  });

  it('refuses a bad dryrun value and GET on /berth/v1/gc', async () => {
    const bad = await raw(s.running.url, 'POST', '/berth/v1/gc?dryrun=yes');
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe('NAME_INVALID');
    const get = await raw(s.running.url, 'GET', '/berth/v1/gc');
    expect(get.status).toBe(405);
    expect(get.header('Allow')).toBe('POST');
  });
});

describe('who may run the collector through the API (registry:gc:*)', () => {
  const rules = [
    { repositories: ['**'], users: ['root'], actions: ['delete'] },
    { repositories: ['**'], users: ['ops'], actions: ['*'] },
    { repositories: ['team/**'], users: ['lead'], actions: ['*'], catalog: true },
    { repositories: ['**'], users: ['reader'], actions: ['pull'], catalog: true },
  ];
  it.each([['root', true], ['ops', true], ['lead', false], ['reader', false], [undefined, false]] as const)('%s: %s', (subject, may) => {
    expect(grantFor({ subject }, [GC_ACCESS], rules, {})).toEqual(may ? [GC_ACCESS] : []);
  });
});
