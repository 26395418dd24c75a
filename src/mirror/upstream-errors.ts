/**
 * What an upstream's failure means to the mirror's client: the spec's codes for a failure that reaches
 * the client, and whether a cached copy may be served instead (the upstream down, slow, 429 or 5xx).
 */
import { type OciCode, RegistryError } from '../errors.js';
import { UpstreamError } from './upstream.js';

/** True when a cached copy should be served (with a warning) rather than the failure. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof UpstreamError)) return false;
  if (err.kind === 'unreachable' || err.kind === 'timeout') return true;
  return err.kind === 'status' && err.status !== undefined && (err.status === 429 || err.status >= 500);
}

/** True when the upstream answered 404 (it has no such thing). */
export function isNotFound(err: unknown): boolean {
  return err instanceof UpstreamError && err.kind === 'status' && err.status === 404;
}

/**
 * The failure as a RegistryError: `unknown` for a 404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN),
 * TOOMANYREQUESTS for 429, DENIED when the upstream refuses the mirror's credentials, UNAVAILABLE for an
 * upstream that is down, slow or failing, or sends what cannot be used. Anything else passes through.
 */
export function toRegistryError(err: unknown, unknown: RegistryError): unknown {
  if (!(err instanceof UpstreamError)) return err;
  if (err.kind === 'status' && err.status === 404) return unknown;
  const code: OciCode = err.kind !== 'status' ? 'UNAVAILABLE'
    : err.status === 429 ? 'TOOMANYREQUESTS'
    : err.status === 401 || err.status === 403 ? 'DENIED'
    : 'UNAVAILABLE';
  return new RegistryError(code, `upstream: ${err.message}`, { upstreamStatus: err.status ?? null }, { cause: err });
}

/** `110` (response is stale) as a Warning header value (RFC 7234 §5.5). */
export function staleWarning(upstream: string, err: unknown): string {
  const why = err instanceof Error ? err.message : String(err);
  return `110 berth "Response is Stale: upstream ${upstream} failed: ${why.replace(/["\\\r\n]/g, ' ').slice(0, 200)}"`;
}
