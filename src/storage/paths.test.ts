/**
 * Table test of every path kind against registry:2's on-disk layout (DS/paths_test.go; the listing of a
 * real registry:2 root is in DESIGN.md §3). Digests are full-length so the hex2 folder and the hex are real.
 */
import { describe, expect, it } from 'vitest';
import type { Digest } from './digest.js';
import { parseDigest } from './digest.js';
import {
  baseName, blobDataDigestOf, formatStartedAt, LAYERS_DIR, type LayoutPath, linkContent, linkDigestOf, MANIFESTS_DIR, parsePath, paths,
  repoNameOfDir, tagsOfListing, UPLOADS_DIR,
} from './paths.js';
import { parseRepoName, parseTag, parseUploadId } from './reference.js';

function digest(s: string): Digest {
  const d = parseDigest(s);
  if (d === undefined) throw new Error(`test digest is not valid: ${s}`);
  return d;
}

/** sha256("hello") and sha512("hello"). */
const HEX256 = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const HEX512 =
  '9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043';
const D256 = digest(`sha256:${HEX256}`);
const D512 = digest(`sha512:${HEX512}`);

const V2 = '/docker/registry/v2';
const UUID = parseUploadId('41f2948d-9757-48f7-bc4c-fb6d86687a4f');
const TINY = parseRepoName('library/tiny');
const ABC = parseRepoName('a/b/c');
const BUSYBOX = parseRepoName('busybox');
const V1 = parseTag('v1');

describe('paths', () => {
  it('uses the registry:2 directory names', () => {
    expect([LAYERS_DIR, MANIFESTS_DIR, UPLOADS_DIR]).toEqual(['_layers', '_manifests', '_uploads']);
  });

  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['root', paths.root, V2],
    ['blobsRoot', paths.blobsRoot, `${V2}/blobs`],
    ['blobsOf sha256', paths.blobsOf('sha256'), `${V2}/blobs/sha256`],
    ['blobsOf sha512', paths.blobsOf('sha512'), `${V2}/blobs/sha512`],
    ['blobDir sha256', paths.blobDir(D256), `${V2}/blobs/sha256/2c/${HEX256}`],
    ['blobData sha256', paths.blobData(D256), `${V2}/blobs/sha256/2c/${HEX256}/data`],
    ['blobDir sha512', paths.blobDir(D512), `${V2}/blobs/sha512/9b/${HEX512}`],
    ['blobData sha512', paths.blobData(D512), `${V2}/blobs/sha512/9b/${HEX512}/data`],

    ['repositoriesRoot', paths.repositoriesRoot, `${V2}/repositories`],
    ['repo single', paths.repo(BUSYBOX), `${V2}/repositories/busybox`],
    ['repo nested', paths.repo(TINY), `${V2}/repositories/library/tiny`],
    ['repo deeply nested', paths.repo(ABC), `${V2}/repositories/a/b/c`],

    ['layersOf', paths.layersOf(TINY, 'sha256'), `${V2}/repositories/library/tiny/_layers/sha256`],
    ['layerLink sha256', paths.layerLink(TINY, D256), `${V2}/repositories/library/tiny/_layers/sha256/${HEX256}/link`],
    ['layerLink sha512', paths.layerLink(ABC, D512), `${V2}/repositories/a/b/c/_layers/sha512/${HEX512}/link`],
    ['layerLinkDir', paths.layerLinkDir(TINY, D256), `${V2}/repositories/library/tiny/_layers/sha256/${HEX256}`],

    ['manifests', paths.manifests(TINY), `${V2}/repositories/library/tiny/_manifests`],
    ['revisionsOf', paths.revisionsOf(TINY, 'sha256'), `${V2}/repositories/library/tiny/_manifests/revisions/sha256`],
    [
      'revisionLink',
      paths.revisionLink(TINY, D256),
      `${V2}/repositories/library/tiny/_manifests/revisions/sha256/${HEX256}/link`,
    ],
    [
      'revisionLink sha512',
      paths.revisionLink(ABC, D512),
      `${V2}/repositories/a/b/c/_manifests/revisions/sha512/${HEX512}/link`,
    ],
    ['revisionDir', paths.revisionDir(TINY, D256), `${V2}/repositories/library/tiny/_manifests/revisions/sha256/${HEX256}`],

    ['tags', paths.tags(TINY), `${V2}/repositories/library/tiny/_manifests/tags`],
    ['tag', paths.tag(TINY, V1), `${V2}/repositories/library/tiny/_manifests/tags/v1`],
    ['tagCurrentLink', paths.tagCurrentLink(TINY, V1), `${V2}/repositories/library/tiny/_manifests/tags/v1/current/link`],
    [
      'tagCurrentLink busybox:1',
      paths.tagCurrentLink(BUSYBOX, parseTag('1')),
      `${V2}/repositories/busybox/_manifests/tags/1/current/link`,
    ],
    [
      'tagIndexLink',
      paths.tagIndexLink(TINY, V1, D256),
      `${V2}/repositories/library/tiny/_manifests/tags/v1/index/sha256/${HEX256}/link`,
    ],

    ['uploads', paths.uploads(TINY), `${V2}/repositories/library/tiny/_uploads`],
    ['upload', paths.upload(TINY, UUID), `${V2}/repositories/library/tiny/_uploads/${UUID}`],
    ['uploadData', paths.uploadData(TINY, UUID), `${V2}/repositories/library/tiny/_uploads/${UUID}/data`],
    ['uploadStartedAt', paths.uploadStartedAt(TINY, UUID), `${V2}/repositories/library/tiny/_uploads/${UUID}/startedat`],
    [
      'uploadHashStates',
      paths.uploadHashStates(TINY, UUID, 'sha256'),
      `${V2}/repositories/library/tiny/_uploads/${UUID}/hashstates/sha256`,
    ],
    [
      'uploadHashState',
      paths.uploadHashState(TINY, UUID, 'sha256', 1048576),
      `${V2}/repositories/library/tiny/_uploads/${UUID}/hashstates/sha256/1048576`,
    ],
    [
      'uploadData nested',
      paths.uploadData(ABC, UUID),
      `${V2}/repositories/a/b/c/_uploads/41f2948d-9757-48f7-bc4c-fb6d86687a4f/data`,
    ],
  ];

  it.each(cases)('%s', (_what, actual, expected) => {
    expect(actual).toBe(expected);
  });
});

describe('linkContent', () => {
  it('is the digest bytes with no trailing newline', () => {
    const bytes = linkContent(D256);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(bytes.toString('utf8')).toBe(`sha256:${HEX256}`);
    expect(bytes.length).toBe(7 + 64);
    expect(bytes.at(-1)).not.toBe(0x0a);
  });

  it('writes sha512 links the same way', () => {
    expect(linkContent(D512).equals(Buffer.from(`sha512:${HEX512}`, 'ascii'))).toBe(true);
  });
});

describe('formatStartedAt', () => {
  it.each([
    ['whole seconds', new Date(Date.UTC(2026, 10, 22, 11, 2, 49)), '2026-11-22T11:02:49Z'],
    ['drops milliseconds', new Date(Date.UTC(2026, 10, 22, 11, 2, 49, 999)), '2026-11-22T11:02:49Z'],
    ['parsed with an offset is written in UTC', new Date('2026-11-22T12:02:49.500+01:00'), '2026-11-22T11:02:49Z'],
    ['epoch', new Date(0), '1970-01-01T00:00:00Z'],
  ])('%s', (_what, date, expected) => {
    expect(formatStartedAt(date)).toBe(expected);
  });

  it('matches RFC 3339 UTC with whole seconds and no newline', () => {
    expect(formatStartedAt(new Date())).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  });
});

describe('baseName', () => {
  it.each([
    [paths.blobData(D256), 'data'],
    [paths.layerLinkDir(TINY, D256), HEX256],
    [paths.upload(TINY, UUID), UUID],
    [`${V2}/repositories/library/tiny/_manifests/tags/v1`, 'v1'],
    ['/a', 'a'],
    ['a', 'a'],
    ['/a/', ''],
  ])('%s → %s', (path, expected) => {
    expect(baseName(path)).toBe(expected);
  });
});

describe('repoNameOfDir', () => {
  it.each([
    [paths.repo(BUSYBOX), 'busybox'],
    [paths.repo(TINY), 'library/tiny'],
    [paths.repo(ABC), 'a/b/c'],
    [`${V2}/repositories/x`, 'x'],
  ])('%s → %s', (dir, expected) => {
    expect(repoNameOfDir(dir)).toBe(expected);
  });

  it('inverts repo() for nested names', () => {
    for (const n of ['a', 'a/b', 'library/tiny', 'a/b/c/d-e_f.g']) {
      expect(repoNameOfDir(paths.repo(parseRepoName(n)))).toBe(n);
    }
  });
});

describe('parsePath: every path kind read back (round trip)', () => {
  const layer = (repo: typeof TINY, d: Digest, rest: string[]): LayoutPath => ({ kind: 'layer', repo, named: true, digest: d, rest });
  const revision = (repo: typeof TINY, d: Digest, rest: string[]): LayoutPath => ({ kind: 'revision', repo, named: true, digest: d, rest });
  const cases: ReadonlyArray<readonly [string, string, LayoutPath]> = [
    ['root', '/', { kind: 'ancestor' }],
    ['/docker', '/docker', { kind: 'ancestor' }],
    ['paths.root', paths.root, { kind: 'ancestor' }],
    ['repositoriesRoot', paths.repositoriesRoot, { kind: 'ancestor' }],
    ['blobsRoot', paths.blobsRoot, { kind: 'blob', digest: undefined, rest: [] }],
    ['blobsOf', paths.blobsOf('sha256'), { kind: 'blob', digest: undefined, rest: [] }],
    ['blobDir', paths.blobDir(D256), { kind: 'blob', digest: D256, rest: [] }],
    ['blobData', paths.blobData(D256), { kind: 'blob', digest: D256, rest: ['data'] }],
    ['blobData sha512', paths.blobData(D512), { kind: 'blob', digest: D512, rest: ['data'] }],
    ['blob with a wrong hex2', `${V2}/blobs/sha256/00/${HEX256}/data`, { kind: 'blob', digest: undefined, rest: [] }],
    ['repo', paths.repo(TINY), { kind: 'repositories', name: TINY }],
    ['repo a/b/c', paths.repo(ABC), { kind: 'repositories', name: ABC }],
    ['a `_` folder under repositories', `${V2}/repositories/_x`, { kind: 'repositories', name: undefined }],
    ['layersOf', paths.layersOf(TINY, 'sha256'), { kind: 'layer', repo: TINY, named: false, digest: undefined, rest: [] }],
    ['layerLinkDir', paths.layerLinkDir(ABC, D256), layer(ABC, D256, [])],
    ['layerLink', paths.layerLink(TINY, D256), layer(TINY, D256, ['link'])],
    ['manifests', paths.manifests(TINY), { kind: 'manifests', repo: TINY }],
    ['revisionsOf', paths.revisionsOf(TINY, 'sha512'), { kind: 'revision', repo: TINY, named: false, digest: undefined, rest: [] }],
    ['revisionDir', paths.revisionDir(TINY, D512), revision(TINY, D512, [])],
    ['revisionLink', paths.revisionLink(ABC, D256), revision(ABC, D256, ['link'])],
    ['revision of a bad hex', `${paths.revisionsOf(TINY, 'sha256')}/zz`, { kind: 'revision', repo: TINY, named: true, digest: undefined, rest: [] }],
    ['tags', paths.tags(TINY), { kind: 'tag', repo: TINY, tag: undefined, rest: [] }],
    ['tag', paths.tag(TINY, V1), { kind: 'tag', repo: TINY, tag: V1, rest: [] }],
    ['tagCurrentLink', paths.tagCurrentLink(ABC, V1), { kind: 'tag', repo: ABC, tag: V1, rest: ['current', 'link'] }],
    ['tagIndexEntry', paths.tagIndexEntry(TINY, V1, D256), { kind: 'tag', repo: TINY, tag: V1, rest: ['index', 'sha256', HEX256] }],
    ['tagIndexLink', paths.tagIndexLink(TINY, V1, D256), { kind: 'tag', repo: TINY, tag: V1, rest: ['index', 'sha256', HEX256, 'link'] }],
    ['uploads', paths.uploads(TINY), { kind: 'upload', repo: TINY, id: undefined, rest: [] }],
    ['upload', paths.upload(TINY, UUID), { kind: 'upload', repo: TINY, id: UUID, rest: [] }],
    ['uploadData', paths.uploadData(ABC, UUID), { kind: 'upload', repo: ABC, id: UUID, rest: ['data'] }],
    ['uploadStartedAt', paths.uploadStartedAt(TINY, UUID), { kind: 'upload', repo: TINY, id: UUID, rest: ['startedat'] }],
    ['uploadHashStates', paths.uploadHashStates(TINY, UUID, 'sha256'), { kind: 'upload', repo: TINY, id: UUID, rest: ['hashstates', 'sha256'] }],
    ['uploadHashState', paths.uploadHashState(TINY, UUID, 'sha256', 5), { kind: 'upload', repo: TINY, id: UUID, rest: ['hashstates', 'sha256', '5'] }],
    ['an unknown `_` folder of a repository', `${paths.repo(TINY)}/_other/x`, { kind: 'other', repo: TINY }],
    ['an unknown folder in _manifests', `${paths.manifests(TINY)}/other`, { kind: 'manifests', repo: TINY }],
    ['quarantineData', paths.quarantineData(D256), { kind: 'outside' }],
    ['outside the tree', '/elsewhere/x', { kind: 'outside' }],
  ];
  it.each(cases)('%s', (_kind, path, expected) => {
    expect(parsePath(path)).toEqual(expected);
  });

  it('the helpers built on it: link digests, blob data digests, tags of a listing', () => {
    expect(linkDigestOf(paths.layerLink(TINY, D256))).toBe(D256);
    expect(linkDigestOf(paths.revisionLink(ABC, D512))).toBe(D512);
    expect(linkDigestOf(paths.layerLinkDir(TINY, D256))).toBeUndefined();
    expect(linkDigestOf(paths.tagCurrentLink(TINY, V1))).toBeUndefined();
    expect(blobDataDigestOf(paths.blobData(D512))).toBe(D512);
    expect(blobDataDigestOf(paths.blobDir(D512))).toBeUndefined();
    expect(tagsOfListing([paths.tag(TINY, V1), paths.tag(TINY, parseTag('latest'))])).toEqual(['v1', 'latest']);
  });
});
