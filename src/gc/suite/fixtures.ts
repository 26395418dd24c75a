/**
 * Hand-built registries for the collector's and the inventory's tests: a registry over the memory or
 * the filesystem driver, and helpers that push blobs, images, indexes and artifacts through the
 * storage API (so the tree is exactly what the server would write).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Digest, digestOf } from '../../storage/digest.js';
import type { StorageDriver } from '../../storage/driver/driver.js';
import { createDriver } from '../../storage/driver/factory.js';
import { type LinkGate, createLinkGate } from '../../storage/maintenance/link-gate.js';
import { MEDIA_TYPES } from '../../storage/manifests/manifest-format.js';
import { parseRepoName, parseTag } from '../../storage/reference.js';
import { type LocalRegistry, createRegistry } from '../../storage/registry.js';

export interface Fixture {
  readonly registry: LocalRegistry;
  readonly driver: StorageDriver;
  readonly gate: LinkGate;
  /** The filesystem root, for the filesystem driver. */
  readonly root: string | undefined;
  /** The clock the gate uses (and runs should use): real time plus `offset.ms`. */
  readonly clock: () => number;
  readonly offset: { ms: number };
  cleanup(): Promise<void>;
}

export type DriverKind = 'inmemory' | 'filesystem';
export const DRIVER_KINDS: readonly DriverKind[] = ['inmemory', 'filesystem'];

export async function makeFixture(kind: DriverKind): Promise<Fixture> {
  const root = kind === 'filesystem' ? await mkdtemp(join(tmpdir(), 'berth-gc-')) : undefined;
  const driver = root === undefined ? createDriver({ kind: 'inmemory' }) : createDriver({ kind: 'filesystem', root });
  const offset = { ms: 0 };
  const clock = (): number => Date.now() + offset.ms;
  const gate = createLinkGate(clock);
  const registry = createRegistry({ driver, deleteEnabled: true, linkGate: gate });
  return {
    registry, driver, gate, root, clock, offset,
    cleanup: async () => {
      if (root !== undefined) await rm(root, { recursive: true, force: true });
    },
  };
}

/** Uploads `content` into `repo` and answers its digest. */
export async function pushBlob(registry: LocalRegistry, repo: string, content: string | Buffer): Promise<Digest> {
  const bytes = Buffer.from(content);
  const d = digestOf(bytes);
  const uploads = registry.repository(parseRepoName(repo)).uploads;
  const session = await uploads.start();
  await uploads.commit(session.id, d, Readable.from([bytes]));
  return d;
}

export interface PushedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
}

export interface PushedImage extends PushedManifest {
  readonly config: Digest;
  readonly layers: readonly Digest[];
}

const descriptor = (mediaType: string, d: Digest, size: number, extra: object = {}): object => ({ mediaType, digest: d, size, ...extra });

/** PUTs a manifest document under `tag`, or by digest when no tag is given. */
export async function putManifest(registry: LocalRegistry, repo: string, doc: object, tag?: string): Promise<PushedManifest> {
  const content = Buffer.from(JSON.stringify(doc));
  const d = digestOf(content);
  const mediaType = String((doc as { mediaType?: string }).mediaType ?? MEDIA_TYPES.ociManifest);
  const ref = tag === undefined ? { digest: d } : { tag: parseTag(tag) };
  await registry.repository(parseRepoName(repo)).manifests.put(ref, content, mediaType);
  return { digest: d, mediaType, size: content.length };
}

/**
 * Pushes an OCI image: a config unique to `name`, and layers with the given contents (shared
 * content gives shared layers). `subject` makes it a referrer; `foreign` adds a layer with `urls`.
 */
export async function pushImage(
  registry: LocalRegistry,
  repo: string,
  name: string,
  opts: { tag?: string; layers?: readonly string[]; subject?: PushedManifest; foreign?: Digest } = {},
): Promise<PushedImage> {
  const configText = JSON.stringify({ name, architecture: 'amd64', os: 'linux' });
  const config = await pushBlob(registry, repo, configText);
  const layerTexts = opts.layers ?? [`${name}-layer`];
  const layers: Digest[] = [];
  for (const text of layerTexts) layers.push(await pushBlob(registry, repo, text));
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: descriptor('application/vnd.oci.image.config.v1+json', config, configText.length),
    layers: [
      ...layers.map((l, i) => descriptor('application/vnd.oci.image.layer.v1.tar', l, layerTexts[i]!.length)),
      ...(opts.foreign ? [descriptor('application/vnd.oci.image.layer.nondistributable.v1.tar', opts.foreign, 10, { urls: ['https://example.com/x'] })] : []),
    ],
    ...(opts.subject && { subject: descriptor(opts.subject.mediaType, opts.subject.digest, opts.subject.size) }),
  };
  const m = await putManifest(registry, repo, doc, opts.tag);
  return { ...m, config, layers };
}

/** Pushes an OCI index of `children` (already in the repository). */
export function pushIndex(registry: LocalRegistry, repo: string, children: readonly PushedManifest[], tag?: string): Promise<PushedManifest> {
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: children.map((c, i) => descriptor(c.mediaType, c.digest, c.size, { platform: { architecture: `arch${i}`, os: 'linux' } })),
  };
  return putManifest(registry, repo, doc, tag);
}

/** Every blob digest in the store. */
export async function storedBlobs(registry: LocalRegistry): Promise<Set<Digest>> {
  const found = new Set<Digest>();
  for await (const b of registry.inventory.blobs()) found.add(b.digest);
  return found;
}

/** Every blob of an image: manifest, config, layers. */
export const imageBlobs = (img: PushedImage): Digest[] => [img.digest, img.config, ...img.layers];
