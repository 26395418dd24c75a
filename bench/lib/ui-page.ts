/**
 * What the web UI's benchmarks (ui-load.ts, ui-trace.ts) share: waiting for a Berth's listing index to
 * be ready, and for headless chromium to be idle before a navigation (it opens a window per page,
 * whose omnibox renderer and the spare renderer it starts would otherwise share the cores with the
 * page being timed); and serving a kept tree from a Berth of their own to a chromium.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, CDPSession } from 'playwright-core';
import { buildUi } from '../../scripts/build-ui.js';
import { launchChromium } from '../../test/helpers/ui.js';
import { freePort, sleep, startServer } from './proc.js';
import { REPO_ROOT } from './servers.js';

/** The browser is idle once its processes used at most IDLE_CPU_MS of CPU over the last IDLE_WINDOW_MS (polled every IDLE_POLL_MS). */
const IDLE_WINDOW_MS = 200;
const IDLE_CPU_MS = 10;
const IDLE_POLL_MS = 25;

/**
 * A function that waits until every chromium process has been idle for {@link IDLE_WINDOW_MS} (their CPU
 * times together grew by at most {@link IDLE_CPU_MS}, as CDP `SystemInfo.getProcessInfo` reads them: in
 * the kernel's 10 ms ticks) and answers how long it waited. A process that exited (the previous page's
 * renderer) no longer counts; one that started counts from zero. Throws after 30 s of a busy browser.
 */
export function browserIdle(cdp: CDPSession): () => Promise<number> {
  const cpuTimes = async (): Promise<Map<number, number>> =>
    new Map((await cdp.send('SystemInfo.getProcessInfo')).processInfo.map((p) => [p.id, p.cpuTime * 1000]));
  return async () => {
    const started = performance.now();
    const window: { at: number; cpu: Map<number, number> }[] = [];
    for (;;) {
      const now = { at: performance.now(), cpu: await cpuTimes() };
      window.push(now);
      while (window.length > 1 && now.at - window[1]!.at >= IDLE_WINDOW_MS) window.shift();
      const first = window[0]!;
      if (now.at - first.at >= IDLE_WINDOW_MS) {
        let used = 0;
        for (const [id, cpu] of now.cpu) used += cpu - (first.cpu.get(id) ?? 0);
        if (used <= IDLE_CPU_MS) return performance.now() - started;
      }
      if (now.at - started > 30_000) throw new Error('chromium was still busy after 30 s');
      await sleep(IDLE_POLL_MS);
    }
  };
}

/** Waits until the server answers and its listing index has rebuilt (its metric on the debug listener says ready). */
export async function indexReady(debugUrl: string, output: () => string): Promise<void> {
  const started = Date.now();
  for (;;) {
    const text = await fetch(`${debugUrl}/metrics`).then((res) => res.text(), () => '');
    if (/^berth_index_ready 1$/m.test(text)) break;
    if (Date.now() - started > 600_000) throw new Error(`the index was not ready after 10 minutes; the server said:\n${output()}`);
    await sleep(500);
  }
  console.log(`index ready ${Date.now() - started} ms after start`);
}

/**
 * Builds the UI, serves the tree at `root` from a Berth in its own process (as deployed: the browser's
 * driver, playwright in this process, does not share its event loop; config in `dir`, access log off,
 * `deletes` on when asked), waits for its listing index, runs `use` with a chromium, then stops both.
 */
export async function withUiServer(
  dir: string,
  root: string,
  o: { readonly deletes: boolean },
  use: (url: string, browser: Browser) => Promise<void>,
): Promise<void> {
  await buildUi();
  const config = join(dir, 'config.yml');
  const [port, debugPort] = [await freePort(), await freePort()];
  await writeFile(config, ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'http:', `  addr: 127.0.0.1:${port}`, '  debug:', `    addr: 127.0.0.1:${debugPort}`, '    prometheus:', '      enabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(root)}`, ...(o.deletes ? ['  delete:', '    enabled: true'] : []), ''].join('\n'));
  const url = `http://127.0.0.1:${port}`;
  const server = startServer(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', config], url, REPO_ROOT);
  try {
    await indexReady(`http://127.0.0.1:${debugPort}`, () => server.output());
    const browser = await launchChromium();
    try {
      await use(url, browser);
    } finally {
      await browser.close();
    }
  } finally {
    await server.stop();
  }
}
