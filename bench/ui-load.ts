/**
 * Page loads of the web UI on a large registry (issue #17's benchmark line): the repository list with
 * 10,000 repositories and the page of a repository with 10,000 tags, in headless chromium against
 * `berth serve` (index on), on the tree `npm run bench -- listing` generates. A load is timed from
 * navigation to the first rows on screen (the list's first table row; the repository's first tag card
 * with its digest, size and created time filled in). Target: under 300 ms.
 *
 *   npx tsx bench/ui-load.ts [rounds=5]
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildUi } from '../scripts/build-ui.js';
import { serve } from '../src/cli/serve.js';
import { launchChromium } from '../test/helpers/ui.js';
import { generate } from './listing.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { median } from './lib/report.js';

const rounds = Number(process.argv[2] ?? '5');
const dir = await makeTempDir('berth-bench-ui-');
try {
  const started = Date.now();
  await generate(join(dir, 'root'), { repos: 10_000, tags: 10_000 });
  console.log(`tree: 10,000 repositories + one of 10,000 tags in ${Date.now() - started} ms`);
  await buildUi();
  const config = join(dir, 'config.yml');
  await writeFile(config, ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'http:', '  addr: 127.0.0.1:0',
    'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`, '  delete:', '    enabled: true', ''].join('\n'));
  const served = await serve(config, {});
  const url = served.running.url;
  const browser = await launchChromium();
  try {
    const tagsApi = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(`${url}/berth/v1/repositories/tags-10k/tags?n=10000`);
      const body = (await res.json()) as { tags: unknown[] };
      if (body.tags.length !== 10_000) throw new Error(`tags endpoint gave ${body.tags.length} tags`);
      return performance.now() - t0;
    };
    const load = async (hash: string, ready: string): Promise<number> => {
      const page = await browser.newPage();
      try {
        const t0 = performance.now();
        await page.goto(`${url}/ui/${hash}`);
        await page.locator(ready).first().waitFor();
        return performance.now() - t0;
      } finally {
        await page.close();
      }
    };
    const scenarios: [string, () => Promise<number>][] = [
      ['GET /berth/v1/repositories/tags-10k/tags?n=10000 (Node fetch)', tagsApi],
      ['page: repository list (10,000 repositories)', () => load('#/', 'table.repos tbody tr')],
      ['page: repository of 10,000 tags', () => load('#/r/tags-10k', 'li.tag .facts')],
    ];
    for (const [, run] of scenarios) for (let i = 0; i < 3; i++) await run(); // warm-up (and the index's rebuild)
    for (const [name, run] of scenarios) {
      const samples: number[] = [];
      for (let i = 0; i < rounds; i++) samples.push(await run());
      console.log(`${name}: median ${median(samples).toFixed(0)} ms (${samples.map((s) => s.toFixed(0)).join(', ')})`);
    }
  } finally {
    await browser.close();
    await served.stop();
  }
} finally {
  await removeTempDir(dir);
}
