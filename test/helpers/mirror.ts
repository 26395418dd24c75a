/**
 * Shared by the mirror tests: pushing to registry:2 2.8 and starting a Berth with a `proxy` section.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Serving, serve } from '../../src/cli/serve.js';
import { type Image, MT, blob, descriptor, manifestBlob, pushBlobPostPut, putManifest, randomBytesSeeded } from './oci.js';

/** Pushes an image to registry:2 (POST then PUT for each blob, as 2.8 needs). */
export async function pushImageToRegistry2(base: string, repo: string, tag: string, img: Image): Promise<void> {
  for (const b of [img.config, ...img.layers]) await pushBlobPostPut(base, repo, b);
  const res = await putManifest(base, repo, tag, img.manifest, img.mediaType);
  if (res.status !== 201) throw new Error(`push manifest to registry:2: ${res.status} ${res.body.toString()}`);
}

/** A Berth serving `proxy` (YAML lines under `proxy:`), filesystem storage under `dir`. */
export async function serveMirror(dir: string, proxyLines: readonly string[], extra: readonly string[] = [], o: { debug?: boolean } = {}): Promise<Serving> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, `config-${Math.random().toString(36).slice(2)}.yml`);
  await writeFile(config, [
    'version: 0.1',
    'log: {level: error}',
    o.debug === true ? 'http: {addr: "127.0.0.1:0", debug: {addr: "127.0.0.1:0", prometheus: {enabled: true}}}' : 'http: {addr: "127.0.0.1:0"}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'root'))}}, delete: {enabled: true}, maintenance: {gc: {graceperiod: 0s}}}`,
    'proxy:',
    ...proxyLines.map((l) => `  ${l}`),
    ...extra,
    '',
  ].join('\n'));
  return serve(config, {});
}


/** A one-layer OCI image whose layer is `size` seeded random bytes. */
export function bigImage(seed: number, size: number): Image {
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = blob(randomBytesSeeded(size, seed));
  const manifest = manifestBlob({ schemaVersion: 2, mediaType: MT.ociManifest, config: descriptor(MT.ociConfig, config), layers: [descriptor(MT.ociLayer, layer)] });
  return { config, layers: [layer], manifest, mediaType: MT.ociManifest };
}

