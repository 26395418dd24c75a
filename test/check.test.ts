/**
 * `berth check [--repair]` as a command over a tree Berth wrote and that was then damaged: a corrupt
 * blob, a truncated one, a layer link whose blob is gone, a tag whose current link is empty, a revision
 * whose manifest does not parse, an orphaned blob. Each is reported (exit 1); --repair fixes what is
 * safe (quarantines the bad blobs, removes the dangling links and the broken tag) and leaves the rest
 * (the manifests that now lack a blob), and never removes content that verifies.
 */
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootConfig, runBerthCli } from './helpers/berth-cli.js';
import { startBerth } from './helpers/berth.js';
import { blobData, layerLink, revisionLink, tagLinks, v2 } from './helpers/layout.js';
import { type Image, blob, makeImage, pushBlob, pushImage } from './helpers/oci.js';

let dir = '';
let root = '';
let config = '';
let img1: Image;
let img2: Image;
let img3: Image;
const loose = blob('a loose layer whose data goes missing');
const orphan = blob('an orphan: no repository links it');
const junkManifest = blob('this is not a manifest');

const at = (path: string): string => join(v2(root), path);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-check-'));
  root = join(dir, 'root');
  config = join(dir, 'config.yml');
  await writeFile(config, rootConfig(root));
  const berth = await startBerth({ root });
  try {
    img1 = makeImage(1);
    img2 = makeImage(2, { docker: true, layerCount: 1 });
    img3 = makeImage(3, { layerCount: 1 });
    await pushImage(berth.url, 'app', 'v1', img1);
    await pushImage(berth.url, 'app', 'v2', img2);
    await pushImage(berth.url, 'app', 'v3', img3);
    await pushBlob(berth.url, 'app', loose);
    expect(berth.errors).toEqual([]);
  } finally {
    await berth.close();
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const check = (...args: string[]): ReturnType<typeof runBerthCli> => runBerthCli(['check', ...args, config]);

describe('berth check', () => {
  it('answers 0 with a summary on an undamaged tree', async () => {
    const r = await check();
    expect(r.stderr).not.toMatch(/level=(error|warn)/);
    expect(r.stdout).toBe('checked 11 blobs and 1 repositories: 0 problems, 0 orphaned blobs\n');
    expect(r.code).toBe(0);
  });

  it('reports each kind of damage, one line each, and answers 1', async () => {
    await damage();
    const r = await check();
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    const [l1] = img1.layers;
    const [l3] = img2.layers;
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(new RegExp(`^corrupt-blob: ${l1!.digest}: its data hashes to sha256:[0-9a-f]{64} \\(${l1!.size} bytes\\)$`)),
      expect.stringMatching(new RegExp(`^corrupt-blob: ${l3!.digest}: its data hashes to sha256:[0-9a-f]{64} \\(10 bytes\\)$`)),
      `dangling-layer-link: app: links blob ${loose.digest}, which is missing`,
      `broken-tag: app:v3: its current link is empty`,
      expect.stringMatching(new RegExp(`^unreadable-manifest: app@${junkManifest.digest}: does not parse`)),
      `orphaned blob: ${orphan.digest} (${orphan.size} bytes): no repository links it; garbage-collect removes it`,
    ]));
    expect(lines).toHaveLength(7); // and the summary
    expect(r.stdout).toMatch(/^checked 12 blobs and 1 repositories: 5 problems, 1 orphaned blobs$/m);
  });

  it('repairs what is safe with --repair, leaves the rest, and removes nothing that verifies', async () => {
    const before = await readFile(at(blobData(img1.layers[0]!.digest)));
    const r = await check('--repair');
    expect(r.code).toBe(1);
    const [l1] = img1.layers;
    const [l3] = img2.layers;
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(new RegExp(`^corrupt-blob: ${l1!.digest}: .*; repaired: moved to /berth/quarantine/sha256/${l1!.digest.slice(7)}/data$`)),
      expect.stringMatching(new RegExp(`^corrupt-blob: ${l3!.digest}: .*; repaired: moved to /berth/quarantine/sha256/${l3!.digest.slice(7)}/data$`)),
      `dangling-layer-link: app: links blob ${loose.digest}, which is missing; repaired: link removed`,
      `dangling-layer-link: app: links blob ${l1!.digest}, which is missing; repaired: link removed`,
      `dangling-layer-link: app: links blob ${l3!.digest}, which is missing; repaired: link removed`,
      `broken-tag: app:v3: its current link is empty; repaired: tag removed`,
      `missing-reference: app@${img1.manifest.digest}: refers to blob ${l1!.digest}, which is missing`,
      `missing-reference: app@${img2.manifest.digest}: refers to blob ${l3!.digest}, which is missing`,
      expect.stringMatching(/^unreadable-manifest: /),
    ]));
    expect(r.stdout).toMatch(/: 9 problems \(6 repaired, 3 remain\), 1 orphaned blobs$/m);
    // The corrupt bytes are kept aside, outside the registry tree.
    expect(await readFile(join(root, 'berth/quarantine/sha256', l1!.digest.slice(7), 'data'))).toEqual(before);
    await expect(stat(at(blobData(l1!.digest)))).rejects.toThrow();
    await expect(stat(at(layerLink('app', loose.digest)))).rejects.toThrow();
    await expect(stat(join(v2(root), 'repositories/app/_manifests/tags/v3'))).rejects.toThrow();
    // Everything that verifies is still there, links and all.
    for (const b of [img1.config, img1.layers[1]!, img1.manifest, img2.config, img2.manifest, img3.manifest, ...img3.layers, orphan]) {
      expect((await readFile(at(blobData(b.digest)))).equals(b.bytes)).toBe(true);
    }
    for (const t of ['v1', 'v2']) await stat(at(tagLinks('app', t, t === 'v1' ? img1.manifest.digest : img2.manifest.digest)[0]!));
    await stat(at(revisionLink('app', img3.manifest.digest)));
  });

  it('then reports only what --repair must leave', async () => {
    const r = await check();
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('missing-reference: '))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('unreadable-manifest: '))).toHaveLength(1);
    expect(lines.filter((l) => /^(corrupt-blob|dangling-layer-link|broken-tag): /.test(l))).toEqual([]);
    expect(r.stdout).toMatch(/: 3 problems, 1 orphaned blobs$/m);
  });

  it('refuses an unknown flag with the usage and exit 2', async () => {
    const r = await runBerthCli(['check', '--fix', config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^berth: unknown flag --fix\nusage: berth/);
  });
});

/** Corrupts one blob (same length), truncates another, removes a linked blob, empties a tag, adds junk. */
async function damage(): Promise<void> {
  const l1 = at(blobData(img1.layers[0]!.digest));
  const bytes = await readFile(l1);
  bytes[0] = (bytes[0] ?? 0) ^ 0xff;
  await writeFile(l1, bytes);
  await truncate(at(blobData(img2.layers[0]!.digest)), 10);
  await rm(dirname(at(blobData(loose.digest))), { recursive: true });
  await writeFile(at(tagLinks('app', 'v3', img3.manifest.digest)[0]!), '');
  for (const [path, content] of [
    [blobData(orphan.digest), orphan.bytes],
    [blobData(junkManifest.digest), junkManifest.bytes],
    [revisionLink('app', junkManifest.digest), Buffer.from(junkManifest.digest)],
  ] as const) {
    await mkdir(dirname(at(path)), { recursive: true });
    await writeFile(at(path), content);
  }
}
