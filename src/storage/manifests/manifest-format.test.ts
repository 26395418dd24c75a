/**
 * Manifest formats: what parseManifest accepts (Docker schema 2, manifest list, OCI manifest and index,
 * OCI v1.1 artifacts), what it says a manifest needs, and what it refuses with MANIFEST_INVALID.
 */
import { describe, expect, it } from 'vitest';
import type { OciCode } from '../../errors.js';
import type { Digest } from '../digest.js';
import { makeDigest } from '../digest.js';
import { RegistryError } from '../../errors.js';
import type { ManifestInfo } from './manifest-format.js';
import {
  bareMediaType,
  describeStored,
  isManifestMediaType,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPES,
  parseManifest,
} from './manifest-format.js';

/** A valid sha256 digest whose hex is one character repeated. */
const D = (c: string): Digest => makeDigest('sha256', c.repeat(64));
/** The same shape without checking: for digests that must be refused. */
const rawD = (c: string): string => `sha256:${c.repeat(64)}`;
const CONFIG = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('c'), size: 7023 };
const LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('1'), size: 32654 };
const LAYER2 = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('2'), size: 16724 };
const DOCKER_CONFIG = { mediaType: 'application/vnd.docker.container.image.v1+json', digest: D('c'), size: 1469 };
const DOCKER_LAYER = { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: D('1'), size: 2479 };
const FOREIGN_LAYER = {
  mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  digest: D('f'),
  size: 1000,
  urls: ['https://mcr.microsoft.com/v2/windows/blobs/sha256:ffff'],
};
const CHILD_AMD64 = {
  mediaType: MEDIA_TYPES.ociManifest,
  digest: D('a'),
  size: 500,
  platform: { architecture: 'amd64', os: 'linux' },
};
const CHILD_ARM64 = {
  mediaType: MEDIA_TYPES.ociManifest,
  digest: D('b'),
  size: 501,
  platform: { architecture: 'arm64', os: 'linux' },
};
const SUBJECT = { mediaType: MEDIA_TYPES.ociManifest, digest: D('5'), size: 1234 };

const body = (doc: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(doc));

function errorOf(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw new Error(`expected a RegistryError, got ${String(err)}`);
  }
  throw new Error('expected a RegistryError, nothing was thrown');
}

const INVALID: OciCode = 'MANIFEST_INVALID';

describe('parseManifest accepts', () => {
  it('a Docker schema 2 manifest', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifest,
      config: DOCKER_CONFIG,
      layers: [DOCKER_LAYER],
    };
    const info = parseManifest(body(doc), MEDIA_TYPES.dockerManifest);
    expect(info).toEqual<ManifestInfo>({
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      blobs: [DOCKER_CONFIG, DOCKER_LAYER],
      children: [],
      artifactType: 'application/vnd.docker.container.image.v1+json',
    });
  });

  it('a Docker manifest list', () => {
    const child = { ...CHILD_AMD64, mediaType: MEDIA_TYPES.dockerManifest };
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList, manifests: [child] };
    const info = parseManifest(body(doc), MEDIA_TYPES.dockerManifestList);
    expect(info.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(info.blobs).toEqual([]);
    expect(info.children).toEqual([{ mediaType: MEDIA_TYPES.dockerManifest, digest: D('a'), size: 500 }]);
    expect(info.subject).toBeUndefined();
    expect(info.artifactType).toBeUndefined();
  });

  it('an OCI image manifest', () => {
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER, LAYER2] };
    expect(parseManifest(body(doc), MEDIA_TYPES.ociManifest)).toEqual<ManifestInfo>({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      blobs: [CONFIG, LAYER, LAYER2],
      children: [],
      artifactType: CONFIG.mediaType,
    });
  });

  it('an OCI image index', () => {
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [CHILD_AMD64, CHILD_ARM64] };
    const info = parseManifest(body(doc), MEDIA_TYPES.ociIndex);
    expect(info.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(info.blobs).toEqual([]);
    expect(info.children.map((c) => c.digest)).toEqual([D('a'), D('b')]);
  });

  it('an OCI manifest without mediaType, inferred from config', () => {
    const doc = { schemaVersion: 2, config: CONFIG, layers: [LAYER] };
    expect(parseManifest(body(doc)).mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(parseManifest(body(doc), 'application/json').mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(parseManifest(body(doc), MEDIA_TYPES.ociManifest).mediaType).toBe(MEDIA_TYPES.ociManifest);
  });

  it('an OCI index without mediaType, inferred from manifests', () => {
    const doc = { schemaVersion: 2, manifests: [CHILD_AMD64] };
    expect(parseManifest(body(doc)).mediaType).toBe(MEDIA_TYPES.ociIndex);
  });

  it('an artifact manifest with artifactType and subject', () => {
    const emptyConfig = { mediaType: 'application/vnd.oci.empty.v1+json', digest: D('4'), size: 2 };
    const sbom = { mediaType: 'application/spdx+json', digest: D('6'), size: 900 };
    const doc = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      artifactType: 'application/vnd.example.sbom',
      config: emptyConfig,
      layers: [sbom],
      subject: SUBJECT,
      annotations: { 'org.opencontainers.image.created': '2026-11-22T11:02:49Z' },
    };
    expect(parseManifest(body(doc), MEDIA_TYPES.ociManifest)).toEqual<ManifestInfo>({
      mediaType: MEDIA_TYPES.ociManifest,
      blobs: [emptyConfig, sbom],
      children: [],
      subject: SUBJECT,
      artifactType: 'application/vnd.example.sbom',
      annotations: { 'org.opencontainers.image.created': '2026-11-22T11:02:49Z' },
    });
  });

  it('an image manifest with subject but no artifactType: artifactType is the config media type', () => {
    const config = { mediaType: 'application/vnd.example.signature.config', digest: D('7'), size: 10 };
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [LAYER], subject: SUBJECT };
    const info = parseManifest(body(doc), MEDIA_TYPES.ociManifest);
    expect(info.artifactType).toBe('application/vnd.example.signature.config');
    expect(info.subject).toEqual(SUBJECT);
  });

  it('an index with artifactType and subject', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      artifactType: 'application/vnd.example.bundle',
      manifests: [CHILD_AMD64],
      subject: SUBJECT,
    };
    const info = parseManifest(body(doc), MEDIA_TYPES.ociIndex);
    expect(info.artifactType).toBe('application/vnd.example.bundle');
    expect(info.subject).toEqual(SUBJECT);
  });

  it('foreign layers (with urls) are left out of blobs', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifest,
      config: DOCKER_CONFIG,
      layers: [FOREIGN_LAYER, DOCKER_LAYER],
    };
    const info = parseManifest(body(doc), MEDIA_TYPES.dockerManifest);
    expect(info.blobs.map((b) => b.digest)).toEqual([D('c'), D('1')]);
  });

  it('a layer with an empty urls list is not foreign', () => {
    const doc = { schemaVersion: 2, config: CONFIG, layers: [{ ...LAYER, urls: [] }] };
    expect(parseManifest(body(doc)).blobs.map((b) => b.digest)).toEqual([D('c'), D('1')]);
  });

  it('keeps manifest and descriptor annotations', () => {
    const layer = { ...LAYER, annotations: { 'org.opencontainers.image.title': 'hello.txt' } };
    const doc = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: CONFIG,
      layers: [layer],
      annotations: { a: '1', b: '' },
    };
    const info = parseManifest(body(doc), MEDIA_TYPES.ociManifest);
    expect(info.annotations).toEqual({ a: '1', b: '' });
    expect(info.blobs[1]?.annotations).toEqual({ 'org.opencontainers.image.title': 'hello.txt' });
  });

  it('an image manifest without layers', () => {
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG };
    expect(parseManifest(body(doc), MEDIA_TYPES.ociManifest).blobs).toEqual([CONFIG]);
  });

  it.each([
    'application/vnd.oci.image.manifest.v1+json; charset=utf-8',
    'application/vnd.oci.image.manifest.v1+json;charset=utf-8',
    '  Application/VND.OCI.Image.Manifest.v1+JSON ; charset=utf-8',
  ])('Content-Type %j', (contentType) => {
    const doc = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER] };
    expect(parseManifest(body(doc), contentType).mediaType).toBe(MEDIA_TYPES.ociManifest);
  });
});

describe('parseManifest refuses with MANIFEST_INVALID', () => {
  const image = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER] };
  const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [CHILD_AMD64] };
  const raw = (s: string): Uint8Array => new TextEncoder().encode(s);

  const cases: readonly (readonly [string, Uint8Array, string | undefined, string])[] = [
    ['not JSON', raw('{"schemaVersion": 2'), MEDIA_TYPES.ociManifest, 'body is not JSON'],
    ['empty body', raw(''), MEDIA_TYPES.ociManifest, 'body is not JSON'],
    ['a JSON array', raw('[]'), MEDIA_TYPES.ociManifest, 'not a JSON object'],
    ['JSON null', raw('null'), MEDIA_TYPES.ociManifest, 'not a JSON object'],
    ['a JSON string', raw('"x"'), undefined, 'not a JSON object'],
    ['schemaVersion 1', body({ ...image, schemaVersion: 1 }), MEDIA_TYPES.ociManifest, 'schema 1'],
    [
      'schemaVersion 1 with a schema 1 body',
      body({ schemaVersion: 1, name: 'a', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [] }),
      undefined,
      'schema 1',
    ],
    [
      'schema 1 Content-Type',
      body({ schemaVersion: 2, config: CONFIG }),
      'application/vnd.docker.distribution.manifest.v1+json',
      'schema 1',
    ],
    [
      'signed schema 1 Content-Type',
      body({ schemaVersion: 1, name: 'a' }),
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      'schema 1',
    ],
    [
      'schema 1 Content-Type with parameters',
      body({ schemaVersion: 2, config: CONFIG }),
      'application/vnd.docker.distribution.manifest.v1+prettyjws; charset=utf-8',
      'schema 1',
    ],
    [
      'schema 1 media type in the body',
      body({ ...image, mediaType: 'application/vnd.docker.distribution.manifest.v1+json' }),
      undefined,
      'schema 1',
    ],
    [
      'body mediaType differs from Content-Type',
      body(image),
      MEDIA_TYPES.dockerManifest,
      'does not match Content-Type',
    ],
    ['index body under an image Content-Type', body(index), MEDIA_TYPES.ociManifest, 'does not match Content-Type'],
    [
      'unknown body media type',
      body({ ...image, mediaType: 'application/vnd.example.thing+json' }),
      'application/json',
      'unsupported manifest media type',
    ],
    [
      'unknown body media type, no Content-Type',
      body({ ...image, mediaType: 'application/vnd.oci.artifact.manifest.v1+json' }),
      undefined,
      'unsupported manifest media type',
    ],
    ['mediaType not a string', body({ ...image, mediaType: 2 }), undefined, 'mediaType must be a string'],
    ['no mediaType, config or manifests', body({ schemaVersion: 2, layers: [LAYER] }), undefined, 'cannot tell'],
    ['schemaVersion missing', body({ mediaType: MEDIA_TYPES.ociManifest, config: CONFIG }), undefined, 'schemaVersion must be 2'],
    ['schemaVersion 3', body({ ...image, schemaVersion: 3 }), undefined, 'schemaVersion must be 2'],
    ['schemaVersion "2"', body({ ...image, schemaVersion: '2' }), undefined, 'schemaVersion must be 2'],
    [
      'missing config',
      body({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, layers: [LAYER] }),
      MEDIA_TYPES.ociManifest,
      'config must be a descriptor',
    ],
    ['config not an object', body({ ...image, config: [] }), undefined, 'config must be a descriptor'],
    ['config digest malformed', body({ ...image, config: { ...CONFIG, digest: 'sha256:abc' } }), undefined, 'config.digest'],
    ['config digest upper case', body({ ...image, config: { ...CONFIG, digest: rawD('C') } }), undefined, 'config.digest'],
    ['config digest missing', body({ ...image, config: { mediaType: CONFIG.mediaType, size: 1 } }), undefined, 'config.digest'],
    ['layer digest md5', body({ ...image, layers: [{ ...LAYER, digest: 'md5:abc' }] }), undefined, 'layers[0].digest'],
    ['layer size negative', body({ ...image, layers: [{ ...LAYER, size: -1 }] }), undefined, 'layers[0].size'],
    ['layer size fractional', body({ ...image, layers: [LAYER, { ...LAYER2, size: 1.5 }] }), undefined, 'layers[1].size'],
    ['layer size a string', body({ ...image, layers: [{ ...LAYER, size: '10' }] }), undefined, 'layers[0].size'],
    ['layer size missing', body({ ...image, layers: [{ mediaType: LAYER.mediaType, digest: LAYER.digest }] }), undefined, 'layers[0].size'],
    ['layer size unsafe', body({ ...image, layers: [{ ...LAYER, size: 2 ** 53 }] }), undefined, 'layers[0].size'],
    ['layer mediaType missing', body({ ...image, layers: [{ digest: LAYER.digest, size: 1 }] }), undefined, 'layers[0].mediaType'],
    ['layer mediaType empty', body({ ...image, layers: [{ ...LAYER, mediaType: '' }] }), undefined, 'layers[0].mediaType'],
    ['layer not an object', body({ ...image, layers: ['sha256:x'] }), undefined, 'layers[0] must be a descriptor'],
    ['layer urls not strings', body({ ...image, layers: [{ ...LAYER, urls: [1] }] }), undefined, 'layers[0].urls'],
    ['layers not an array', body({ ...image, layers: LAYER }), undefined, 'layers must be an array'],
    ['layers null', body({ ...image, layers: null }), undefined, 'layers must be an array'],
    ['subject malformed', body({ ...image, subject: { ...SUBJECT, digest: 'x' } }), undefined, 'subject.digest'],
    ['artifactType not a string', body({ ...image, artifactType: 1 }), undefined, 'artifactType must be a string'],
    ['annotations not strings', body({ ...image, annotations: { a: 1 } }), undefined, 'annotations must map'],
    ['annotations an array', body({ ...image, annotations: ['a'] }), undefined, 'annotations must map'],
    [
      'descriptor annotations not strings',
      body({ ...image, layers: [{ ...LAYER, annotations: { a: true } }] }),
      undefined,
      'layers[0].annotations must map',
    ],
    ['index with config', body({ ...index, config: CONFIG }), MEDIA_TYPES.ociIndex, 'must not have config or layers'],
    ['index with layers', body({ ...index, layers: [LAYER] }), MEDIA_TYPES.ociIndex, 'must not have config or layers'],
    [
      'manifest list with config',
      body({ ...index, mediaType: MEDIA_TYPES.dockerManifestList, config: DOCKER_CONFIG }),
      undefined,
      'must not have config or layers',
    ],
    ['index manifests not an array', body({ ...index, manifests: {} }), undefined, 'manifests must be an array'],
    ['index child digest bad', body({ ...index, manifests: [{ ...CHILD_AMD64, digest: rawD('Z') }] }), undefined, 'manifests[0].digest'],
    ['image with manifests', body({ ...image, manifests: [CHILD_AMD64] }), MEDIA_TYPES.ociManifest, 'must not have manifests'],
    [
      'docker image with manifests',
      body({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: DOCKER_CONFIG, manifests: [] }),
      undefined,
      'must not have manifests',
    ],
  ];

  it.each(cases)('%s', (_what, bytes, contentType, message) => {
    const err = errorOf(() => parseManifest(bytes, contentType));
    expect(err.code).toBe(INVALID);
    expect(err.message).toContain(message);
  });
});

describe('describeStored', () => {
  const oci = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER] };

  it('describes a valid manifest', () => {
    const { mediaType, info } = describeStored(body(oci));
    expect(mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(info?.blobs).toHaveLength(2);
  });

  it('infers the type of a manifest stored without mediaType', () => {
    expect(describeStored(body({ schemaVersion: 2, manifests: [] })).mediaType).toBe(MEDIA_TYPES.ociIndex);
  });

  const odd: readonly (readonly [string, Uint8Array, string])[] = [
    ['not JSON', new TextEncoder().encode('\u0000\u00ff garbage'), MEDIA_TYPES.ociManifest],
    ['empty', new Uint8Array(0), MEDIA_TYPES.ociManifest],
    ['invalid UTF-8', Uint8Array.from([0xff, 0xfe, 0xfd]), MEDIA_TYPES.ociManifest],
    ['JSON null', new TextEncoder().encode('null'), MEDIA_TYPES.ociManifest],
    ['JSON array', new TextEncoder().encode('[1,2]'), MEDIA_TYPES.ociManifest],
    [
      'schema 1 keeps its own type',
      body({ schemaVersion: 1, mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' }),
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
    ],
    ['unknown type is kept', body({ schemaVersion: 2, mediaType: 'application/x-thing' }), 'application/x-thing'],
    ['mediaType not a string', body({ schemaVersion: 2, mediaType: 5 }), MEDIA_TYPES.ociManifest],
    [
      'broken descriptor keeps the declared type',
      body({ ...oci, mediaType: MEDIA_TYPES.dockerManifest, config: { digest: 'x' } }),
      MEDIA_TYPES.dockerManifest,
    ],
  ];
  it.each(odd)('never throws: %s', (_what, bytes, mediaType) => {
    let result: ReturnType<typeof describeStored> | undefined;
    expect(() => {
      result = describeStored(bytes);
    }).not.toThrow();
    expect(result?.mediaType).toBe(mediaType);
    expect(result?.info).toBeUndefined();
  });
});

describe('helpers', () => {
  it.each([
    [undefined, ''],
    ['', ''],
    ['application/json', 'application/json'],
    ['application/json; charset=utf-8', 'application/json'],
    [' Application/JSON ;q=1', 'application/json'],
  ])('bareMediaType(%j) = %j', (input, expected) => {
    expect(bareMediaType(input)).toBe(expected);
  });

  it('knows exactly the four manifest media types', () => {
    expect(Object.values(MEDIA_TYPES).every(isManifestMediaType)).toBe(true);
    expect(isManifestMediaType('application/vnd.docker.distribution.manifest.v1+json')).toBe(false);
    expect(isManifestMediaType('application/json')).toBe(false);
    expect(Object.values(MEDIA_TYPES)).toHaveLength(4);
  });

  it('limits manifests to 4 MiB', () => {
    expect(MAX_MANIFEST_BYTES).toBe(4_194_304);
  });
});

/**
 * A manifest is served with the media type describeStored reads back from its bytes (storage/manifests/manifests.ts
 * `get` keeps no other record of the push's Content-Type), so parseManifest must only accept bodies
 * whose type can be recovered from the bytes alone. registry:2 refuses a Docker schema 2 manifest or
 * manifest list whose body has no `mediaType` ("mediaType in manifest should be …"), and the OCI image
 * spec requires `manifests` in an index.
 */
describe('a type accepted at push is the type read back', () => {
  // Were it accepted, describeStored would read the same bytes back as an OCI manifest.
  it('Docker schema 2 manifest without mediaType in the body is refused (as registry:2)', () => {
    const bytes = body({ schemaVersion: 2, config: DOCKER_CONFIG, layers: [DOCKER_LAYER] });
    const err = errorOf(() => parseManifest(bytes, MEDIA_TYPES.dockerManifest));
    expect(err.code).toBe('MANIFEST_INVALID');
  });

  // Were it accepted, it would read back as an OCI index.
  it('Docker manifest list without mediaType in the body is refused (as registry:2)', () => {
    const child = { ...CHILD_AMD64, mediaType: MEDIA_TYPES.dockerManifest };
    const bytes = body({ schemaVersion: 2, manifests: [child] });
    const err = errorOf(() => parseManifest(bytes, MEDIA_TYPES.dockerManifestList));
    expect(err.code).toBe('MANIFEST_INVALID');
  });

  // Were `{"schemaVersion":2}` accepted as an index, it would read back as an OCI image manifest.
  it('OCI index without manifests is refused', () => {
    const err = errorOf(() => parseManifest(body({ schemaVersion: 2 }), MEDIA_TYPES.ociIndex));
    expect(err.code).toBe('MANIFEST_INVALID');
  });

  it.each([
    ['OCI manifest without mediaType', { schemaVersion: 2, config: CONFIG, layers: [LAYER] }, MEDIA_TYPES.ociManifest],
    ['OCI index without mediaType', { schemaVersion: 2, manifests: [CHILD_AMD64] }, MEDIA_TYPES.ociIndex],
    [
      'Docker manifest with mediaType',
      { schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: DOCKER_CONFIG, layers: [DOCKER_LAYER] },
      MEDIA_TYPES.dockerManifest,
    ],
    [
      'Docker list with mediaType',
      { schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList, manifests: [CHILD_AMD64] },
      MEDIA_TYPES.dockerManifestList,
    ],
  ] as const)('%s', (_what, doc, contentType) => {
    const bytes = body(doc);
    expect(parseManifest(bytes, contentType).mediaType).toBe(contentType);
    expect(describeStored(bytes).mediaType).toBe(contentType);
  });
});
