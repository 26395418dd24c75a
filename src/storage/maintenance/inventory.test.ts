/**
 * The inventory on every driver: what it lists (repositories, revisions, layers, tags with broken
 * links, blobs), what it reads from manifests (including unparsable and schema 1 ones), blob
 * verification, and its deletions.
 */
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../digest.js';
import type { StorageDriver } from '../driver/driver.js';
import { TEST_DRIVERS } from '../driver/suite/drivers.js';
import { referencesOf } from './inventory.js';
import { MEDIA_TYPES } from '../manifests/manifest-format.js';
import { paths } from '../paths.js';
import { parseRepoName, parseTag } from '../reference.js';
import { type LocalRegistry, createRegistry } from '../registry.js';


const app = parseRepoName('team/app');

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function pushBlob(registry: LocalRegistry, repo: typeof app, data: string): Promise<Digest> {
  const d = digestOf(Buffer.from(data));
  const s = await registry.repository(repo).uploads.start();
  await registry.repository(repo).uploads.commit(s.id, d, Readable.from([Buffer.from(data)]));
  return d;
}

function manifest(config: Digest, layers: Digest[], extra: object = {}): Buffer {
  const desc = (d: Digest): object => ({ mediaType: 'application/octet-stream', digest: d, size: 1 });
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: desc(config), layers: layers.map(desc), ...extra }));
}

describe.each(TEST_DRIVERS)('inventory over the %s driver', (_name, make) => {
  let driver: StorageDriver;
  let cleanup: () => Promise<void>;
  let registry: LocalRegistry;
  beforeEach(async () => {
    ({ driver, cleanup } = await make());
    registry = createRegistry({ driver, deleteEnabled: true });
  });
  afterEach(async () => {
    await cleanup();
  });

  it('lists an empty tree as empty', async () => {
    const inv = registry.inventory;
    expect(await collect(inv.repositories())).toEqual([]);
    expect(await collect(inv.blobs())).toEqual([]);
    expect(await collect(inv.revisions(app))).toEqual([]);
    expect(await collect(inv.tags(app))).toEqual([]);
  });

  it('lists repositories, revisions, layers, tags and blobs', async () => {
    const config = await pushBlob(registry, app, '{}');
    const layer = await pushBlob(registry, app, 'layer');
    await pushBlob(registry, parseRepoName('other'), 'other');
    const body = manifest(config, [layer]);
    const { digest: m } = await registry.repository(app).manifests.put({ tag: parseTag('v1') }, body, MEDIA_TYPES.ociManifest);
    const inv = registry.inventory;
    expect(await collect(inv.repositories())).toEqual(['other', 'team/app']);
    const revisions = await collect(inv.revisions(app));
    expect(revisions.map((r) => r.digest)).toEqual([m]);
    expect(revisions[0]!.path).toBe(paths.revisionLink(app, m));
    expect(Math.abs(revisions[0]!.modTime - Date.now())).toBeLessThan(60_000);
    expect((await collect(inv.layers(app))).map((l) => l.digest).sort()).toEqual([config, layer].sort());
    expect(await collect(inv.tags(app))).toEqual([{ tag: 'v1', path: paths.tagCurrentLink(app, parseTag('v1')), target: { digest: m } }]);
    const blobs = await collect(inv.blobs());
    expect(blobs.map((b) => b.digest).sort()).toEqual([config, layer, m, digestOf(Buffer.from('other'))].sort());
    expect(blobs.find((b) => b.digest === layer)?.size).toBe(5);
    expect(await inv.statBlob(layer)).toMatchObject({ digest: layer, size: 5 });
    expect(await inv.references(m)).toEqual({ ok: true, mediaType: MEDIA_TYPES.ociManifest, blobs: [config, layer], children: [] });
  });

  it('tells what is wrong with a tag link', async () => {
    const inv = registry.inventory;
    await driver.putContent(paths.tagCurrentLink(app, parseTag('empty')), Buffer.alloc(0));
    await driver.putContent(paths.tagCurrentLink(app, parseTag('junk')), Buffer.from('not a digest'));
    await driver.putContent(paths.tagIndexLink(app, parseTag('nocurrent'), digestOf(Buffer.from('x'))), Buffer.from('x'));
    expect((await collect(inv.tags(app))).map((t) => [t.tag, t.target])).toEqual([
      ['empty', { problem: 'empty' }],
      ['junk', { problem: 'invalid', text: 'not a digest' }],
      ['nocurrent', { problem: 'missing' }],
    ]);
  });

  it('answers, never throws, for a manifest it cannot read', async () => {
    const junk = digestOf(Buffer.from('junk'));
    await driver.putContent(paths.blobData(junk), Buffer.from('junk'));
    expect(await registry.inventory.references(junk)).toEqual({ ok: false, problem: expect.stringMatching(/^does not parse \(manifest invalid: body is not JSON/) });
    expect(await registry.inventory.references(digestOf(Buffer.from('absent')))).toEqual({ ok: false, problem: 'the manifest blob is missing' });
  });

  it('verifies blob digests by streaming the data', async () => {
    const d = await pushBlob(registry, app, 'content');
    expect(await registry.inventory.verifyBlob(d)).toEqual({ ok: true, size: 7 });
    await driver.putContent(paths.blobData(d), Buffer.from('conten'));
    expect(await registry.inventory.verifyBlob(d)).toEqual({ ok: false, problem: 'mismatch', actual: digestOf(Buffer.from('conten')), size: 6 });
    await driver.delete(paths.blobDir(d));
    expect(await registry.inventory.verifyBlob(d)).toEqual({ ok: false, problem: 'missing' });
  });

  it('deletes a revision with its tag index entries, a blob, a layer link, a tag', async () => {
    const config = await pushBlob(registry, app, '{}');
    const body = manifest(config, []);
    const { digest: m } = await registry.repository(app).manifests.put({ tag: parseTag('v1') }, body, MEDIA_TYPES.ociManifest);
    await registry.repository(app).manifests.delete({ tag: parseTag('v1') });
    await driver.putContent(paths.tagIndexLink(app, parseTag('v2'), m), Buffer.from(m));
    await driver.putContent(paths.tagCurrentLink(app, parseTag('v2')), Buffer.from(m));
    const inv = registry.inventory;
    expect(await inv.deleteRevision(app, m)).toBe(true);
    expect(await inv.deleteRevision(app, m)).toBe(false);
    await expect(driver.stat(paths.tagIndexLink(app, parseTag('v2'), m))).rejects.toThrow(/not found/);
    expect(await inv.deleteBlob(m)).toBe(paths.blobDir(m));
    expect(await inv.deleteBlob(m)).toBeUndefined();
    expect(await inv.deleteLayerLink(app, config)).toBe(true);
    expect(await collect(inv.layers(app))).toEqual([]);
    expect(await inv.deleteTag(app, parseTag('v2'))).toBe(true);
    expect(await collect(inv.tags(app))).toEqual([]);
  });

  it('moves a blob aside to the quarantine, outside the registry tree', async () => {
    const d = await pushBlob(registry, app, 'bad');
    const to = await registry.inventory.quarantineBlob(d);
    expect(to).toBe(paths.quarantineData(d));
    expect(to.startsWith(paths.root)).toBe(false);
    expect((await driver.getContent(to)).toString()).toBe('bad');
    expect(await registry.inventory.statBlob(d)).toBeUndefined();
    expect(await collect(registry.inventory.blobs())).toEqual([]);
  });
});

describe('referencesOf', () => {
  const d = (c: string): Digest => digestOf(Buffer.from(c));

  it('leaves foreign layers out and reads index children and subject', () => {
    const foreign = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: d('f'), size: 1, urls: ['https://x'] };
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: 'application/json', digest: d('c'), size: 1 },
      layers: [{ mediaType: 'application/octet-stream', digest: d('l'), size: 1 }, foreign],
      subject: { mediaType: MEDIA_TYPES.ociManifest, digest: d('s'), size: 1 },
    }));
    expect(referencesOf(body)).toEqual({ ok: true, mediaType: MEDIA_TYPES.ociManifest, blobs: [d('c'), d('l')], children: [], subject: d('s') });
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: d('m'), size: 1 }] }));
    expect(referencesOf(index)).toEqual({ ok: true, mediaType: MEDIA_TYPES.ociIndex, blobs: [], children: [d('m')] });
  });

  it('reads the layers of a Docker schema 1 manifest (a registry:2 tree may hold them)', () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [{ blobSum: d('a') }, { blobSum: d('b') }, { blobSum: d('a') }] }));
    expect(referencesOf(body)).toMatchObject({ ok: true, blobs: [d('a'), d('b')], children: [] });
  });
});
