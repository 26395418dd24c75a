/**
 * The web UI's built files (DESIGN.md §11), read once at start from the directory `npm run build:ui`
 * writes (scripts/build-ui.ts): today one `index.html` with its stylesheet and script inline, kept in
 * memory with its gzip form, type and ETag, so serving it is a lookup; `index.html` is revalidated every
 * time (a return visit costs one 304). Any other file whose name carries a content hash
 * (`main-2KQJ5XUE.js`) never changes content and is cached for a year as immutable. The SHA-256 of each
 * inline `<script>` and `<style>` of `index.html` is what the Content-Security-Policy allows (serve-ui.ts).
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
  /** The CSP source expressions (`'sha256-…'`) of index.html's inline scripts and stylesheets. */
  readonly inline: InlineHashes;
}

/** CSP hash sources of a page's inline elements, by kind. */
export interface InlineHashes {
  readonly scripts: readonly string[];
  readonly styles: readonly string[];
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
  const index = files.get('index.html');
  if (index === undefined) return undefined;
  return { get: (path) => files.get(path), size: files.size, inline: inlineHashes(index.body.toString('utf8')) };
}

/**
 * The hash sources of the inline `<script>` and `<style>` elements of `html` (the build's own page, whose
 * elements carry no text that closes them early): SHA-256 over each element's text exactly as written,
 * as CSP Level 3 hashes it. A `<script src>` is not inline and needs no hash; a data block (a `<script>`
 * of another type, such as the page's `application/json` boot document) is never run, so CSP does not
 * apply to it and it gets none.
 */
export function inlineHashes(html: string): InlineHashes {
  const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  const texts = (tag: string): string[] =>
    [...html.matchAll(new RegExp(`<${tag}\\b([^>]*)>([\\s\\S]*?)</${tag}>`, 'gi'))]
      .filter((m) => !/\ssrc=/i.test(m[1] ?? '') && runs(m[1] ?? ''))
      .map((m) => hash(m[2] ?? ''));
  return { scripts: texts('script'), styles: texts('style') };
}

/** Whether a `<script>` with these attributes runs: no type, a JavaScript type, or a module. */
function runs(attributes: string): boolean {
  const type = /\stype=["']?([^"'\s>]*)/i.exec(attributes)?.[1]?.toLowerCase();
  return type === undefined || type === '' || type === 'module' || type === 'text/javascript' || type === 'application/javascript';
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
