/**
 * Delivery to one endpoint, as registry:2 does it (notifications/http.go, sinks.go): events go out one
 * per request, in queue order, as `POST <url>` with the envelope `{"events":[event]}`, Content-Type
 * `application/vnd.docker.distribution.events.v1+json` and the configured headers; any 2xx or 3xx
 * answer (after redirects) delivers the event; anything else, an error or the timeout fails the
 * attempt and the same event is tried again. registry:2's circuit breaker decides when: after
 * `threshold` consecutive failures it waits `backoff` after the last failure before each new attempt;
 * below the threshold it tries again at once.
 *
 * Unlike registry:2, an event leaves the queue only once delivered (registry:2 drops it when its
 * queue is closed), and stopping waits for the attempt in flight instead of losing it.
 */
import type { Logger } from '../log.js';
import { EVENTS_MEDIA_TYPE, envelopeBody } from './event.js';
import type { EventQueue } from './queue.js';

/** One endpoint's settings (registry:2's Endpoint, defaults applied). */
export interface EndpointOptions {
  /** Names the endpoint in logs and metrics, and its queue on disk. */
  readonly name: string;
  /** Where events are POSTed: an absolute http(s) URL. */
  readonly url: string;
  /** Static headers added to every request: name → values. */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** How long one POST may take. */
  readonly timeoutMs: number;
  /** Consecutive failures after which delivery backs off. */
  readonly threshold: number;
  /** How long delivery waits, once `threshold` failures in a row happened, before trying again. */
  readonly backoffMs: number;
  /** Target media types whose events this endpoint does not get. */
  readonly ignoredMediaTypes: readonly string[];
  /** Actions whose events this endpoint does not get. */
  readonly ignoredActions: readonly string[];
}

/** Whether the endpoint ignores an event with this action and target media type (registry:2's ignoredSink). */
export function ignores(o: EndpointOptions, event: { readonly action: string; readonly target: { readonly mediaType?: string } }): boolean {
  const mediaType = event.target.mediaType;
  return o.ignoredActions.includes(event.action) || (mediaType !== undefined && o.ignoredMediaTypes.includes(mediaType));
}

/** Told what each attempt did. */
export interface DeliveryObserver {
  delivered(): void;
  failed(): void;
}

export interface Delivery {
  /** Stops after the attempt in flight, if any; the event stays queued unless that attempt delivered it. */
  stop(): Promise<void>;
}

/** How often a failing endpoint is logged at warn level (every failure is logged at debug). */
const FAILURE_LOG_INTERVAL_MS = 60_000;

/** Starts delivering `queue` to the endpoint. */
export function startDelivery(o: {
  readonly endpoint: EndpointOptions;
  readonly queue: EventQueue;
  readonly log: Logger;
  readonly observer: DeliveryObserver;
}): Delivery {
  const stopping = new AbortController();
  const loop = deliverLoop(o, stopping.signal).catch((err: unknown) => {
    o.log.error('notification delivery stopped by an unexpected error; queued events stay queued', { err });
  });
  return {
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}

async function deliverLoop(
  o: { readonly endpoint: EndpointOptions; readonly queue: EventQueue; readonly log: Logger; readonly observer: DeliveryObserver },
  signal: AbortSignal,
): Promise<void> {
  const { endpoint, queue, log } = o;
  const breaker = { failures: 0, lastFailure: 0, lastWarned: 0 };
  for (;;) {
    const item = await queue.next(signal);
    if (item === undefined) return;
    let body: string;
    try {
      body = envelopeBody([JSON.parse(item.line)]);
    } catch (err) {
      log.warn('notification queue holds an unreadable event; skipped', { err });
      queue.ack(item);
      continue;
    }
    for (;;) {
      if (signal.aborted) return;
      const wait = breaker.failures >= endpoint.threshold ? breaker.lastFailure + endpoint.backoffMs - Date.now() : 0;
      if (wait > 0) {
        await sleep(wait, signal);
        continue;
      }
      const outcome = await post(endpoint, body);
      if (outcome === undefined) {
        if (breaker.failures > 0) log.info('notification endpoint accepts events again', { failedAttempts: breaker.failures });
        breaker.failures = 0;
        queue.ack(item);
        o.observer.delivered();
        break;
      }
      breaker.failures += 1;
      breaker.lastFailure = Date.now();
      o.observer.failed();
      const fields = { error: outcome, failedAttempts: breaker.failures, pending: queue.pending };
      if (breaker.failures === 1 || breaker.lastFailure - breaker.lastWarned >= FAILURE_LOG_INTERVAL_MS) {
        breaker.lastWarned = breaker.lastFailure;
        log.warn('notification endpoint failed; the event stays queued and is retried', fields);
      } else {
        log.debug('notification attempt failed', fields);
      }
    }
  }
}

/** One attempt: undefined when delivered, else why not. */
async function post(endpoint: EndpointOptions, body: string): Promise<string | undefined> {
  const headers = new Headers({ 'Content-Type': EVENTS_MEDIA_TYPE });
  for (const [name, values] of Object.entries(endpoint.headers)) for (const value of values) headers.append(name, value);
  try {
    const res = await fetch(endpoint.url, {
      method: 'POST',
      headers,
      body,
      redirect: 'follow',
      signal: AbortSignal.timeout(endpoint.timeoutMs),
    });
    await res.body?.cancel().catch(() => undefined);
    return res.status >= 200 && res.status < 400 ? undefined : `HTTP ${res.status} ${res.statusText}`.trim();
  } catch (err) {
    return describeError(err);
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'timed out';
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref(); // a backing-off endpoint never keeps the process alive on its own
    signal.addEventListener('abort', done, { once: true });
  });
}
