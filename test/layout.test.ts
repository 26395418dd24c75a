/**
 * The storage tree Berth writes, file by file, against registry:2's layout (DESIGN.md §3): after
 * pushing a single-platform image, a multi-platform index, an artifact with a subject and leaving one
 * upload unfinished, the tree holds exactly the expected paths, the link files hold exactly their
 * digests, blob data is byte-exact and `startedat` has registry:2's format.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blobData, layerLink, revisionLink, tagLinks, uploadDir, v2 as layoutRoot } from './helpers/layout.js';
import {
  type Image, MT, artifactManifest, blob, descriptor, emptyConfig, makeImage, onLinux, platformIndex, pushBlob, pushImage, putManifest, raw,
} from './helpers/oci.js';

let berth: TestBerth;
const single = makeImage(1, { docker: true });
const amd = makeImage(2);
const arm = makeImage(3);
const index = platformIndex(MT.ociIndex, [onLinux('amd64', amd), onLinux('arm64', arm)]);
const empty = emptyConfig();
const signature = blob('signature bytes');
const artifact = artifactManifest(
  'application/vnd.example.signature',
  [descriptor('application/octet-stream', signature)],
  descriptor(MT.ociManifest, amd.manifest),
);
let uploadId = '';

const imageFiles = (repo: string, img: Image): string[] => [
  ...[img.config, ...img.layers].flatMap((b) => [blobData(b.digest), layerLink(repo, b.digest)]),
  blobData(img.manifest.digest),
  revisionLink(repo, img.manifest.digest),
];

beforeAll(async () => {
  berth = await startBerth();
  await pushImage(berth.url, 'library/single', 'v1', single);
  for (const img of [amd, arm]) await pushImage(berth.url, 'multi', img.manifest.digest, img);
  expect((await putManifest(berth.url, 'multi', 'latest', index, MT.ociIndex)).status).toBe(201);
  for (const b of [empty, signature]) await pushBlob(berth.url, 'multi', b);
  expect((await putManifest(berth.url, 'multi', artifact.digest, artifact, MT.ociManifest)).status).toBe(201);
  const started = await raw(berth.url, 'POST', '/v2/library/single/blobs/uploads/');
  uploadId = started.header('Docker-Upload-UUID') ?? '';
  const location = new URL(started.header('Location') ?? '', berth.url);
  await raw(berth.url, 'PATCH', `${location.pathname}${location.search}`, { body: Buffer.alloc(1000, 1) });
});
afterAll(async () => {
  expect(berth.errors).toEqual([]);
  await berth.close();
});

const v2 = (): string => layoutRoot(berth.root);

async function files(): Promise<string[]> {
  const all = await readdir(v2(), { recursive: true, withFileTypes: true });
  return all
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(v2().length + 1))
    .sort();
}

describe('the storage tree after a realistic push', () => {
  it('holds exactly the files registry:2 would write, and nothing else', async () => {
    const expected = [
      ...imageFiles('library/single', single),
      ...tagLinks('library/single', 'v1', single.manifest.digest),
      ...imageFiles('multi', amd),
      ...imageFiles('multi', arm),
      blobData(index.digest),
      revisionLink('multi', index.digest),
      ...tagLinks('multi', 'latest', index.digest),
      blobData(empty.digest),
      layerLink('multi', empty.digest),
      blobData(signature.digest),
      layerLink('multi', signature.digest),
      blobData(artifact.digest),
      revisionLink('multi', artifact.digest),
      `${uploadDir('library/single', uploadId)}/data`,
      `${uploadDir('library/single', uploadId)}/startedat`,
    ];
    expect(await files()).toEqual([...new Set(expected)].sort());
  });

  it('writes each link as the bare digest, with no newline', async () => {
    const links = (await files()).filter((f) => f.endsWith('/link'));
    expect(links.length).toBeGreaterThan(10);
    for (const link of links) {
      const content = await readFile(join(v2(), link), 'utf8');
      expect(content, link).toMatch(/^sha256:[a-f0-9]{64}$/);
      // The digest in a link equals the digest in its own path (for _layers, revisions and tag index).
      const inPath = /\/sha256\/([a-f0-9]{64})\/link$/.exec(link)?.[1];
      if (inPath !== undefined) expect(content, link).toBe(`sha256:${inPath}`);
    }
    expect(await readFile(join(v2(), 'repositories/multi/_manifests/tags/latest/current/link'), 'utf8')).toBe(index.digest);
  });

  it('stores blobs and manifests byte for byte as pushed', async () => {
    for (const b of [single.config, ...single.layers, single.manifest, index, artifact, signature]) {
      expect(await readFile(join(v2(), blobData(b.digest)))).toEqual(b.bytes);
    }
  });

  it("records an unfinished upload with registry:2's startedat format and its bytes so far", async () => {
    const dir = join(v2(), uploadDir('library/single', uploadId));
    const startedAt = await readFile(join(dir, 'startedat'), 'utf8');
    expect(startedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(Math.abs(Date.parse(startedAt) - Date.now())).toBeLessThan(60_000);
    expect((await stat(join(dir, 'data'))).size).toBe(1000);
  });

  it('keeps its own files out of docker/registry/v2: the root holds only that tree and berth/', async () => {
    // Berth's own folder holds the record of the process writing (filesystem-writers.ts); no index here.
    expect((await readdir(berth.root)).sort()).toEqual(['berth', 'docker']);
    expect(await readdir(join(berth.root, 'berth'))).toEqual(['writers']);
    expect(await readdir(join(berth.root, 'docker'))).toEqual(['registry']);
    expect(await readdir(join(berth.root, 'docker/registry'))).toEqual(['v2']);
  });
});
