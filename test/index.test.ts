/**
 * The LevelDB index end to end: a Berth with the index (`<root>/berth/index`) and a Berth without one
 * serving the same root must answer every catalog, tag list and referrers request identically (status,
 * Content-Type, body, Link header) through pushes, re-tags, deletes by tag and by digest, and n/last
 * paging; a tree changed while Berth was stopped (a repository copied in as registry:2 writes it, a
 * tag and a referrer removed) is answered correctly after a restart; a damaged or unopenable index
 * directory costs a warning and nothing else. Also the `index rebuild` command.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, formatResult, runConformance } from '../conformance/run.js';
import { indexCommand, serverHoldsIndex } from '../src/cli/index-command.js';
import { loadConfig } from '../src/config/parse.js';
import type { Digest } from '../src/storage/digest.js';
import { parseRepoName } from '../src/storage/reference.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, layerLink, repoDir, revisionLink, tagLinks, v2 } from './helpers/layout.js';
import { type Blob, MT, type RawResponse, artifactManifest, blob, descriptor, makeImage, pushBlob, pushImage, putManifest, raw } from './helpers/oci.js';

const started: TestBerth[] = [];
const roots: string[] = [];
afterEach(async () => {
  for (const b of started.splice(0).reverse()) await b.close();
  for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true });
});

/** A root that outlives the Berths serving it (removed after the test). */
async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'berth-index-'));
  roots.push(root);
  return root;
}

async function berth(opts: Parameters<typeof startBerth>[0]): Promise<TestBerth> {
  const b = await startBerth(opts);
  started.push(b);
  return b;
}

/** Stops `b` (and forgets it), keeping its root when it was given one. */
async function stop(b: TestBerth): Promise<void> {
  started.splice(started.indexOf(b), 1);
  await b.close();
}

/** Every listing request a client could make of this registry, and what it answered. */
async function listings(base: string, subjects: readonly [string, string][]): Promise<Record<string, unknown>> {
  const answers: Record<string, unknown> = {};
  const get = async (path: string): Promise<unknown> => {
    const res = await raw(base, 'GET', path);
    const answer = { status: res.status, type: res.header('Content-Type'), link: res.header('Link'), body: res.json() };
    answers[path] = answer;
    return answer;
  };
  const catalog = ((await get('/v2/_catalog')) as { body: { repositories: string[] } }).body.repositories;
  await get('/v2/_catalog?n=1');
  await get('/v2/_catalog?n=2');
  await get(`/v2/_catalog?n=2&last=${catalog[0] ?? ''}`);
  await get(`/v2/_catalog?last=${catalog[1] ?? ''}`);
  await get('/v2/_catalog?n=0');
  for (const repo of [...catalog, 'never/pushed']) {
    const tags = ((await get(`/v2/${repo}/tags/list`)) as { body: { tags?: string[] } }).body.tags ?? [];
    await get(`/v2/${repo}/tags/list?n=1`);
    await get(`/v2/${repo}/tags/list?n=2&last=${tags[0] ?? ''}`);
    await get(`/v2/${repo}/tags/list?last=${tags[1] ?? ''}`);
  }
  for (const [repo, subject] of subjects) {
    await get(`/v2/${repo}/referrers/${subject}`);
    await get(`/v2/${repo}/referrers/${subject}?artifactType=application/vnd.example.sig`);
  }
  return answers;
}

/** `indexed` answers from its index (it is ready), and answers what a walking Berth on the same root answers. */
async function expectSameAnswers(indexed: TestBerth, subjects: readonly [string, string][]): Promise<void> {
  expect(indexed.index?.state).toBe('ready');
  const walked = await berth({ root: indexed.root });
  try {
    expect(await listings(indexed.url, subjects)).toEqual(await listings(walked.url, subjects));
  } finally {
    await stop(walked);
  }
}

/** Pushes a signature artifact for `subject` by digest; answers it. */
async function pushSignature(base: string, repo: string, subject: Blob, seed: string): Promise<Blob> {
  const payload = blob(`signature ${seed}`);
  await pushBlob(base, repo, payload);
  await pushBlob(base, repo, blob('{}'));
  const sig = artifactManifest('application/vnd.example.sig', [descriptor('application/octet-stream', payload)], descriptor(MT.ociManifest, subject), {
    seed,
  });
  const res = await putManifest(base, repo, sig.digest, sig, MT.ociManifest);
  if (res.status !== 201) throw new Error(`push signature: ${res.status} ${res.body.toString()}`);
  return sig;
}

describe('the index answers what the walk answers', () => {
  it('through pushes, re-tags, deletes by tag and by digest, and n/last paging', async () => {
    const b = await berth({ root: await tempRoot(), index: true });
    const one = makeImage(1);
    const two = makeImage(2, { docker: true });
    const three = makeImage(3);
    for (const tag of ['v1', 'v1.1', 'latest', '1.0', 'A']) await pushImage(b.url, 'team/app', tag, one);
    await pushImage(b.url, 'team/app/nested', 'v1', two);
    await pushImage(b.url, 'team-app', 'v1', three);
    await pushImage(b.url, 'zeta', 'only', three);
    const sig = await pushSignature(b.url, 'team/app', one.manifest, 'a');
    await pushSignature(b.url, 'team/app', one.manifest, 'b');
    const subjects: [string, string][] = [['team/app', one.manifest.digest], ['team/app', two.manifest.digest], ['zeta', three.manifest.digest]];
    await expectSameAnswers(b, subjects);
    expect(await b.index?.tags(parseRepoName('team/app'), {})).toEqual(['1.0', 'A', 'latest', 'v1', 'v1.1']);

    await pushImage(b.url, 'team/app', 'latest', two); // re-tag
    expect((await raw(b.url, 'DELETE', '/v2/team/app/manifests/v1.1')).status).toBe(202); // by tag
    expect((await raw(b.url, 'DELETE', `/v2/team/app/manifests/${sig.digest}`)).status).toBe(202); // a referrer by digest
    expect((await raw(b.url, 'DELETE', `/v2/team-app/manifests/${three.manifest.digest}`)).status).toBe(202); // with its tag
    await expectSameAnswers(b, subjects);
    expect(await b.index?.tags(parseRepoName('team-app'), {})).toEqual([]);
    expect(await b.index?.referrers(parseRepoName('team/app'), one.manifest.digest as Digest)).toHaveLength(1);

    expect((await raw(b.url, 'DELETE', `/v2/team/app/manifests/${one.manifest.digest}`)).status).toBe(202);
    await expectSameAnswers(b, subjects);
    expect(await b.index?.tags(parseRepoName('team/app'), {})).toEqual(['latest']);
    expect(b.errors).toEqual([]);
    expect(b.warnings).toEqual([]);
  });

  it('pages a large catalog and tag list by n/last exactly as the walk does', async () => {
    const b = await berth({ root: await tempRoot(), index: true });
    const img = makeImage(7);
    for (let i = 0; i < 25; i += 1) await pushImage(b.url, `r${String(i % 7)}/x${String(i)}`, 'v1', img);
    for (let i = 0; i < 30; i += 1) await putManifest(b.url, 'r0/x0', `t${String(i).padStart(i % 2 ? 2 : 1, '0')}`, img.manifest, img.mediaType);
    const walked = await berth({ root: b.root });
    for (const n of [1, 3, 10, 1000]) {
      for (const base of ['/v2/_catalog', '/v2/r0/x0/tags/list']) {
        let path: string | undefined = `${base}?n=${String(n)}`;
        for (let pages = 0; path !== undefined && pages < 100; pages += 1) {
          const a: RawResponse = await raw(b.url, 'GET', path);
          const w: RawResponse = await raw(walked.url, 'GET', path);
          expect({ status: a.status, link: a.header('Link'), body: a.json() }).toEqual({ status: w.status, link: w.header('Link'), body: w.json() });
          const next: string | undefined = a.header('Link')?.match(/^<([^>]+)>/)?.[1];
          path = next;
        }
      }
    }
  });
});

describe('the conformance suite against a Berth answering from its index', () => {
  it('passes every check: every listing sees the writes acknowledged before it', async () => {
    const b = await berth({ root: await tempRoot(), index: true });
    const summary = await runConformance({ ...DEFAULT_SETTINGS, url: b.url, autoMount: true });
    expect(summary.results.filter((r) => r.outcome === 'fail').map(formatResult)).toEqual([]);
    expect(summary.passed).toBeGreaterThan(90);
    expect(b.index?.state).toBe('ready');
    expect(await b.index?.repositories({})).toEqual((await raw(b.url, 'GET', '/v2/_catalog').then((r) => r.json() as { repositories: string[] })).repositories);
    expect(b.errors).toEqual([]);
  });
});

/** Writes a repository as registry:2 lays it out: blobs, layer links, the revision, one tag. */
async function writeRegistry2Repo(root: string, repo: string, tag: string, img: ReturnType<typeof makeImage>): Promise<void> {
  const put = async (rel: string, data: Uint8Array | string): Promise<void> => {
    const path = join(v2(root), rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
  };
  for (const b of [img.config, ...img.layers, img.manifest]) await put(blobData(b.digest), b.bytes);
  for (const b of [img.config, ...img.layers]) await put(layerLink(repo, b.digest), b.digest);
  await put(revisionLink(repo, img.manifest.digest), img.manifest.digest);
  for (const link of tagLinks(repo, tag, img.manifest.digest)) await put(link, img.manifest.digest);
}

describe('a tree changed while Berth was stopped', () => {
  it('is answered correctly after a restart, never from the stale index', async () => {
    const root = await tempRoot();
    const first = await berth({ root, index: true });
    const one = makeImage(11);
    await pushImage(first.url, 'kept', 'v1', one);
    await pushImage(first.url, 'kept', 'v2', one);
    await pushImage(first.url, 'gone', 'v1', one);
    const sig = await pushSignature(first.url, 'kept', one.manifest, 'x');
    const subjects: [string, string][] = [['kept', one.manifest.digest], ['copied/in', one.manifest.digest]];
    await expectSameAnswers(first, subjects);
    await stop(first);

    // Behind Berth's back: a tag removed, a referrer's revision removed, a repository removed, one copied in.
    const repos = join(v2(root), 'repositories');
    await rm(join(repos, 'kept/_manifests/tags/v2'), { recursive: true });
    await rm(join(repos, `kept/_manifests/revisions/sha256/${sig.digest.slice(7)}`), { recursive: true });
    await rm(join(v2(root), repoDir('gone')), { recursive: true });
    await writeRegistry2Repo(root, 'copied/in', 'stable', makeImage(12, { docker: true }));

    const second = await berth({ root, index: true });
    await expectSameAnswers(second, subjects);
    expect(await second.index?.repositories({})).toEqual(['copied/in', 'kept']);
    expect(await second.index?.tags(parseRepoName('kept'), {})).toEqual(['v1']);
    expect(await second.index?.referrers(parseRepoName('kept'), one.manifest.digest as Digest)).toEqual([]);
    expect(await second.index?.generation()).toMatchObject({ generation: 2, state: 'complete' });
  });
});

describe('a broken index directory', () => {
  it('damaged: a warning, the directory is rebuilt, and every answer is right', async () => {
    const root = await tempRoot();
    const first = await berth({ root, index: true });
    const img = makeImage(21);
    await pushImage(first.url, 'app', 'v1', img);
    await stop(first);
    const dir = join(root, 'berth', 'index');
    for (const f of await readdir(dir)) if (f !== 'LOCK') await writeFile(join(dir, f), 'not leveldb\n');

    const second = await berth({ root, index: true });
    expect(second.warnings.join('\n')).toContain('damaged');
    await expectSameAnswers(second, [['app', img.manifest.digest]]);
  });

  it('unopenable: a warning, no index, and storage answers', async () => {
    const first = await berth({ root: await tempRoot() });
    const img = makeImage(22);
    await pushImage(first.url, 'app', 'v1', img);
    await mkdir(join(first.root, 'berth'), { recursive: true });
    await writeFile(join(first.root, 'berth', 'index'), 'a file where the index directory should be');
    const b = await berth({ root: first.root, index: true });
    expect(b.index).toBeUndefined();
    expect(b.warnings.join('\n')).toContain('cannot open the index database');
    expect((await raw(b.url, 'GET', '/v2/_catalog')).json()).toEqual({ repositories: ['app'] });
    expect((await raw(b.url, 'GET', '/v2/app/tags/list')).json()).toEqual({ name: 'app', tags: ['v1'] });
    expect(b.errors).toEqual([]);
  });
});

describe('berth index rebuild', () => {
  it('rebuilds the index of a stopped registry, and refuses while a server holds it', async () => {
    const root = await tempRoot();
    const b = await berth({ root, index: true });
    const img = makeImage(31);
    await pushImage(b.url, 'app', 'v1', img);
    const config = join(b.root, 'config.yml');
    await writeFile(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${b.root}\n`);
    const loaded = await loadConfig({ file: config, env: {} });
    expect(await serverHoldsIndex(loaded)).toBe(true);
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      expect(await indexCommand(['rebuild', config], {})).toBe(1); // the server holds the database
      expect(await indexCommand(['rebuild', config, 'extra'], {})).toBe(2);
    } finally {
      process.stderr.write = stderr;
    }
    await stop(b);
    expect(await serverHoldsIndex(loaded)).toBe(false);
    const stdout = process.stdout.write;
    let printed = '';
    process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write;
    try {
      expect(await indexCommand(['rebuild', config], {})).toBe(0);
    } finally {
      process.stdout.write = stdout;
    }
    expect(printed).toMatch(/^index rebuilt: generation 2, 1 repositories, 1 tags, 0 referrers/);
    const after = await berth({ root, index: true });
    expect(await after.index?.generation()).toMatchObject({ generation: 3, state: 'complete' });
  });
});
