/**
 * Upload bodies give way to other requests while the event loop lags (issue #19). Uploads are
 * throughput work and manifest GETs latency work, but both share one JavaScript thread: every 64 KiB
 * chunk of an upload is read, hashed and queued for the disk on it (body-feed.ts), and
 * four fast uploads keep the loop so busy that a manifest GET waits several long turns.
 *
 * While any upload runs (uploads-running.ts), a timer ticks every TICK_MS. A tick that fires more than
 * LAG_LIMIT_MS late means the loop was busy; upload chunks that arrive then are held (body-feed.ts asks
 * `uploadMayGoNow` for each), so the upload's request is paused and the kernel stops reading the socket
 * (TCP pushes back on the client). The next tick lets every held chunk go on, whatever the lag: an
 * upload is held at most one tick in two, so it always gets at least half the ticks and cannot be
 * starved by a steady flood of small requests. An upload alone is held only when its own work makes a
 * tick late; the 1 GiB PUT alone measured the same (bench/probe-put-peak.ts, 7 alternating rounds:
 * 267 MB/s median against main's 261, peak RSS 75.1 MiB against 74.9).
 *
 * Measured (bench/probe-mixed-tail.ts, bench/results/mixed-2026-12-07-ab19-notes.md; a loaded
 * machine, two alternating rounds): manifest GET p99 under four 1 GiB uploads 130 / 121 ms against
 * 228 / 155 without, uploads 230 / 172 MB/s against 239 / 184, but manifest requests/s 1.8k against
 * 2.4k. A lag limit of 10 ms did no better. It does not reach issue #19's 50 ms: most of the tail
 * is spent before Berth's handlers see a request (Berth timed under 1% of these GETs above 50 ms).
 */
import { onUploads } from './uploads-running.js';

/** How often the loop's lag is looked at while an upload runs (ms). */
export const TICK_MS = 5;
/** A tick later than this (ms) holds upload chunks until the next tick. */
export const LAG_LIMIT_MS = 5;

let timer: NodeJS.Timeout | undefined;
let due = 0;
let holding = false;
let held: (() => void)[] = [];

function tick(): void {
  const now = performance.now();
  const late = now - due;
  due = now + TICK_MS;
  if (holding) {
    release();
    return;
  }
  holding = late > LAG_LIMIT_MS;
}

function release(): void {
  holding = false;
  const go = held;
  held = [];
  for (const next of go) next();
}

onUploads({
  firstStarted() {
    due = performance.now() + TICK_MS;
    timer = setInterval(tick, TICK_MS);
    timer.unref();
  },
  lastEnded() {
    clearInterval(timer);
    timer = undefined;
    release();
  },
});

/** Whether upload chunks may go on now (false while they are held: the loop lagged). */
export function uploadMayGoNow(): boolean {
  return !holding;
}

/** Calls `go` now, or at the next tick while upload chunks are held (the loop lagged). */
export function whenUploadMayGo(go: () => void): void {
  if (holding) held.push(go);
  else go();
}
