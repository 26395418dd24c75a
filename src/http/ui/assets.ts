/**
 * The web UI's built files (DESIGN.md §11), read once at start from the directory `npm run build:ui`
 * writes (scripts/build-ui.ts): a few small text files, kept in memory with their gzip form, type and
 * ETag, so serving one is a lookup. Names that carry a content hash (`main-2KQJ5XUE.js`) never change
 * content and are cached for a year as immutable; `index.html` names them and is revalidated every time.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import { contentType } from 'mime-types';

/** One file of the UI, ready to send. */
export interface UiAsset {
  readonly body: Buffer;
  /** The gzip form, when it is smaller than the file. */
  readonly gzip: Buffer | undefined;
  /** Content-Type, with a charset for text. */
  readonly type: string;
  /** A strong ETag over the content. */
  readonly etag: string;
  /** The name carries a content hash: the content behind it never changes. */
  readonly immutable: boolean;
}

/** The built UI: its files by path relative to `/ui/` (`index.html`, `assets/main-….js`). */
export interface UiAssets {
  get(path: string): UiAsset | undefined;
  readonly size: number;
}

/** esbuild's `[name]-[hash]`: eight base-32 characters before the extension. */
const HASHED_NAME = /-[A-Z0-9]{8}\.[a-z0-9]+$/;

/** Files larger than this are not read (the UI is a few tens of KiB; anything this big is not ours). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads every file under `dir`. Answers undefined when `dir` or its `index.html` is missing (the UI was
 * not built); other read errors reject.
 */
export async function loadUiAssets(dir: string): Promise<UiAssets | undefined> {
  let names: string[];
  try {
    names = await readdir(dir, { recursive: true });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  const files = new Map<string, UiAsset>();
  for (const name of names) {
    const full = join(dir, name);
    const asset = await readAsset(full);
    if (asset !== undefined) files.set(relative(dir, full).split(sep).join('/'), asset);
  }
  if (!files.has('index.html')) return undefined;
  return { get: (path) => files.get(path), size: files.size };
}

async function readAsset(path: string): Promise<UiAsset | undefined> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch (err) {
    // A directory (readdir lists them too) or a file gone since the listing.
    if (isNotFound(err) || (err instanceof Error && 'code' in err && err.code === 'EISDIR')) return undefined;
    throw err;
  }
  if (body.length > MAX_FILE_BYTES) return undefined;
  const gzip = gzipSync(body, { level: 9 });
  return {
    body,
    gzip: gzip.length < body.length ? gzip : undefined,
    type: contentType(path.slice(path.lastIndexOf('/') + 1)) || 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    immutable: HASHED_NAME.test(path),
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && 'code' in err && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}
