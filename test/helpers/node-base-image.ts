/**
 * An offline stand-in for `node:20-bookworm-slim`, the Dockerfile's default NODE_IMAGE, which cannot be
 * pulled here (no Docker Hub). Made the way that image is, from parts this machine has:
 *
 * - a Debian bookworm `minbase` root from `debootstrap`, fetched from the Debian mirror apt already uses
 *   (read from /etc/apt/sources.list*), trimmed like the slim images (no apt lists or package cache,
 *   docs, man pages, locales);
 * - this machine's Node (the binary running the tests) as /usr/local/bin/node and its npm as
 *   /usr/local/lib/node_modules/npm with `npm`/`npx` links in /usr/local/bin, as the official image
 *   lays them out;
 * - the user `node`, uid 1000 and gid 1000, as in the official image;
 * - this machine's CA bundle as NODE_EXTRA_CA_CERTS, so the build's `npm ci` trusts whatever this
 *   network's TLS path presents for registry.npmjs.org (the build machine's trust, not the image's).
 *
 * The root is kept as a tar under a cache directory (`BERTH_TEST_CACHE`, default
 * `<tmpdir>/berth-test-cache`), keyed by everything that goes into it, so only the first run pays for
 * debootstrap; `docker import` of the tar takes seconds.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, readdir, realpath, rename, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Dockerd } from './dockerd.js';
import { run, which } from './process.js';

/** The commands making the root needs, each with its apt package. */
export const BASE_IMAGE_TOOLS: Readonly<Record<string, string>> = { debootstrap: 'debootstrap', chroot: 'coreutils', tar: 'tar' };

/** Bump when the recipe below changes, so cached roots are made again. */
const RECIPE = 1;
const SUITE = 'bookworm';
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const CA_IN_IMAGE = '/usr/local/share/ca-certificates-build-host.pem';
const DEBOOTSTRAP_TIMEOUT_MS = 15 * 60_000;
/** What the slim images leave out, relative to the root. */
const TRIM = ['var/cache/apt/archives', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale'];

/** The Debian mirror apt uses for the main `SUITE` archive (one-line or deb822 sources), else deb.debian.org. */
export async function debianMirror(): Promise<string> {
  const override = process.env['BERTH_DEBIAN_MIRROR'];
  if (override !== undefined && override !== '') return override;
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of (await readdir('/etc/apt/sources.list.d')).sort()) files.push(join('/etc/apt/sources.list.d', f));
  } catch {
    // no directory
  }
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    const found = file.endsWith('.sources') ? fromDeb822(text) : fromOneLine(text);
    if (found !== undefined) return found;
  }
  return FALLBACK_MIRROR;
}

function fromOneLine(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const words = line.replace(/\[[^\]]*\]/, ' ').trim().split(/\s+/);
    if (words[0] === 'deb' && words[2] === SUITE && words.slice(3).includes('main') && words[1] !== undefined) return words[1];
  }
  return undefined;
}

function fromDeb822(text: string): string | undefined {
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string): string[] =>
      (new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(stanza)?.[1] ?? '').trim().split(/\s+/).filter((w) => w !== '');
    if (field('Types').includes('deb') && field('Suites').includes(SUITE) && field('Components').includes('main')) return field('URIs')[0];
  }
  return undefined;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Where this machine's npm lives (the package directory holding bin/npm-cli.js). */
async function npmRoot(): Promise<string> {
  const npm = which('npm');
  if (npm === undefined) throw new Error('npm not found on PATH');
  return dirname(dirname(await realpath(npm)));
}

export interface NodeBaseRoot {
  /** The root as a tar. */
  readonly tar: string;
  /** False when it was made by this call. */
  readonly cached: boolean;
  readonly ms: number;
  /** What went into it, for the test log. */
  readonly description: string;
  /** Whether this machine's CA bundle is in it (then NODE_EXTRA_CA_CERTS names it). */
  readonly withCa: boolean;
}

/** Makes (or finds in the cache) the root's tar. @throws RunError when debootstrap or chroot fails. */
export async function nodeBaseRoot(): Promise<NodeBaseRoot> {
  const started = Date.now();
  const mirror = await debianMirror();
  const npm = await npmRoot();
  const npmVersion = (JSON.parse(await readFile(join(npm, 'package.json'), 'utf8')) as { version: string }).version;
  const ca = await stat(HOST_CA_BUNDLE).then(() => HOST_CA_BUNDLE, () => undefined);
  const inputs = {
    recipe: RECIPE, suite: SUITE, mirror, node: await fileSha256(process.execPath), npmVersion,
    ca: ca === undefined ? null : await fileSha256(ca),
  };
  const key = createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
  const description = `debian ${SUITE} minbase from ${mirror}, node ${process.version} (${process.execPath}), npm ${npmVersion}`;
  const cacheDir = process.env['BERTH_TEST_CACHE'] ?? join(tmpdir(), 'berth-test-cache');
  const tarPath = join(cacheDir, `node-base-${key}.tar`);
  const withCa = ca !== undefined;
  if (await stat(tarPath).then(() => true, () => false)) return { tar: tarPath, cached: true, ms: Date.now() - started, description, withCa };

  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, 'make-'));
  try {
    const root = join(work, 'root');
    await run('debootstrap', ['--variant=minbase', SUITE, root, mirror], { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
    for (const dir of TRIM) {
      await rm(join(root, dir), { recursive: true, force: true });
      await mkdir(join(root, dir), { recursive: true });
    }
    await installNode(root, npm, ca);
    await run('tar', ['-C', root, '-cf', `${tarPath}.part`, '.'], { timeoutMs: 5 * 60_000 });
    await rename(`${tarPath}.part`, tarPath);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { tar: tarPath, cached: false, ms: Date.now() - started, description, withCa };
}

/** Node, npm, the `node` user and the CA bundle, laid out as the official image has them. */
async function installNode(root: string, npm: string, ca: string | undefined): Promise<void> {
  const bin = join(root, 'usr/local/bin');
  await mkdir(bin, { recursive: true });
  await copyFile(process.execPath, join(bin, 'node'));
  await chmod(join(bin, 'node'), 0o755);
  await cp(npm, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(bin, 'npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(bin, 'npx'));
  if (ca !== undefined) await copyFile(ca, join(root, CA_IN_IMAGE));
  await run('chroot', [root, 'groupadd', '--gid', '1000', 'node']);
  await run('chroot', [root, 'useradd', '--uid', '1000', '--gid', 'node', '--shell', '/bin/bash', '--create-home', 'node']);
  const version = await run('chroot', [root, '/usr/local/bin/node', '--version']);
  if (version.stdout.trim() !== process.version) throw new Error(`node in the root answers ${version.stdout.trim()}, not ${process.version}`);
}

/**
 * `docker import`s the root as `tag`, with the official image's PATH and CMD. `d` is any docker CLI: a
 * test's private daemon, or the machine's own (scripts/node-base-image.ts).
 */
export async function importNodeBase(d: Pick<Dockerd, 'docker'>, root: NodeBaseRoot, tag: string): Promise<void> {
  const changes = [
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `ENV NODE_VERSION=${process.version.slice(1)}`,
    'CMD ["node"]',
  ];
  if (root.withCa) changes.push(`ENV NODE_EXTRA_CA_CERTS=${CA_IN_IMAGE}`);
  await d.docker(['import', ...changes.flatMap((c) => ['--change', c]), root.tar, tag], { timeoutMs: 5 * 60_000 });
}
