import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../storage/digest.js';
import { createMemoryDriver } from '../storage/driver/memory.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import { createNameRouter } from './routing.js';

describe('createNameRouter', () => {
  const registry = createRegistry({ driver: createMemoryDriver(), deleteEnabled: true });
  const router = createNameRouter(registry, [
    { prefix: 'docker.io', hosts: ['docker.io', 'index.docker.io'], default: true },
    { prefix: 'ghcr.io', hosts: ['ghcr.io'], default: false },
  ]);
  const read = { ns: undefined, write: false };

  it('keeps prefixed names, prefixes ?ns= names, and sends unknown reads to the default upstream', async () => {
    expect(await router.route('ghcr.io/org/app', read)).toBe('ghcr.io/org/app');
    expect(await router.route('org/app', { ns: 'ghcr.io', write: false })).toBe('ghcr.io/org/app');
    expect(await router.route('library/alpine', { ns: 'index.docker.io', write: false })).toBe('docker.io/library/alpine');
    expect(await router.route('library/alpine', read)).toBe('docker.io/library/alpine');
    // An ns naming no upstream means nothing special.
    expect(await router.route('library/alpine', { ns: 'quay.io', write: false })).toBe('docker.io/library/alpine');
  });

  it('leaves writes and local repositories alone', async () => {
    expect(await router.route('team/app', { ns: undefined, write: true })).toBe('team/app');
    const repo = registry.repository(parseRepoName('team/app'));
    const config = Buffer.from('{}');
    const upload = await repo.uploads.start();
    await repo.uploads.commit(upload.id, digestOf(config), Readable.from([config]));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [],
    }));
    await repo.manifests.put({ tag: parseTag('v1') }, manifest, 'application/vnd.oci.image.manifest.v1+json');
    expect(await router.route('team/app', read)).toBe('team/app');
  });
});
