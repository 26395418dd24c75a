/**
 * Page loads of the web UI on a large registry (issue #17's benchmark line): the repository list with
 * 10,000 repositories and the page of a repository with 10,000 tags, in headless chromium against
 * `berth serve` (index on), on the tree `npm run bench -- listing` generates. A load is timed from
 * navigation to the first rows on screen (the list's first table row; the repository's first tag card
 * with its digest, size and created time filled in). Target: under 300 ms. Besides: the page's load
 * event alone (the floor of any first visit), and return visits (assets cached). The pages are timed once the
 * listing index is ready (its `berth_index_ready` metric is 1), as a running registry serves them; the
 * machine's load average is printed before and after.
 *
 *   npx tsx bench/ui-load.ts [rounds=5]
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
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
  await writeFile(config, ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'http:', '  addr: 127.0.0.1:0', '  debug:', '    addr: 127.0.0.1:0', '    prometheus:', '      enabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'root'))}`, '  delete:', '    enabled: true', ''].join('\n'));
  const served = await serve(config, {});
  const url = served.running.url;
  await indexReady(served.debug?.url);
  const browser = await launchChromium();
  try {
    const tagsApi = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(`${url}/berth/v1/repositories/tags-10k/tags?n=10000`);
      const body = (await res.json()) as { tags: unknown[] };
      if (body.tags.length !== 10_000) throw new Error(`tags endpoint gave ${body.tags.length} tags`);
      return performance.now() - t0;
    };
    const namedTags = Array.from({ length: 20 }, (_, i) => `tag=t${String(9999 - i).padStart(5, '0')}`).join('&');
    const namedApi = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(`${url}/berth/v1/repositories/tags-10k/tags?${namedTags}`);
      const body = (await res.json()) as { tags: unknown[] };
      if (body.tags.length !== 20) throw new Error(`named tags gave ${body.tags.length} tags`);
      return performance.now() - t0;
    };
    /**
     * A load timed from navigation to `ready` on screen (undefined: to the page's load event, the HTML,
     * CSS and script alone). A first visit opens a fresh browser context (nothing cached); a return
     * visit a new page of one context that has loaded the UI before (the hashed assets cached). Besides
     * the wall time the bench sees (from `goto` until playwright finds the element), the page's own
     * clock says when the element entered the DOM, counted from its navigation start (a mutation
     * observer set before any of the page's scripts runs): what is left of a load once the browser's
     * tab start-up and the harness are taken out.
     */
    const returning = await browser.newContext();
    const load = async (hash: string, ready: string | undefined, visit: 'first' | 'return' = 'first'): Promise<Sample> => {
      const page = visit === 'first' ? await browser.newPage() : await returning.newPage();
      try {
        if (ready !== undefined) await page.addInitScript(watchFor(ready));
        const t0 = performance.now();
        await page.goto(`${url}/ui/${hash}`);
        if (ready !== undefined) await page.locator(ready).first().waitFor();
        const ms = performance.now() - t0;
        const inPage = await page.evaluate(ready === undefined ? "performance.getEntriesByType('navigation')[0].loadEventEnd" : 'window.berthBenchReady');
        if (typeof inPage !== 'number') throw new Error(`the page gave no time for ${hash}`);
        return { ms, inPage };
      } finally {
        await page.close();
      }
    };
    const scenarios: [string, () => Promise<Sample>][] = [
      ['GET /berth/v1/repositories/tags-10k/tags?n=10000 (Node fetch)', async () => ({ ms: await tagsApi() })],
      ['GET /berth/v1/repositories/tags-10k/tags?tag=… (20 named tags, Node fetch)', async () => ({ ms: await namedApi() })],
      ['page: the load event alone (HTML, CSS, script; the floor of a first visit)', () => load('#/admin', undefined)],
      ['page: repository list (10,000 repositories)', () => load('#/', 'table.repos tbody tr')],
      ['page: repository of 10,000 tags', () => load('#/r/tags-10k', 'li.tag .facts')],
      ['page: repository list, return visit', () => load('#/', 'table.repos tbody tr', 'return')],
      ['page: repository of 10,000 tags, return visit', () => load('#/r/tags-10k', 'li.tag .facts', 'return')],
    ];
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    for (const [, run] of scenarios) for (let i = 0; i < 3; i++) await run(); // warm-up (and the index's rebuild)
    for (const [name, run] of scenarios) {
      const samples: Sample[] = [];
      for (let i = 0; i < rounds; i++) samples.push(await run());
      const inPage = samples.flatMap((x) => (x.inPage === undefined ? [] : [x.inPage]));
      console.log(`${name}: median ${summary(samples.map((x) => x.ms))}${inPage.length > 0 ? `; in the page from its navigation start: median ${summary(inPage)}` : ''}`);
    }
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await browser.close();
    await served.stop();
  }
} finally {
  await removeTempDir(dir);
}

/** Waits until the listing index has rebuilt (its metric on the debug listener says ready). */
async function indexReady(debugUrl: string | undefined): Promise<void> {
  if (debugUrl === undefined) throw new Error('the bench needs the debug listener for berth_index_ready');
  const started = Date.now();
  for (;;) {
    const text = await (await fetch(`${debugUrl}/metrics`)).text();
    if (/^berth_index_ready 1$/m.test(text)) break;
    if (Date.now() - started > 600_000) throw new Error('the index was not ready after 10 minutes');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  console.log(`index ready ${Date.now() - started} ms after start`);
}

/** One timed sample: the wall time, and the page's own figure when there is one. */
interface Sample {
  readonly ms: number;
  readonly inPage?: number;
}

function summary(xs: readonly number[]): string {
  return `${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
}

/** A script run before the page's own: notes (window.berthBenchReady) when `selector` first matches. */
function watchFor(selector: string): string {
  return `(() => {
    const check = () => {
      if (window.berthBenchReady === undefined && document.querySelector(${JSON.stringify(selector)}) !== null) window.berthBenchReady = performance.now();
    };
    new MutationObserver(check).observe(document, { childList: true, subtree: true });
  })()`;
}
