/**
 * One of `http.workers` processes (forked by cli/cluster-primary.ts): a whole Berth server, a replica on
 * the same storage coordinating through Redis like any other, whose listener is shared through
 * node:cluster (the primary accepts connections and hands them round-robin to the workers).
 *
 * It answers the primary's messages (cluster-messages.ts): drain or stop, run a collection, give its
 * metrics; tells it when it is ready and when its health checks change. A SIGTERM sent to the worker
 * alone drains it and exits 0 (the primary then starts a replacement); SIGINT is left to the primary, which
 * a terminal's Ctrl-C reaches too and which drains every worker. A worker whose primary is gone exits
 * (node:cluster does that when the IPC channel closes).
 */
import { type ToPrimary, type ToWorker, isToWorker } from './cluster-messages.js';
import { type Serving, serve } from './serve.js';

/** How often a worker looks whether its failing health checks changed. */
const HEALTH_POLL_MS = 500;

/** Starts the worker in `slot`; resolves once it serves (it runs until the primary stops it). */
export async function runWorker(file: string | undefined, env: Record<string, string | undefined>, slot: number): Promise<void> {
  const serving = await serve(file, env, { worker: { slot, leader: slot === 1 } });
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send?.(message);
  };
  let stopping: Promise<void> | undefined;
  const stop = (how: 'drain' | 'stop'): void => {
    const stopped = how === 'drain' ? (stopping ??= serving.shutdown()) : serving.stop();
    void stopped.then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`berth worker ${slot}: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('message', (message: unknown) => {
    if (isToWorker(message)) answer(message, serving, send, stop);
  });
  process.on('SIGTERM', () => stop('drain'));
  process.on('SIGINT', () => undefined);
  reportHealth(serving, send);
  send({ berth: 'ready', url: serving.running.url });
}

function answer(message: ToWorker, serving: Serving, send: (m: ToPrimary) => void, stop: (how: 'drain' | 'stop') => void): void {
  switch (message.berth) {
    case 'drain':
    case 'stop':
      stop(message.berth);
      return;
    case 'gc':
      serving.runGc({ dryRun: message.dryRun }).then(
        (outcome) => send({ berth: 'gc-done', id: message.id, outcome }),
        (err: unknown) => send({ berth: 'gc-done', id: message.id, error: err instanceof Error ? err.message : String(err) }),
      );
      return;
    case 'metrics':
      serving.metrics.getMetricsAsJSON().then(
        (metrics) => send({ berth: 'metrics-done', id: message.id, metrics }),
        () => send({ berth: 'metrics-done', id: message.id, metrics: [] }),
      );
      return;
  }
}

/** Sends the failing checks now and whenever they change, until the process ends. */
function reportHealth(serving: Serving, send: (m: ToPrimary) => void): void {
  let last = '';
  const look = (): void => {
    const failures = serving.health.failures();
    const now = JSON.stringify(failures);
    if (now === last) return;
    last = now;
    send({ berth: 'health', failures });
  };
  look();
  setInterval(look, HEALTH_POLL_MS).unref();
}
