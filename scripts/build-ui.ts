/**
 * Builds the web UI (web/) into dist/ui/index.html: one page with its stylesheet and its one bundled,
 * minified script inline, so a visit is one request (a return visit one revalidation, answered 304)
 * and the script runs as soon as the page is parsed, with no second round trip for an asset before
 * the page can ask the API anything. The server allows exactly these inline texts by their SHA-256 in
 * the Content-Security-Policy (src/http/ui/assets.ts), never 'unsafe-inline'. Run by `npm ci` (the
 * `prepare` script), `npm run build` and `npm run build:ui`; the UI tests run it too, so they always
 * test the source as it is. Nothing is fetched: esbuild is a devDependency.
 *
 *   tsx scripts/build-ui.ts [outDir]
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
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
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const script = result.outputFiles.find((f) => f.path.endsWith('.js'))?.text;
  const style = result.outputFiles.find((f) => f.path.endsWith('.css'))?.text;
  if (script === undefined || style === undefined) throw new Error('build-ui: esbuild wrote no script or no stylesheet');
  // esbuild escapes `</script` and `</style` in what it writes; a text that still closed its element early would break the page.
  if (/<\/script/i.test(script) || /<\/style/i.test(style)) throw new Error('build-ui: the script or the stylesheet would close its inline element');
  const template = await readFile(join(ROOT, 'web', 'index.html'), 'utf8');
  for (const placeholder of ['{{script}}', '{{style}}']) {
    if (template.split(placeholder).length !== 2) throw new Error(`build-ui: web/index.html must have ${placeholder} once`);
  }
  // Function replacements: a `$` in the bundle is text, not a replacement pattern.
  const html = template
    .replace('{{style}}', () => style.trimEnd())
    .replace('{{script}}', () => script.trimEnd());
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'index.html'), html);
  return ['index.html'];
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] === undefined ? DEFAULT_UI_OUT_DIR : resolve(process.argv[2]);
  const files = await buildUi(out);
  console.log(`web UI built into ${out}: ${files.join(', ')}`);
}
