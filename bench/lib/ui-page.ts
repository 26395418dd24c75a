/**
 * What the web UI's benchmarks (ui-load.ts, ui-trace.ts) share: waiting for a Berth's listing index to
 * be ready, and for headless chromium to be idle before a navigation (it opens a window per page,
 * whose omnibox renderer and the spare renderer it starts would otherwise share the cores with the
 * page being timed).
 */
import type { CDPSession } from 'playwright-core';
import { sleep } from './proc.js';

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
