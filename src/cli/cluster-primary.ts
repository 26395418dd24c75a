/**
 * `berth serve` with `http.workers: N` above 1: this process is the primary of a node:cluster. It forks N
 * workers (cli/cluster-worker.ts), each a whole Berth server acting as a replica on the same storage
 * with the coordination replicas use (`redis`, required at config load: the link gate, the tag lanes,
 * the quota locks, the collector's lock, the listing index and the notification queues are in Redis).
 * The workers share the API listener: the primary accepts each connection and hands it to the next
 * worker (node:cluster's round-robin), so one JavaScript thread no longer bounds the requests served.
 *
 * What the primary keeps so that N processes act as one server:
 * - one `http.secret`: when none is configured it makes one and gives it to every worker (an upload
 *   goes on whichever worker takes its next request); it is still per start, as for one process;
 * - the debug listener (`http.debug.addr`): `POST /debug/gc` runs on a worker (the leader, slot 1),
 *   `/metrics` is every worker's metrics added together (prom-client's aggregation: counters and
 *   histograms summed, `process_resident_memory_bytes` the workers' total, event-loop lag averaged) plus
 *   the primary's own `berth_cluster_*` gauges; `/debug/health` and the probes cover every worker;
 * - the schedule: only the leader worker runs the scheduled collector and upload purging; the index in
 *   Redis is rebuilt by whichever worker takes its lock first (once);
 * - the lifecycle: `listening` is logged once every worker is ready; a worker that dies is replaced
 *   (logged), and when workers die more than CRASH_LIMIT times within CRASH_WINDOW_MS the primary
 *   stops them all and exits 1; a worker that dies before every worker was ready stops start-up (exit 1);
 *   the first SIGTERM or SIGINT drains every worker (`http.draintimeout`) and exits 0 once they all
 *   exited 0; a second one stops them at once.
 * The issuer's generated key needs nothing here: it is kept in the storage, created once (cli/key-store.ts).
 *
 * This module loads no server code: the primary holds the config, the workers, and (when configured) the
 * debug listener.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { HealthState } from '../health/health.js';
import type { GcTrigger, MetricsSource } from '../http/debug.js';
import type { RunningServer } from '../http/listen.js';
import type { Logger } from '../log.js';
import { CommandError } from './command-error.js';
import { type GcOutcome, type MetricsJson, type ToPrimary, type ToWorker, WORKER_SLOT_ENV, isToPrimary } from './cluster-messages.js';

/** More worker deaths than this within CRASH_WINDOW_MS is a crash loop: the primary gives up. */
export const CRASH_LIMIT = 5;
export const CRASH_WINDOW_MS = 60_000;
/** How long a worker may take to answer `gc` (a collection can be long) and `metrics`. */
const GC_ANSWER_MS = 6 * 3_600_000;
const METRICS_ANSWER_MS = 5_000;
/** After the drain timeout, how long workers get to stop before they are killed. */
const STOP_GRACE_MS = 15_000;

interface Slot {
  worker: Worker;
  /** Its URL once it said it is ready. */
  url: string | undefined;
  failures: Readonly<Record<string, string>>;
}

/** A question to a worker waiting for its answer. */
interface Pending {
  readonly settle: (message: ToPrimary | Error) => void;
}

/** Forks the workers and serves until a signal stops them; resolves once every worker is ready. */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  const primary = new Primary(config, log);
  await primary.start();
}

class Primary {
  private readonly slots = new Map<number, Slot>();
  private readonly pending = new Map<number, Pending>();
  private readonly deaths: number[] = [];
  private readonly env: Record<string, string> = {};
  private nextId = 1;
  private restarts = 0;
  private started = false;
  private shutting: Promise<void> | undefined;
  private failedExit = false;
  private debug: RunningServer | undefined;
  private startFailed: ((err: Error) => void) | undefined;

  constructor(private readonly config: Config, private readonly log: Logger) {
    if (config.http.secret === undefined) {
      log.warn(`no http.secret configured: generated one for this server's ${config.http.workers} workers; uploads cannot move to another server or survive a restart`);
      this.env['REGISTRY_HTTP_SECRET'] = randomBytes(32).toString('hex');
    }
  }

  async start(): Promise<void> {
    cluster.on('message', (worker, message: unknown) => {
      if (isToPrimary(message)) this.heard(worker, message);
    });
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    const ready = new Promise<void>((resolve, reject) => {
      this.startFailed = reject;
      this.allReady = resolve;
    });
    for (let slot = 1; slot <= this.config.http.workers; slot++) this.fork(slot);
    try {
      await ready;
      this.debug = await this.listenDebug();
    } catch (err) {
      await this.stopAll('stop');
      throw err;
    }
    this.started = true;
    const urls = [...this.slots.values()].map((s) => s.url);
    this.log.info('listening', {
      addr: this.config.http.addr, url: urls[0], ...(this.debug && { debug: this.debug.url }), workers: this.config.http.workers,
      pids: [...this.slots.values()].map((s) => s.worker.process.pid), storage: this.config.storage.driver,
    });
    let signals = 0;
    const onSignal = (): void => {
      signals += 1;
      if (signals === 1) void this.shutdown(0);
      else this.broadcast({ berth: 'stop' });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }

  private allReady: () => void = () => undefined;

  private fork(slot: number): void {
    const worker = cluster.fork({ ...this.env, [WORKER_SLOT_ENV]: String(slot) });
    this.slots.set(slot, { worker, url: undefined, failures: {} });
  }

  private slotOf(worker: Worker): [number, Slot] | undefined {
    for (const entry of this.slots) if (entry[1].worker === worker) return entry;
    return undefined;
  }

  private heard(worker: Worker, message: ToPrimary): void {
    const found = this.slotOf(worker);
    switch (message.berth) {
      case 'ready': {
        if (!found) return;
        const [slot, s] = found;
        s.url = message.url;
        if (this.started) this.log.info('worker replaced', { worker: slot, pid: worker.process.pid });
        else if ([...this.slots.values()].every((x) => x.url !== undefined)) this.allReady();
        return;
      }
      case 'health':
        if (found) found[1].failures = message.failures;
        return;
      case 'gc-done':
      case 'metrics-done': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        pending?.settle(message);
        return;
      }
    }
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const found = this.slotOf(worker);
    if (!found) return;
    const [slot] = found;
    const how = { worker: slot, pid: worker.process.pid, code, signal };
    if (this.shutting) {
      if (code !== 0) this.failedExit = true;
      this.log.info('worker stopped', how);
      return;
    }
    if (!this.started) {
      this.startFailed?.(new CommandError(`worker ${slot} exited during start-up (code ${String(code)}${signal ? `, ${signal}` : ''}); see its log above`));
      return;
    }
    const now = Date.now();
    this.deaths.push(now);
    while ((this.deaths[0] ?? now) < now - CRASH_WINDOW_MS) this.deaths.shift();
    if (this.deaths.length > CRASH_LIMIT) {
      this.log.error(`workers exited ${this.deaths.length} times within ${CRASH_WINDOW_MS / 1000} s: giving up`, how);
      void this.shutdown(1);
      return;
    }
    this.restarts += 1;
    this.log.warn('worker exited: starting a new one', how);
    this.fork(slot);
  }

  /** Drains every worker, waits for them (killing the ones that outlast the drain), exits. */
  private shutdown(code: number): Promise<void> {
    this.shutting ??= (async () => {
      this.log.info('shutting down', { workers: this.slots.size, drainTimeoutMs: this.config.http.draintimeoutMs });
      await this.stopAll('drain');
      await this.debug?.close();
      const exitCode = code !== 0 || this.failedExit ? 1 : 0;
      this.log.info('stopped', { exitCode });
      process.exit(exitCode);
    })();
    return this.shutting;
  }

  /** Asks every worker to drain (or stop) and resolves once all have exited; kills those past the drain time. */
  private async stopAll(how: 'drain' | 'stop'): Promise<void> {
    const alive = [...this.slots.values()].map((s) => s.worker).filter((w) => !w.isDead());
    const gone = Promise.all(alive.map((w) => new Promise<void>((resolve) => {
      if (w.isDead()) resolve();
      else w.once('exit', () => resolve());
    })));
    // A worker not ready yet has no handler for the message: a signal stops it (its default action
    // before it serves; a drain once its own handler is there).
    for (const s of this.slots.values()) {
      if (s.worker.isDead()) continue;
      if (s.url === undefined) s.worker.process.kill('SIGTERM');
      else if (s.worker.isConnected()) s.worker.send({ berth: how } satisfies ToWorker);
    }
    const limit = (how === 'drain' ? this.config.http.draintimeoutMs : 0) + STOP_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), limit);
    });
    if ((await Promise.race([gone, late])) === 'late') {
      for (const w of alive.filter((x) => !x.isDead())) {
        this.log.error('worker did not stop in time: killing it', { pid: w.process.pid });
        this.failedExit = true;
        w.process.kill('SIGKILL');
      }
      await gone;
    }
    clearTimeout(timer);
  }

  private broadcast(message: ToWorker): void {
    for (const s of this.slots.values()) if (s.worker.isConnected()) s.worker.send(message);
  }

  /** Sends `message` (with a fresh id) to `worker` and resolves with its answer, or an Error after `ms`. */
  private ask(worker: Worker, make: (id: number) => ToWorker, ms: number): Promise<ToPrimary | Error> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(new Error(`worker ${String(worker.process.pid)} did not answer within ${ms} ms`));
      }, ms);
      this.pending.set(id, { settle: (m) => { clearTimeout(timer); resolve(m); } });
      worker.send(make(id));
    });
  }

  /** Workers that are ready and reachable, the leader first. */
  private serving(): [number, Worker][] {
    return [...this.slots].filter(([, s]) => s.url !== undefined && s.worker.isConnected()).sort(([a], [b]) => a - b).map(([slot, s]) => [slot, s.worker]);
  }

  private readonly runGc: GcTrigger = async (o = {}) => {
    const leader = this.serving()[0];
    if (leader === undefined) throw new Error('no worker is serving');
    const answer = await this.ask(leader[1], (id) => ({ berth: 'gc', id, dryRun: o.dryRun === true }), GC_ANSWER_MS);
    if (answer instanceof Error) throw answer;
    if (answer.berth !== 'gc-done') throw new Error(`unexpected answer ${answer.berth}`);
    if (answer.outcome === undefined) throw new Error(answer.error ?? 'the collection failed');
    return answer.outcome satisfies GcOutcome;
  };

  /** The debug listener's health: every worker's failing checks; draining once the shutdown began. */
  private readonly health: HealthState = (() => {
    const self = this;
    return {
      failures: () => Object.assign({}, ...[...self.slots.values()].map((s) => s.failures)) as Record<string, string>,
      get draining() {
        return self.shutting !== undefined;
      },
      get starting() {
        return !self.started;
      },
    };
  })();

  /** Every worker's metrics added together, with the primary's own gauges (metrics/cluster.ts). */
  private async metricsSource(): Promise<MetricsSource> {
    const { createClusterMetrics } = await import('../metrics/cluster.js');
    const cluster = createClusterMetrics();
    return {
      contentType: cluster.contentType,
      metrics: async () => {
        const serving = this.serving();
        const answers = await Promise.all(serving.map(([, w]) => this.ask(w, (id) => ({ berth: 'metrics', id }), METRICS_ANSWER_MS)));
        const workers: MetricsJson[] = [];
        for (const a of answers) {
          if (a instanceof Error) this.log.warn('metrics: a worker did not answer; its figures are left out of this scrape', { err: a.message });
          else if (a.berth === 'metrics-done') workers.push(a.metrics);
        }
        return cluster.expose(workers, { ready: serving.length, restarts: this.restarts });
      },
    };
  }

  private async listenDebug(): Promise<RunningServer | undefined> {
    const debug = this.config.http.debug;
    if (debug.addr === undefined) return undefined;
    const [{ createDebugApp }, { listen }, { parseAddr }] = await Promise.all([
      import('../http/debug.js'), import('../http/listen.js'), import('./serve-addr.js'),
    ]);
    const metrics = debug.prometheus.enabled ? await this.metricsSource() : undefined;
    const app = createDebugApp({ runGc: this.runGc, log: this.log, health: this.health, metricsPath: debug.prometheus.path, ...(metrics && { metrics }) });
    const { host, port } = parseAddr(debug.addr);
    const running = await listen(app, host, port);
    this.log.info('debug listener', { addr: debug.addr, url: running.url });
    return running;
  }
}
