/**
 * Which item a driver path belongs to (a table, as paths.test.ts), and the observed driver: every write
 * under the layout is reported after it settles, failed ones too; reads and uploads are not.
 */
import { describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../digest.js';
import { createDriver } from '../driver/factory.js';
import { type IndexChange, type RegistryIndex, guardIndex, sliceSorted } from './index-port.js';
import { parseRepoName } from '../reference.js';
import { changesOf, observeDriver } from './index-observer.js';

const d = digestOf(Buffer.from('x'));
const hex = d.slice('sha256:'.length);
const R = '/docker/registry/v2/repositories';

describe('changesOf', () => {
  const repo = (name: string): object => ({ kind: 'repository', repo: name });
  it.each<[string, object[]]>([
    [`${R}/a/b/_manifests/tags/v1/current/link`, [{ kind: 'tag', repo: 'a/b', tag: 'v1' }, repo('a/b')]],
    [`${R}/a/b/_manifests/tags/v1/index/sha256/${hex}/link`, [{ kind: 'tag', repo: 'a/b', tag: 'v1' }, repo('a/b')]],
    [`${R}/a/b/_manifests/tags/v1`, [{ kind: 'tag', repo: 'a/b', tag: 'v1' }, repo('a/b')]],
    [`${R}/a/_manifests/revisions/sha256/${hex}/link`, [{ kind: 'revision', repo: 'a', digest: d }, repo('a')]],
    [`${R}/a/_manifests/revisions/sha256/${hex}`, [{ kind: 'revision', repo: 'a', digest: d }, repo('a')]],
    [`${R}/a/_manifests/revisions/sha256/not-hex`, [repo('a')]],
    [`${R}/a/_layers/sha256/${hex}/link`, [{ kind: 'layer', repo: 'a', digest: d }, repo('a')]],
    [`${R}/a/_layers/sha256/${hex}`, [{ kind: 'layer', repo: 'a', digest: d }, repo('a')]],
    [`${R}/a/_layers/sha256/not-hex`, [repo('a')]],
    [`${R}/a/_layers/sha256`, [{ kind: 'contents', repo: 'a' }]],
    [`${R}/a/_layers`, [{ kind: 'contents', repo: 'a' }]],
    [`${R}/a/_uploads/0b4c2d3e-1111-4222-8333-444455556666/data`, []],
    [`${R}/a/_other/thing`, []],
    [`${R}/a/_manifests/tags`, [{ kind: 'contents', repo: 'a' }]],
    [`${R}/a/_manifests/revisions/sha256`, [{ kind: 'contents', repo: 'a' }]],
    [`${R}/a/_manifests/revisions`, [{ kind: 'contents', repo: 'a' }]],
    [`${R}/a/b/_manifests`, [{ kind: 'contents', repo: 'a/b' }]],
    [`${R}/a/b`, [{ kind: 'everything' }]],
    [R, [{ kind: 'everything' }]],
    ['/docker/registry/v2', [{ kind: 'everything' }]],
    ['/docker', [{ kind: 'everything' }]],
    [`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`, [{ kind: 'blob', digest: d }]],
    [`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}`, [{ kind: 'blob', digest: d }]],
    ['/docker/registry/v2/blobs/sha256', []],
    [`/berth/quarantine/sha256/${hex}/data`, []],
  ])('%s', (path, changes) => {
    expect(changesOf(path)).toEqual(changes);
  });
});

/** An index that records what it is told and answers nothing. */
function recorder(): { index: RegistryIndex; told: IndexChange[] } {
  const told: IndexChange[] = [];
  const index: RegistryIndex = {
    repositories: async () => undefined,
    tags: async () => undefined,
    referrers: async () => undefined,
    onChange: async (c) => void told.push(c),
  };
  return { index, told };
}

describe('observeDriver', () => {
  const tagLink = `${R}/a/_manifests/tags/v1/current/link`;

  it('reports writes, moves (both ends) and deletes after they settle, and nothing for reads', async () => {
    const { index, told } = recorder();
    const driver = observeDriver(createDriver({ kind: 'inmemory' }), guardIndex(index));
    await driver.putContent(tagLink, Buffer.from(d));
    expect(told).toEqual([{ kind: 'tag', repo: 'a', tag: 'v1' }, { kind: 'repository', repo: 'a' }]);
    told.length = 0;
    await driver.getContent(tagLink);
    await driver.list(`${R}/a`);
    await driver.stat(tagLink);
    expect(told).toEqual([]);
    await driver.move(tagLink, `${R}/b/_layers/sha256/${hex}/link`);
    const layerB = [{ kind: 'layer', repo: 'b', digest: d }, { kind: 'repository', repo: 'b' }];
    expect(told).toEqual([{ kind: 'tag', repo: 'a', tag: 'v1' }, { kind: 'repository', repo: 'a' }, ...layerB]);
    told.length = 0;
    await driver.delete(`${R}/b/_layers/sha256/${hex}`);
    expect(told).toEqual(layerB);
  });

  it('reports a write that failed, since it may have changed something first; not one that found nothing', async () => {
    const { index, told } = recorder();
    const driver = observeDriver(createDriver({ kind: 'inmemory' }), guardIndex(index));
    await expect(driver.delete(`${R}/a/_manifests/tags/gone`)).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    expect(told).toEqual([]);
    await driver.putContent(tagLink, Buffer.from(d));
    told.length = 0;
    await expect(driver.putContent(`${R}/a/_manifests/tags/v1`, Buffer.from(d))).rejects.toMatchObject({ code: 'DRIVER_FAILURE' });
    expect(told).toEqual([{ kind: 'tag', repo: 'a', tag: 'v1' }, { kind: 'repository', repo: 'a' }]);
  });

  it('leaves upload writers alone and reports a writer that commits under the layout', async () => {
    const { index, told } = recorder();
    const driver = observeDriver(createDriver({ kind: 'inmemory' }), guardIndex(index));
    const upload = await driver.writer(`${R}/a/_uploads/0b4c2d3e-1111-4222-8333-444455556666/data`, { append: false });
    upload.end(Buffer.from('data'));
    await upload.commit();
    expect(told).toEqual([]);
    const blob = await driver.writer(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`, { append: false });
    blob.end(Buffer.from('x'));
    await blob.commit();
    expect(told).toEqual([{ kind: 'blob', digest: d as Digest }]);
  });
});

describe('guardIndex', () => {
  it('answers undefined without an index, and turns a rejecting index off for good', async () => {
    expect(await guardIndex(undefined).repositories({})).toBeUndefined();
    let calls = 0;
    const flaky: RegistryIndex = {
      repositories: async () => {
        calls += 1;
        if (calls === 1) throw new Error('broken');
        return ['wrong'];
      },
      tags: async () => ['wrong'],
      referrers: async () => [],
      onChange: async () => undefined,
    };
    const guarded = guardIndex(flaky);
    expect(await guarded.repositories({})).toBeUndefined();
    expect(guarded.active).toBe(false);
    expect(await guarded.repositories({})).toBeUndefined();
    expect(await guarded.tags(parseRepoName('a'), {})).toBeUndefined();
    expect(calls).toBe(1);
  });

  it('sliceSorted pages a sorted list as the HTTP layer does', () => {
    const all = ['a', 'b', 'c', 'd'];
    expect(sliceSorted(all, {})).toEqual(all);
    expect(sliceSorted(all, { after: 'b' })).toEqual(['c', 'd']);
    expect(sliceSorted(all, { after: '', limit: 2 })).toEqual(['a', 'b']);
    expect(sliceSorted(all, { after: 'bb', limit: 1 })).toEqual(['c']);
    expect(sliceSorted(all, { limit: 0 })).toEqual([]);
  });
});
