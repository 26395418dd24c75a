/**
 * Where a web UI page load's time goes inside Chromium (issue #17): one load of a page, recorded as a
 * Chromium trace (categories devtools.timeline, blink, v8, loading, navigation, toplevel), summed up.
 * It is bench/ui-load.ts's page and server (`berth serve` on the same kind of tree, index on), loaded
 * after three untimed loads, in a fresh context (`first`) or a new page of a context that loaded it
 * before (`return`), navigating once the browser is idle as ui-load.ts does, or at once (`--at-once`,
 * as ui-load.ts did before). It prints, from the page's navigation start:
 * - the milestones of the page's renderer: the document committed (`RenderFrameImpl::CommitNavigation`),
 *   each `ParseHTML`, domInteractive, its scripts' compile and run, DOMContentLoaded, style and layout;
 * - how busy every thread of every chromium process was between the navigation start and
 *   DOMContentLoaded (the union of its trace slices), by process: the page's renderer, the others
 *   (named by the page they hold, e.g. the window's omnibox WebUI), the browser, the GPU process.
 * The whole trace is written to `<out>` for Perfetto or chrome://tracing.
 *
 *   BERTH_BENCH_UI_TREE=<dir> npx tsx bench/ui-trace.ts [path=''] [first|return] [--at-once] [out=ui-trace.json]
 *   npx tsx bench/ui-trace.ts --from <trace.json>     (sums up a trace written before)
 *
 * `path` is under /ui/ ('' the list, `r/tags-10k` the 10,000-tag repository). The tree is generated
 * into BERTH_BENCH_UI_TREE when that is empty (as ui-load.ts does); without it, in a temporary directory.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { generate } from './listing.js';
import { makeTempDir, removeTempDir } from './lib/proc.js';
import { browserIdle, withUiServer } from './lib/ui-page.js';

const args = process.argv.slice(2);
const fromAt = args.indexOf('--from');
if (fromAt >= 0) {
  const events = (JSON.parse(await readFile(args[fromAt + 1] ?? '', 'utf8')) as { traceEvents: TraceEvent[] }).traceEvents;
  const url = events.find((e) => e.name === 'navigationStart' && /\/ui\//.test(e.args?.data?.documentLoaderURL ?? ''))?.args?.data?.documentLoaderURL;
  if (url === undefined) throw new Error('the trace has no navigation to a /ui/ page');
  summarize(events, url);
  process.exit(0);
}
const atOnce = args.includes('--at-once');
const [path = '', visit = 'first', out = 'ui-trace.json'] = args.filter((a) => a !== '--at-once');
if (visit !== 'first' && visit !== 'return') throw new Error(`visit: first or return, not ${visit}`);

/** One event of Chromium's trace (the JSON trace event format). */
interface TraceEvent {
  readonly name: string;
  readonly ph: string;
  readonly pid: number;
  readonly tid: number;
  readonly ts: number;
  readonly dur?: number;
  readonly args?: { readonly name?: string; readonly data?: { readonly documentLoaderURL?: string } };
}

const CATEGORIES = ['devtools.timeline', 'blink', 'v8', 'loading', 'navigation', 'toplevel', 'blink.user_timing'];

const dir = await makeTempDir('berth-bench-ui-trace-');
try {
  const root = process.env['BERTH_BENCH_UI_TREE'] ?? join(dir, 'root');
  if ((await readdir(root).catch(() => [])).length === 0) await generate(root, { repos: 10_000, tags: 10_000 });
  await withUiServer(dir, root, { deletes: false }, (url, browser) => traceOne(browser, `${url}/ui/${path}`));
} finally {
  await removeTempDir(dir);
}

async function traceOne(browser: Browser, pageUrl: string): Promise<void> {
  const cdp = await browser.newBrowserCDPSession();
  const idle = browserIdle(cdp);
  const returning = await browser.newContext();
  const open = async (): Promise<{ context: BrowserContext; page: Page }> => {
    const context = visit === 'first' ? await browser.newContext() : returning;
    return { context, page: await context.newPage() };
  };
  for (let i = 0; i < 3; i++) {
    const { context, page } = await open();
    await idle();
    await page.goto(pageUrl);
    await page.close();
    if (context !== returning) await context.close();
  }
  const { page } = await open();
  if (!atOnce) await idle();
  await browser.startTracing(undefined, { categories: CATEGORIES });
  await page.goto(pageUrl);
  await page.waitForFunction('document.readyState === "complete"');
  const trace = await browser.stopTracing();
  await writeFile(out, trace);
  summarize((JSON.parse(trace.toString('utf8')) as { traceEvents: TraceEvent[] }).traceEvents, pageUrl);
  console.log(`\ntrace written to ${out} (${(trace.length / 1e6).toFixed(1)} MB)`);
}

function summarize(events: readonly TraceEvent[], pageUrl: string): void {
  const processName = new Map<number, string>();
  const threadName = new Map<string, string>();
  for (const e of events) {
    if (e.ph !== 'M') continue;
    if (e.name === 'process_name') processName.set(e.pid, e.args?.name ?? '');
    if (e.name === 'thread_name') threadName.set(`${e.pid}/${e.tid}`, e.args?.name ?? '');
  }
  // Renderers are named by the first page they navigated to (their own navigationStart marks).
  const holds = new Map<number, string>();
  for (const e of events) {
    const doc = e.name === 'navigationStart' ? e.args?.data?.documentLoaderURL : undefined;
    if (doc !== undefined && doc !== '' && !holds.has(e.pid)) holds.set(e.pid, doc);
  }
  const start = events.find((e) => e.name === 'navigationStart' && e.args?.data?.documentLoaderURL === pageUrl);
  if (start === undefined) throw new Error(`the trace has no navigation to ${pageUrl}`);
  const t0 = start.ts;
  const at = (e: TraceEvent): string => `${((e.ts - t0) / 1000).toFixed(1)} ms`;
  const span = (e: TraceEvent): string => `${at(e)} +${((e.dur ?? 0) / 1000).toFixed(1)} ms`;
  const main = events.filter((e) => e.pid === start.pid && threadName.get(`${e.pid}/${e.tid}`) === 'CrRendererMain' && e.ts >= t0);
  // The renderer holds a blank frame first (its own milestones); the page's come after its commit.
  const commit = main.find((e) => e.name === 'RenderFrameImpl::CommitNavigation' && e.ph === 'X');
  const after = commit?.ts ?? t0;
  const first = (name: string): TraceEvent | undefined => main.find((e) => e.name === name && e.ts >= after);
  const dcl = first('domContentLoadedEventStart');
  const end = dcl?.ts ?? t0 + 1e6;
  console.log(`the page's renderer (pid ${start.pid}), from its navigation start:`);
  const response = events.find((e) => e.pid === start.pid && e.name === 'responseEnd' && e.ts >= t0);
  if (response !== undefined) console.log(`  HTML received (responseEnd) ${at(response)}`);
  if (commit !== undefined) console.log(`  document committed (RenderFrameImpl::CommitNavigation) ${span(commit)}`);
  for (const e of main) if (e.ph === 'X' && e.ts >= after && e.ts <= end && ['ParseHTML', 'v8.compileModule', 'v8.evaluateModule', 'v8.compile', 'EvaluateScript', 'UpdateLayoutTree', 'Layout', 'CSSParserImpl::parseStyleSheet'].includes(e.name) && (e.dur ?? 0) >= 500) console.log(`  ${e.name} ${span(e)}`);
  for (const name of ['domInteractive', 'domContentLoadedEventStart']) {
    const e = first(name);
    if (e !== undefined) console.log(`  ${name} ${at(e)}`);
  }
  console.log(`\nbusy time of every chromium thread from the navigation start to DOMContentLoaded (${((end - t0) / 1000).toFixed(0)} ms), by process:`);
  const busy = new Map<string, number>();
  const byThread = new Map<string, [number, number][]>();
  for (const e of events) {
    if (e.ph !== 'X' || e.dur === undefined || e.ts + e.dur <= t0 || e.ts >= end) continue;
    const key = `${e.pid}/${e.tid}`;
    const list = byThread.get(key) ?? [];
    list.push([Math.max(e.ts, t0), Math.min(e.ts + e.dur, end)]);
    byThread.set(key, list);
  }
  for (const [key, spans] of byThread) {
    spans.sort((a, b) => a[0] - b[0]);
    let total = 0;
    let [from, to] = spans[0]!;
    for (const [a, b] of spans.slice(1)) {
      if (a > to) {
        total += to - from;
        [from, to] = [a, b];
      } else {
        to = Math.max(to, b);
      }
    }
    total += to - from;
    const pid = Number(key.split('/')[0]);
    const label = pid === start.pid ? `the page's renderer (${pid})` : `${processName.get(pid) ?? 'process'} ${pid}${holds.has(pid) ? ` (${holds.get(pid)})` : ''}`;
    busy.set(label, (busy.get(label) ?? 0) + total);
  }
  for (const [label, us] of [...busy].sort((a, b) => b[1] - a[1])) if (us >= 1000) console.log(`  ${(us / 1000).toFixed(0).padStart(5)} ms  ${label}`);
}
