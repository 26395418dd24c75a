/**
 * `berth serve [config.yml]` as a process: loads the config and serves, as one process (`http.workers`
 * 1, the default) or as the primary of several (cli/cluster-primary.ts); a process forked by such a
 * primary serves as its worker (cli/cluster-worker.ts). The primary loads none of the server's modules.
 *
 * One process: the first SIGTERM or SIGINT drains (`http.draintimeout`), a second one cuts what is
 * left; the process exits 0 once stopped, 1 when stopping failed.
 */
import cluster from 'node:cluster';
import { loadConfig } from '../config/parse.js';
import { WORKER_SLOT_ENV } from './cluster-messages.js';
import { loggerFor } from './setup.js';

/** Starts serving; resolves once the server (or every worker) listens. It runs until a signal stops it. */
export async function serveCommand(file: string | undefined, env: Record<string, string | undefined>): Promise<void> {
  const slot = env[WORKER_SLOT_ENV];
  if (cluster.isWorker && slot !== undefined) {
    await (await import('./cluster-worker.js')).runWorker(file, env, Number(slot));
    return;
  }
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  const log = loggerFor(config, undefined, true);
  for (const w of warnings) log.warn(w);
  if (config.http.workers > 1) {
    await (await import('./cluster-primary.js')).runPrimary(config, log);
    return;
  }
  const serving = await (await import('./serve.js')).serveLoaded(config, log);
  let signals = 0;
  const onSignal = (): void => {
    signals += 1;
    const stopped = signals === 1 ? serving.shutdown() : serving.stop();
    void stopped.then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`berth: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
