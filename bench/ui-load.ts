/**
 * Page loads of the web UI on a large registry (issue #17's benchmark line): the repository list with
 * 10,000 repositories and the page of a repository with 10,000 tags, in headless chromium against
 * `berth serve` in its own process (index on), on the tree `npm run bench -- listing` generates. Target: under 300 ms.
 *
 * What is timed. The target line is the page's own clock: from its navigation start (the
 * `performance.now()` origin, which Navigation Timing also counts from) until the first rows are in
 * the DOM (the list's first table row; the repository's first tag card with its digest and push
 * time), noted by a mutation observer set before any of the page's scripts runs, which also says so on
 * the console for the harness to wait on (so no harness code runs in the page while it loads). That is
 * what a user waits for once the browser has a tab: it leaves out the tab's own start-up and the
 * harness. It is printed for a first visit (a fresh browser context) and a return visit (a new page of a
 * context that loaded the UI before; the page itself is `no-store`, so it is fetched again either way).
 *
 * Each navigation starts once the browser is idle (every chromium process, from CDP
 * `SystemInfo.getProcessInfo`, has used next to no CPU for 200 ms): headless chromium opens a window per
 * page and starts that window's own pages (the omnibox popup, a top-chrome WebUI renderer: some 800 ms of
 * CPU) and a spare renderer for the next navigation, and the previous visit's page is still being torn
 * down. A user's tab in a running browser waits on none of that, and on 2 cores a page that navigated at
 * once shared them with it (a trace, bench/ui-trace.ts, showed the page's renderer still starting up as its
 * navigation began, and the WebUI's scripts compiling beside the page's parse). The load that navigates at
 * once, as before, is printed as context, alternating with the timed one.
 *
 * As context: the page complete (the list with its usage figures; the repository's first card with size,
 * created time and type), where the time goes (HTML received, the document committed in its renderer,
 * parsed, scripts run, the first rows' API answers in, from Navigation and Resource Timing and the
 * harness's init script), the wall time the harness sees (from `goto` until the page says it has the rows,
 * including the tab's start-up), the page's load event alone (the floor of any first visit), and the
 * API requests of the first screens from Node. The pages are timed once the listing index is ready
 * (`berth_index_ready` 1), as a running registry serves them; the load average is printed before and after.
 *
 *   npx tsx bench/ui-load.ts [rounds=5]
 *
 * BERTH_BENCH_UI_TREE=<dir> keeps the generated tree in <dir> (generated when empty, reused when not),
 * which saves its minutes on a second run.
 */
import { readdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { generate } from './listing.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { browserIdle, withUiServer } from './lib/ui-page.js';
import { median } from './lib/report.js';

/**
 * The pages (their path under /ui/), what they wait for, and the API requests their first rows need:
 * none, since the server sends the first view's data with the page (src/http/ui/first-view.ts).
 */
const LIST = { path: '', rows: 'table.repos tbody tr', complete: 'table.repos tbody tr td', api: [] } as const;
const REPO = { path: 'r/tags-10k', rows: 'li.tag .facts', complete: 'li.tag[data-filled]', api: [] } as const;
type PageSpec = typeof LIST | typeof REPO;
/** What the page's observer logs when a selector first matches (`berth-bench rows`). */
const NOTE = 'berth-bench';

const rounds = Number(process.argv[2] ?? '5');
const keptTree = process.env['BERTH_BENCH_UI_TREE'];
const dir = await makeTempDir('berth-bench-ui-');
try {
  const root = keptTree ?? join(dir, 'root');
  await treeAt(root);
  await withUiServer(dir, root, { deletes: true }, runScenarios);
} finally {
  await removeTempDir(dir);
}

/** The tree under `root`: generated unless a kept one is there already. */
async function treeAt(root: string): Promise<void> {
  const existing = await readdir(root).catch(() => []);
  if (existing.length > 0) {
    console.log(`tree: reusing ${root}`);
    return;
  }
  const started = Date.now();
  await generate(root, { repos: 10_000, tags: 10_000 });
  console.log(`tree: 10,000 repositories + one of 10,000 tags in ${Date.now() - started} ms`);
}

async function runScenarios(url: string, browser: Browser): Promise<void> {
  const idle = browserIdle(await browser.newBrowserCDPSession());
  const returning = await browser.newContext();
  const api = (path: string) => async (): Promise<number> => {
    const t0 = performance.now();
    const res = await fetch(`${url}${path}`);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return performance.now() - t0;
  };
  const apiCalls: [string, () => Promise<number>][] = [
    ['GET /berth/v1/repositories/tags-10k/tags?sort=version&n=20 (the repository page\'s first request)', api('/berth/v1/repositories/tags-10k/tags?sort=version&n=20')],
    ['GET /berth/v1/repositories/tags-10k/tags?sort=pushed&n=20 (sorted by push time: a stat of each tag)', api('/berth/v1/repositories/tags-10k/tags?sort=pushed&n=20')],
    ['GET /berth/v1/repositories/tags-10k/usage (the repository page\'s figures)', api('/berth/v1/repositories/tags-10k/usage')],
    ['GET /v2/_catalog?n=50 (the list\'s names)', api('/v2/_catalog?n=50')],
    ['GET /berth/v1/usage?n=50 (the list\'s figures)', api('/berth/v1/usage?n=50')],
  ];
  const pages: [string, PageSpec, 'first' | 'return'][] = [
    ['repository list (10,000 repositories), first visit', LIST, 'first'],
    ['repository list, return visit', LIST, 'return'],
    ['repository of 10,000 tags, first visit', REPO, 'first'],
    ['repository of 10,000 tags, return visit', REPO, 'return'],
  ];
  const context = (visit: 'first' | 'return'): Promise<BrowserContext> => (visit === 'first' ? browser.newContext() : Promise.resolve(returning));
  console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  // Warm-up, untimed: the server's first reads and the return context's cache.
  for (let i = 0; i < 3; i++) {
    for (const [, call] of apiCalls) await call();
    for (const [, spec, visit] of pages) await load(url, await context(visit), spec, visit === 'first', idle);
  }
  // Each round loads every page once when the browser is idle, then once navigating at once (as before).
  const results = pages.map(([name]) => ({ name, samples: [] as PageSample[], atOnce: [] as PageSample[] }));
  for (let i = 0; i < rounds; i++) {
    for (const [k, [, spec, visit]] of pages.entries()) {
      results[k]!.samples.push(await load(url, await context(visit), spec, visit === 'first', idle));
      results[k]!.atOnce.push(await load(url, await context(visit), spec, visit === 'first', undefined));
    }
  }
  const floor: number[] = [];
  for (let i = 0; i < rounds; i++) floor.push(await loadEventAlone(url, await browser.newContext(), idle));
  const apiTimes = [];
  for (const [name, call] of apiCalls) {
    const xs: number[] = [];
    for (let i = 0; i < rounds; i++) xs.push(await call());
    apiTimes.push({ name, xs });
  }
  console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('\nTarget (issue #17: under 300 ms): the page\'s own clock, navigation start to the first rows in the DOM');
  for (const { name, samples } of results) {
    const ms = median(samples.map((s) => s.rows));
    console.log(`  ${name}: median ${summary(samples.map((s) => s.rows))}: ${ms < 300 ? 'under' : 'OVER'} 300 ms`);
  }
  console.log('\nContext');
  for (const { name, samples, atOnce } of results) {
    console.log(`  ${name}: page complete ${summary(samples.map((s) => s.complete))}; wall time from goto ${summary(samples.map((s) => s.wall))}; the browser idle ${summary(samples.map((s) => s.waited))} after the page opened`);
    console.log(`    where it goes (medians from navigation start): HTML received ${ms(samples.map((s) => s.html))}, the document committed in its renderer ${ms(samples.map((s) => s.committed))}, HTML parsed ${ms(samples.map((s) => s.parsed))}, scripts run ${ms(samples.map((s) => s.scripts))}, the first rows' data in (it comes with the HTML) ${ms(samples.map((s) => s.api))}; from the script having run to the first rows ${ms(samples.map((s) => s.rows - s.scripts))}; long tasks (over 50 ms) on the page's main thread before the first rows ${ms(samples.map((s) => s.busy))}`);
    console.log(`    navigating at once (as before: the browser still starting the page's window): first rows ${summary(atOnce.map((s) => s.rows))}; committed ${ms(atOnce.map((s) => s.committed))}, HTML parsed ${ms(atOnce.map((s) => s.parsed))}, scripts run ${ms(atOnce.map((s) => s.scripts))}`);
  }
  console.log(`  the page's load event alone (the page with its inline script and stylesheet; the floor of a first visit), in the page: median ${summary(floor)}`);
  for (const { name, xs } of apiTimes) console.log(`  ${name} from Node: median ${summary(xs)}`);
}

/** One load of a page, in the page's own clock (ms from its navigation start) except `wall`. */
interface PageSample {
  readonly wall: number;
  /** The first rows in the DOM. */
  readonly rows: number;
  /** The page complete (figures in the list; the first card filled in). */
  readonly complete: number;
  readonly html: number;
  /** The new document committed in its renderer: when the harness's init script ran in it (before any HTML is parsed). */
  readonly committed: number;
  /** domInteractive: the HTML parsed (the inline module script runs right after). */
  readonly parsed: number;
  /** DOMContentLoaded's end: the module script has run. */
  readonly scripts: number;
  /** The last of the API answers the first rows need to end. */
  readonly api: number;
  /** The duration of the main thread's long tasks (over 50 ms) before the first rows. */
  readonly busy: number;
  /** How long the harness waited, after opening the page, for the browser to be idle (0 when navigating at once). */
  readonly waited: number;
}

/**
 * Loads `spec` in a new page of `context` (closing the context after when `fresh`), navigating once
 * `idle` says the browser is (at once without it).
 */
async function load(url: string, context: BrowserContext, spec: PageSpec, fresh: boolean, idle: (() => Promise<number>) | undefined): Promise<PageSample> {
  const page = await context.newPage();
  try {
    await page.addInitScript(watchFor({ rows: spec.rows, complete: spec.complete }));
    // The page's own observer says when each selector matched (a console message): waiting for it runs
    // nothing in the page, where playwright's locator polling would take the page's main thread while it loads.
    const noted = (name: string): Promise<unknown> => page.waitForEvent('console', { predicate: (m) => m.text() === `${NOTE} ${name}`, timeout: 60_000 });
    const waited = idle === undefined ? 0 : await idle();
    const [rows, complete] = [noted('rows'), noted('complete')];
    // Either is awaited below; when something fails first, the page's closing rejects them unobserved.
    for (const p of [rows, complete]) p.catch(() => undefined);
    const t0 = performance.now();
    await page.goto(`${url}/ui/${spec.path}`);
    await rows;
    const wall = performance.now() - t0;
    await complete;
    // A fetch's Resource Timing entry is written once its body is in, which can be after the rows are
    // (the page reads GET /v2/'s status only): wait for the entries, up to 5 s, after the clock has stopped.
    const got = (await page.evaluate(`(async () => {
      const nav = performance.getEntriesByType('navigation')[0];
      const wanted = () => performance.getEntriesByType('resource').filter((r) => ${JSON.stringify(spec.api)}.some((p) => new URL(r.name).pathname === p));
      for (let waited = 0; wanted().length < ${spec.api.length} && waited < 5000; waited += 20) await new Promise((ok) => setTimeout(ok, 20));
      const api = wanted();
      // No API request before the first rows: their data came with the HTML.
      const apiEnd = ${spec.api.length} === 0 ? nav.responseEnd : Math.max(...api.map((r) => r.responseEnd));
      return { ...window.berthBenchReady, html: nav.responseEnd, parsed: nav.domInteractive, scripts: nav.domContentLoadedEventEnd, api: api.length < ${spec.api.length} ? NaN : apiEnd };
    })()`)) as Omit<PageSample, 'wall' | 'waited'>;
    for (const [k, v] of Object.entries(got)) if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`the page gave no ${k} time for /ui/${spec.path}`);
    return { wall, waited, ...got };
  } finally {
    await page.close();
    if (fresh) await context.close();
  }
}

/** The load event of a page that asks nothing it waits for (the admin page's HTML, CSS and script). */
async function loadEventAlone(url: string, context: BrowserContext, idle: () => Promise<number>): Promise<number> {
  const page = await context.newPage();
  try {
    await idle();
    await page.goto(`${url}/ui/admin`);
    const end = await page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd");
    if (typeof end !== 'number') throw new Error('the page gave no load event time');
    return end;
  } finally {
    await context.close();
  }
}

function summary(xs: readonly number[]): string {
  return `${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
}

function ms(xs: readonly number[]): string {
  return `${median(xs).toFixed(0)} ms`;
}

/**
 * A script run before the page's own: notes in `window.berthBenchReady[name]` the time (from the
 * navigation start) at which each selector first matches, and says so on the console (`berth-bench
 * <name>`), and in `busy` the main thread's long tasks.
 */
function watchFor(selectors: Readonly<Record<string, string>>): string {
  return `(() => {
    const wanted = ${JSON.stringify(selectors)};
    // The init script runs in the new document as soon as it is committed: its time is when the renderer had it.
    const seen = { busy: 0, committed: performance.now() };
    window.berthBenchReady = seen;
    const check = () => {
      for (const [name, selector] of Object.entries(wanted)) {
        if (seen[name] === undefined && document.querySelector(selector) !== null) {
          seen[name] = performance.now();
          console.debug(${JSON.stringify(NOTE)} + ' ' + name);
        }
      }
    };
    // Long tasks (over 50 ms) on the page's main thread that ended before the first rows: its own work, not waiting.
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (seen.rows === undefined || e.startTime + e.duration <= seen.rows) seen.busy += e.duration;
    }).observe({ type: 'longtask', buffered: true });
    new MutationObserver(check).observe(document, { childList: true, subtree: true, attributes: true });
  })()`;
}
