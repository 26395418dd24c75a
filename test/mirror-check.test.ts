/**
 * `berth check` over a mirror's cache: a manifest pulled without its layers (a mirror fetches blobs on
 * demand) is healthy under the mirror's configuration (an info line, exit 0) and a problem for a
 * registry that is not a mirror (the same tree without the proxy section).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runBerthCli, rootConfig } from './helpers/berth-cli.js';
import { ACCEPT_ALL, makeImage, raw } from './helpers/oci.js';
import { type Registry2, registry2Available, startRegistry2 } from './helpers/registry2.js';
import { describeWithTool } from './helpers/tools.js';
import { pushImageToRegistry2, serveMirror } from './helpers/mirror.js';

describeWithTool('docker-registry', registry2Available(), 'berth check on a mirror', () => {
  let dir: string;
  let upstream: Registry2;
  const img = makeImage(401, { docker: true });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-mirror-check-'));
    upstream = await startRegistry2({ root: join(dir, 'upstream') });
    await pushImageToRegistry2(upstream.url, 'library/app', 'latest', img);
    const mirror = await serveMirror(dir, ['upstreams:', `  - {prefix: docker.io, remoteurl: ${JSON.stringify(upstream.url)}}`]);
    try {
      const res = await raw(mirror.running.url, 'GET', '/v2/docker.io/library/app/manifests/latest', { headers: { Accept: ACCEPT_ALL } });
      expect(res.status).toBe(200); // the manifest is cached; its config and layers were never pulled
    } finally {
      await mirror.stop();
    }
  });
  afterAll(async () => {
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('reports blobs never pulled as info under the mirror, as missing references otherwise', async () => {
    const root = join(dir, 'root');
    const asMirror = join(dir, 'check-mirror.yml');
    const plain = join(dir, 'check-plain.yml');
    await writeFile(asMirror, rootConfig(root, ['proxy:', '  upstreams:', `    - {prefix: docker.io, remoteurl: ${JSON.stringify(upstream.url)}}`]));
    await writeFile(plain, rootConfig(root));
    const blobs = 1 + img.layers.length; // config and layers

    const mirrored = await runBerthCli(['check', asMirror]);
    expect(mirrored.stdout).toMatch(/^checked 1 blobs and 1 repositories: 0 problems, 0 orphaned blobs$/m);
    expect(mirrored.stdout.split('\n').filter((l) => /^info: docker\.io\/library\/app@.*refers to blob .*not pulled yet/.test(l))).toHaveLength(blobs);
    expect(mirrored.code).toBe(0);

    const notMirrored = await runBerthCli(['check', plain]);
    expect(notMirrored.stdout).toMatch(new RegExp(`^checked 1 blobs and 1 repositories: ${blobs} problems, 0 orphaned blobs$`, 'm'));
    expect(notMirrored.stdout.split('\n').filter((l) => l.startsWith('missing-reference: docker.io/library/app@'))).toHaveLength(blobs);
    expect(notMirrored.code).toBe(1);
  }, 60_000);
});
