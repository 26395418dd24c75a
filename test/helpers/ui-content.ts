/**
 * What the web UI tests browse: images pushed with skopeo (single-platform images with labels,
 * annotations and a history of Dockerfile-like steps; a two-platform OCI index) and an OCI 1.1
 * signature artifact whose subject is one of them, pushed over the API (skopeo pushes no referrers).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BuiltImage, appLayer, baseLayer, buildImage, multiPlatformImage, writeImageLayout, writeIndexLayout } from './images.js';
import { MT, artifactManifest, blob, descriptor, makeImage, pushBlob, pushImage, putManifest } from './oci.js';
import { containersStore, run } from './tools.js';

export const SIGNATURE_TYPE = 'application/vnd.example.signature.v1+json';

/** `apps/web`'s images by tag; `latest` is the same manifest as `1.2.0`. */
export const WEB_VERSIONS = ['1.0.0', '1.2.0', '1.10.0'] as const;

export interface PushedContent {
  /** Manifest digest by `repo:tag`. */
  readonly digests: ReadonlyMap<string, string>;
  /** The signature's manifest digest (its subject: apps/web:1.2.0). */
  readonly signature: string;
  /** Every repository pushed, sorted. */
  readonly repositories: readonly string[];
}

/** An image of `name` at `version`, made at a time that grows with the version. */
function webImage(name: string, version: string, day: number): BuiltImage {
  return buildImage({
    platform: { architecture: 'amd64', os: 'linux' },
    layers: [baseLayer(name), appLayer(name, version)],
    labels: { 'org.opencontainers.image.title': name, 'org.opencontainers.image.version': version },
    created: `2026-11-${String(day).padStart(2, '0')}T10:00:00Z`,
    cmd: ['/app/serve', '--port', '8080'],
    createdBy: (i) => (i === 0 ? 'ADD rootfs.tar.gz / # buildkit' : `COPY app/ /app/ # ${version}`),
    annotations: { 'org.opencontainers.image.source': 'https://example.invalid/berth-ui-test' },
  });
}

/** Pushes the test content to the registry at `base` (no auth) with skopeo, and the signature over HTTP. */
export async function pushUiContent(base: string): Promise<PushedContent> {
  const host = new URL(base).host;
  const work = await mkdtemp(join(tmpdir(), 'berth-ui-content-'));
  const digests = new Map<string, string>();
  try {
    const store = await containersStore(join(work, 'containers'));
    const copy = async (layout: string, ref: string, all: boolean): Promise<void> => {
      await run('skopeo', ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${host}/${ref}`], { env: store.env, timeoutMs: 120_000 });
    };
    const pushImage = async (img: BuiltImage, refs: readonly string[]): Promise<void> => {
      const layout = join(work, refs[0]?.replace(/[/:]/g, '_') ?? 'x');
      await writeImageLayout(layout, 'v1', img);
      for (const ref of refs) {
        await copy(layout, ref, false);
        digests.set(ref, img.manifest.digest);
      }
    };
    for (const [i, v] of WEB_VERSIONS.entries()) await pushImage(webImage('apps/web', v, i + 1), v === '1.2.0' ? [`apps/web:${v}`, 'apps/web:latest'] : [`apps/web:${v}`]);
    const multi = multiPlatformImage('apps/multi');
    const indexLayout = join(work, 'multi');
    await writeIndexLayout(indexLayout, 'v1', multi);
    await copy(indexLayout, 'apps/multi:v1', true);
    digests.set('apps/multi:v1', multi.index.digest);
    for (const name of ['library/alpine', 'library/busybox', 'tools/builder']) await pushImage(webImage(name, '1.0', 20), [`${name}:1.0`]);
    const signature = await pushSignature(base, 'apps/web', digests.get('apps/web:1.2.0') ?? '');
    return { digests, signature, repositories: ['apps/multi', 'apps/web', 'library/alpine', 'library/busybox', 'tools/builder'] };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** An OCI 1.1 artifact (a made-up signature) whose subject is `subject`; answers its digest. */
async function pushSignature(base: string, repo: string, subject: string): Promise<string> {
  const payload = blob(JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject } } }));
  const config = blob('{}');
  const subjectRes = await fetch(`${base}/v2/${repo}/manifests/${subject}`, { headers: { Accept: MT.ociManifest } });
  const subjectBytes = Buffer.from(await subjectRes.arrayBuffer());
  for (const b of [payload, config]) await pushBlob(base, repo, b);
  const manifest = artifactManifest(SIGNATURE_TYPE, [descriptor('application/vnd.example.signature.payload.v1+json', payload)],
    descriptor(MT.ociManifest, blob(subjectBytes)), { 'org.opencontainers.image.created': '2026-11-30T12:00:00Z' });
  const res = await putManifest(base, repo, manifest.digest, manifest, MT.ociManifest);
  if (res.status !== 201) throw new Error(`push signature: ${res.status} ${res.body.toString()}`);
  return manifest.digest;
}

/**
 * Tags one image of `repo` (pushed through the API at `base`) `count` times, `version(i)` naming tag
 * i, by writing the tag links into the layout under `root` directly (as registry:2 leaves them): tens
 * of thousands of small files in seconds, where as many pushes would take minutes. The server that
 * serves `root` must start (and build its index) after this.
 */
export async function writeManyTags(base: string, root: string, repo: string, count: number, version: (i: number) => string): Promise<string> {
  const image = makeImage(17);
  const res = await pushImage(base, repo, version(0), image);
  if (res.status !== 201) throw new Error(`push ${repo}: ${res.status} ${res.body.toString()}`);
  const digest = image.manifest.digest;
  const tags = join(root, 'docker/registry/v2/repositories', repo, '_manifests/tags');
  const write = async (i: number): Promise<void> => {
    const dir = join(tags, version(i));
    await mkdir(join(dir, 'current'), { recursive: true });
    await mkdir(join(dir, 'index', 'sha256', digest.slice('sha256:'.length)), { recursive: true });
    await writeFile(join(dir, 'current', 'link'), digest);
    await writeFile(join(dir, 'index', 'sha256', digest.slice('sha256:'.length), 'link'), digest);
  };
  for (let i = 1; i < count; i += 64) await Promise.all(Array.from({ length: Math.min(64, count - i) }, (_, k) => write(i + k)));
  return digest;
}
