/**
 * Builds the server (src/) into dist/: src/main.ts bundled with its dependencies by esbuild into
 * dist/main.js (and the config loader alone into dist/config/parse.js, for deploy/healthcheck.mjs)
 * and the chunks their lazy imports load (dist/<module>-<hash>.js, loaded only when
 * configured, as from the sources, and shared dist/chunk-<hash>.js), without whitespace and comments but with every name as written
 * (stack traces and logged error types read as in the sources), and a linked source map beside each
 * file (`node --enable-source-maps` maps stack traces back to src/).
 *
 * Why a bundle rather than tsc's one file per module: a Node process holds every module it loaded as
 * source text and a module record, and koa's dependencies alone are dozens of small files. The
 * bundle starts about 7 MiB smaller (issue #19's RSS at rest; figures in bench/results/). One package
 * stays outside it: classic-level, a native addon that finds its binary beside its package, loaded
 * from node_modules as before (pino is inside: Berth writes with pino.destination, never with a
 * transport, whose worker threads would be started by file name). Every
 * `mime-types` import resolves to Berth's own copy, so koa's `accepts` does not carry a second copy
 * of the MIME database.
 *
 * Run by `npm run build` (after the type check) and by the benchmarks (bench/lib/servers.ts), which
 * run what this writes. Nothing is fetched: esbuild is a devDependency.
 *
 *   tsx scripts/build-server.ts [outDir]
 */
import { readdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const DEFAULT_SERVER_OUT_DIR = join(ROOT, 'dist');

/** Builds the server into `outDir`, first removing what an earlier build left there except the web UI (dist/ui/). */
export async function buildServer(outDir: string = DEFAULT_SERVER_OUT_DIR): Promise<void> {
  const old = await readdir(outDir).catch(() => []);
  await Promise.all(old.filter((name) => name !== 'ui').map((name) => rm(join(outDir, name), { recursive: true, force: true })));
  await build({
    absWorkingDir: ROOT,
    // config/parse.js too: the image's HEALTHCHECK (deploy/healthcheck.mjs) reads the config with it.
    entryPoints: [
      { in: 'src/main.ts', out: 'main' },
      { in: 'src/config/parse.ts', out: 'config/parse' },
      // The offline collector's survey workers (storage/maintenance/survey.ts), started by file name.
      { in: 'src/storage/maintenance/survey-worker.ts', out: 'survey-worker' },
    ],
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir: outDir,
    // Not minifyIdentifiers: renamed classes would log errors as `type: "Ie"`; esbuild's keepNames
    // fixes that but costs about 1 MiB of RSS at start in its name-setting calls.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    legalComments: 'none',
    external: ['classic-level'],
    // An alias resolves from the working directory (the checkout), not from the importing package.
    alias: { 'mime-types': 'mime-types' },
    // CommonJS dependencies call require() for Node's own modules; an ES module has none of its own.
    banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] === undefined ? DEFAULT_SERVER_OUT_DIR : resolve(process.argv[2]);
  await buildServer(out);
  console.log(`server built into ${out}`);
}
