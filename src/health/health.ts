/**
 * Health: periodic checks (registry:2's `health.storagedriver`, a threshold checker) and the draining
 * flag of a graceful shutdown, read by the HTTP layer for `/debug/health`, the Kubernetes probes and the
 * 503 that every API request gets while a check fails.
 *
 * A check runs at start and then every `intervalMs` (never two at once); it counts as failing once it has
 * failed `threshold` times in a row, and recovers at its first success. Checks are injected (cli/ builds
 * the storage check), so this module knows nothing of storage.
 */
import type { Logger } from '../log.js';

export interface HealthCheck {
  /** Reported as the key of `/debug/health`, e.g. `storagedriver_filesystem`. */
  readonly name: string;
  readonly intervalMs: number;
  readonly threshold: number;
  /** Resolves when healthy; rejects (with a message worth showing an operator) when not. */
  run(signal: AbortSignal): Promise<void>;
}

/** What the HTTP layer reads. */
export interface HealthState {
  /** Failing checks by name, with the last error of each; empty when healthy. */
  failures(): Readonly<Record<string, string>>;
  /** True once a graceful shutdown has begun: readiness fails, requests in flight finish. */
  readonly draining: boolean;
  /** True until start-up is over (every listener bound): readiness fails meanwhile. */
  readonly starting: boolean;
}

export interface Health extends HealthState {
  /** Marks the start of a graceful shutdown. */
  drain(): void;
  /** Marks the end of start-up: from now on readiness follows the checks. */
  started(): void;
  /** Stops the timers and aborts a check in flight. */
  stop(): void;
}

/** Starts every check (the first run happens now) and answers the live state. */
export function startHealth(checks: readonly HealthCheck[], log: Logger): Health {
  const failing = new Map<string, string>();
  const stops = checks.map((check) => schedule(check, failing, log));
  let draining = false;
  let starting = true;
  return {
    failures: () => Object.fromEntries(failing),
    get draining() {
      return draining;
    },
    get starting() {
      return starting;
    },
    drain() {
      draining = true;
    },
    started() {
      starting = false;
    },
    stop() {
      for (const stop of stops) stop();
    },
  };
}

function schedule(check: HealthCheck, failing: Map<string, string>, log: Logger): () => void {
  let consecutive = 0;
  let running: AbortController | undefined;
  const runOnce = async (): Promise<void> => {
    if (running) return;
    running = new AbortController();
    // A check that hangs (a storage mount gone away) fails at the next tick instead of never answering.
    const timeout = setTimeout(() => running?.abort(new Error(`no answer within ${check.intervalMs} ms`)), check.intervalMs);
    try {
      await check.run(running.signal);
      consecutive = 0;
      if (failing.delete(check.name)) log.info('health check passes again', { check: check.name });
    } catch (err) {
      consecutive += 1;
      const message = err instanceof Error ? err.message : String(err);
      if (consecutive >= check.threshold) {
        if (!failing.has(check.name)) log.error('health check failing: answering 503', { check: check.name, err: message, failures: consecutive });
        failing.set(check.name, message);
      }
    } finally {
      clearTimeout(timeout);
      running = undefined;
    }
  };
  void runOnce();
  const every = setInterval(() => void runOnce(), check.intervalMs);
  every.unref();
  return () => {
    clearInterval(every);
    running?.abort(new Error('stopped'));
  };
}
