/**
 * Builds the web UI (web/) into dist/ui/: one bundled, minified script and one stylesheet, each named
 * by its content hash (dist/ui/assets/main-XXXXXXXX.js), and index.html naming them. Run by `npm ci`
 * (the `prepare` script), `npm run build` and `npm run build:ui`; the UI test runs it too, so it always
 * tests the source as it is. Nothing is fetched: esbuild is a devDependency.
 *
 *   tsx scripts/build-ui.ts [outDir]
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the server looks for the UI (src/cli/serve.ts UI_ASSETS_DIR). */
export const DEFAULT_UI_OUT_DIR = join(ROOT, 'dist', 'ui');

/** Builds the UI into `outDir` (emptied first); answers the files written, relative to it. */
export async function buildUi(outDir: string = DEFAULT_UI_OUT_DIR): Promise<string[]> {
  await rm(outDir, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ['web/src/main.ts', 'web/style.css'],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    outdir: join(outDir, 'assets'),
    entryNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => resolve(ROOT, p));
  const script = outputs.find((p) => p.endsWith('.js'));
  const style = outputs.find((p) => p.endsWith('.css'));
  if (script === undefined || style === undefined) throw new Error('build-ui: esbuild wrote no script or no stylesheet');
  const template = await readFile(join(ROOT, 'web', 'index.html'), 'utf8');
  const html = template
    .replace('{{script}}', `assets/${basename(script)}`)
    .replace('{{style}}', `assets/${basename(style)}`);
  if (html.includes('{{')) throw new Error('build-ui: web/index.html has a placeholder left');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'index.html'), html);
  return ['index.html', `assets/${basename(script)}`, `assets/${basename(style)}`];
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] === undefined ? DEFAULT_UI_OUT_DIR : resolve(process.argv[2]);
  const files = await buildUi(out);
  console.log(`web UI built into ${out}: ${files.join(', ')}`);
}
