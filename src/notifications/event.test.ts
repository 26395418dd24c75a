import { describe, expect, it } from 'vitest';
import { type EventOrigin, buildEvent, envelopeBody, manifestReferences } from './event.js';

const origin: EventOrigin = {
  request: { id: 'req-1', addr: '10.0.0.7:41234', host: 'registry.example.com:5000', method: 'PUT', useragent: 'docker/20.10.24' },
  actor: undefined,
  url: (path) => `http://registry.example.com:5000${path}`,
};
const source = { addr: 'berth-host:5000', instanceID: 'instance-1' };
const options = { source, includeReferences: false, id: 'event-1', now: new Date('2026-01-02T03:04:05.678Z') };
const D = `sha256:${'a'.repeat(64)}`;
const CONFIG = `sha256:${'c'.repeat(64)}`;
const LAYER = `sha256:${'b'.repeat(64)}`;

const imageManifest = Buffer.from(JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
  config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 1469, digest: CONFIG },
  layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 2479, digest: LAYER }],
}));

describe('buildEvent', () => {
  it("builds a manifest push by tag as registry:2 does, in registry:2's field order", () => {
    const e = buildEvent({ kind: 'manifest', action: 'push', repository: 'library/app', digest: D, content: imageManifest, tag: 'v1' }, origin, options);
    expect(JSON.stringify(e)).toBe(JSON.stringify({
      id: 'event-1',
      timestamp: '2026-01-02T03:04:05.678Z',
      action: 'push',
      target: {
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        size: imageManifest.length,
        digest: D,
        length: imageManifest.length,
        repository: 'library/app',
        url: `http://registry.example.com:5000/v2/library/app/manifests/${D}`,
        tag: 'v1',
      },
      request: { id: 'req-1', addr: '10.0.0.7:41234', host: 'registry.example.com:5000', method: 'PUT', useragent: 'docker/20.10.24' },
      actor: {},
      source: { addr: 'berth-host:5000', instanceID: 'instance-1' },
    }));
  });

  it("builds Berth's quota event: the linked digest as target, the quota's figures beside it", () => {
    const quota = {
      name: 'team/**', key: 'storage.quotas[0]', repositories: ['team/**'], namespace: 'team', kind: 'storage' as const,
      usage: 870, previous: 700, limit: 1000, threshold: 0.85,
    };
    const e = buildEvent({ kind: 'quota', repository: 'team/app', digest: D, quota }, origin, options);
    expect(JSON.stringify(e)).toBe(JSON.stringify({
      id: 'event-1',
      timestamp: '2026-01-02T03:04:05.678Z',
      action: 'quota',
      target: { digest: D, repository: 'team/app' },
      quota,
      request: { id: 'req-1', addr: '10.0.0.7:41234', host: 'registry.example.com:5000', method: 'PUT', useragent: 'docker/20.10.24' },
      actor: {},
      source: { addr: 'berth-host:5000', instanceID: 'instance-1' },
    }));
  });

  it('reads the media type of an OCI manifest without a mediaType field from its content', () => {
    const oci = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', size: 2, digest: CONFIG }, layers: [] }));
    const e = buildEvent({ kind: 'manifest', action: 'pull', repository: 'a', digest: D, content: oci }, origin, options);
    expect(e.target.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(e.target).not.toHaveProperty('tag');
  });

  it('gives blobs the media type application/octet-stream, and a mount its source repository', () => {
    const pull = buildEvent({ kind: 'blob', action: 'pull', repository: 'a/b', digest: LAYER, size: 2479 }, origin, options);
    expect(pull.target).toEqual({
      mediaType: 'application/octet-stream', size: 2479, digest: LAYER, length: 2479, repository: 'a/b',
      url: `http://registry.example.com:5000/v2/a/b/blobs/${LAYER}`,
    });
    const mount = buildEvent({ kind: 'blob', action: 'mount', repository: 'c', digest: LAYER, size: 2479, fromRepository: 'a/b' }, origin, options);
    expect(mount.action).toBe('mount');
    expect(Object.keys(mount.target)).toEqual(['mediaType', 'size', 'digest', 'length', 'repository', 'fromRepository', 'url']);
    expect(mount.target.fromRepository).toBe('a/b');
  });

  it('sends only repository and digest (or tag) for deletes', () => {
    expect(buildEvent({ kind: 'delete', repository: 'a', digest: D }, origin, options).target).toEqual({ digest: D, repository: 'a' });
    const untag = buildEvent({ kind: 'delete', repository: 'a', tag: 'old' }, origin, options);
    expect(untag).toMatchObject({ action: 'delete', target: { repository: 'a', tag: 'old' } });
  });

  it('omits what Go omits: empty addr, host and actor name; keeps id, method and useragent even when empty', () => {
    const bare: EventOrigin = { request: { id: 'r', addr: '', host: '', method: 'GET', useragent: '' }, actor: 'alice', url: (p) => p };
    const e = buildEvent({ kind: 'blob', action: 'pull', repository: 'a', digest: LAYER, size: 0 }, bare, options);
    expect(e.request).toEqual({ id: 'r', method: 'GET', useragent: '' });
    expect(e.actor).toEqual({ name: 'alice' });
    expect(e.target).not.toHaveProperty('size');
    expect(e.target.url).toBe(`/v2/a/blobs/${LAYER}`);
  });

  it('adds references with events.includereferences', () => {
    const e = buildEvent({ kind: 'manifest', action: 'push', repository: 'a', digest: D, content: imageManifest }, origin, { ...options, includeReferences: true });
    expect(e.target.references).toEqual([
      { mediaType: 'application/vnd.docker.container.image.v1+json', size: 1469, digest: CONFIG },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 2479, digest: LAYER },
    ]);
  });
});

describe('manifestReferences', () => {
  it("lists an index's manifests with their platforms, and nothing for content that is not a manifest", () => {
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 7, digest: D, platform: { architecture: 'arm64', os: 'linux' } }],
    }));
    expect(manifestReferences(index)).toEqual([
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 7, digest: D, platform: { architecture: 'arm64', os: 'linux' } },
    ]);
    expect(manifestReferences(Buffer.from('not json'))).toEqual([]);
    expect(manifestReferences(Buffer.from('[1,2]'))).toEqual([]);
  });
});

describe('envelopeBody', () => {
  it("indents with three spaces, as Go's json.MarshalIndent(envelope, \"\", \"   \")", () => {
    expect(envelopeBody([{ id: 'x', actor: {} }])).toBe('{\n   "events": [\n      {\n         "id": "x",\n         "actor": {}\n      }\n   ]\n}');
  });
});
