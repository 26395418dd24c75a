/**
 * Metrics of the traffic Berth serves: HTTP requests (registry:2's `registry_http_*` families, so its
 * dashboards keep working, with method and status labels added), storage driver calls
 * (`registry_storage_action_seconds`, as registry:2 names it) and upload sessions.
 *
 *   registry_http_requests_total{handler,method,code}               requests finished (code 499: client went away)
 *   registry_http_request_duration_seconds{handler,method,code}     from arrival to the end of the response
 *   registry_http_in_flight_requests{handler}                       requests not finished yet
 *   registry_http_request_size_bytes{handler}                       bytes read per request (headers included)
 *   registry_http_response_size_bytes{handler}                      bytes written per request (headers included)
 *   registry_storage_action_seconds{driver,action}                  every driver call
 *   berth_storage_errors_total{driver,action,code}                  driver calls that failed, by DriverError code
 *   berth_uploads_in_progress                                       blob data requests streaming now
 *   berth_upload_sessions_total{event="started|completed|cancelled"}
 *
 * The HTTP layer and the driver wrapper call in through their own seams (RequestObserver,
 * DriverCallObserver); this module only counts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RequestObserver, RequestSample } from '../http/middleware/observe.js';
import type { DriverCallObserver } from '../storage/driver/instrument.js';
import { BoundHistogram } from './bound-histogram.js';

/** Request durations: a manifest HEAD takes a millisecond, a large blob upload minutes. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Request and response sizes, from a HEAD to a multi-gigabyte layer: 256 B × 4ⁿ. */
const SIZE_BUCKETS = Array.from({ length: 13 }, (_, n) => 256 * 4 ** n);
const STORAGE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30];

/** The routes that carry blob data (monolithic POST, PATCH chunks, final PUT). */
const UPLOAD_DATA_ROUTES: ReadonlySet<string> = new Set(['blob-upload-start', 'blob-upload']);

export interface TrafficMetrics {
  readonly requests: RequestObserver;
  readonly storage: DriverCallObserver;
}

export function createTrafficMetrics(registry: Registry): TrafficMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: 'registry_http_requests_total', help: 'HTTP requests finished, by handler, method and status code.',
    labelNames: ['handler', 'method', 'code'] as const, registers,
  });
  const duration = new BoundHistogram({
    name: 'registry_http_request_duration_seconds', help: 'Time from the arrival of a request to the end of its response.',
    labelNames: ['handler', 'method', 'code'] as const, buckets: DURATION_BUCKETS, registers,
  });
  const inFlight = new Gauge({
    name: 'registry_http_in_flight_requests', help: 'Requests whose responses are not finished yet.', labelNames: ['handler'] as const, registers,
  });
  const requestSize = new BoundHistogram({
    name: 'registry_http_request_size_bytes', help: 'Bytes read from the connection per request, headers included.',
    labelNames: ['handler'] as const, buckets: SIZE_BUCKETS, registers,
  });
  const responseSize = new BoundHistogram({
    name: 'registry_http_response_size_bytes', help: 'Bytes written to the connection per request, headers included.',
    labelNames: ['handler'] as const, buckets: SIZE_BUCKETS, registers,
  });
  const storageSeconds = new BoundHistogram({
    name: 'registry_storage_action_seconds', help: 'Storage driver calls, by driver and action.',
    labelNames: ['driver', 'action'] as const, buckets: STORAGE_BUCKETS, registers,
  });
  const storageErrors = new Counter({
    name: 'berth_storage_errors_total', help: 'Storage driver calls that failed, by driver, action and error code.',
    labelNames: ['driver', 'action', 'code'] as const, registers,
  });
  const uploadsInProgress = new Gauge({ name: 'berth_uploads_in_progress', help: 'Blob upload requests streaming data now.', registers });
  const sessions = new Counter({
    name: 'berth_upload_sessions_total', help: 'Blob upload sessions started, completed and cancelled.', labelNames: ['event'] as const, registers,
  });
  for (const event of ['started', 'completed', 'cancelled']) sessions.inc({ event }, 0);

  const countSession = (s: RequestSample): void => {
    if (s.route === 'blob-upload-start' && s.method === 'POST') {
      // 202: a session began; 201: a monolithic upload or a mount finished at once.
      if (s.status === 202) sessions.inc({ event: 'started' });
      else if (s.status === 201) sessions.inc({ event: 'completed' });
    } else if (s.route === 'blob-upload') {
      if (s.method === 'PUT' && s.status === 201) sessions.inc({ event: 'completed' });
      else if (s.method === 'DELETE' && s.status === 204) sessions.inc({ event: 'cancelled' });
    }
  };

  return {
    requests: {
      start({ method, route }) {
        inFlight.inc({ handler: route });
        const carriesData = UPLOAD_DATA_ROUTES.has(route) && (method === 'POST' || method === 'PATCH' || method === 'PUT');
        if (carriesData) uploadsInProgress.inc();
        return (s) => {
          inFlight.dec({ handler: route });
          if (carriesData) uploadsInProgress.dec();
          const code = String(s.status);
          requests.inc({ handler: s.route, method: s.method, code });
          duration.series(s.route, s.method, code).observe(s.seconds);
          requestSize.series(s.route).observe(s.bytesIn);
          responseSize.series(s.route).observe(s.bytesOut);
          countSession(s);
        };
      },
    },
    storage: (call) => {
      storageSeconds.series(call.driver, call.op).observe(call.seconds);
      if (call.outcome !== 'ok' && call.outcome !== 'aborted' && call.outcome !== 'PATH_NOT_FOUND') {
        storageErrors.inc({ driver: call.driver, action: call.op, code: call.outcome });
      }
    },
  };
}
