/**
 * The only place an error becomes an HTTP answer: status from one exhaustive table, body
 * `{"errors":[{"code","message","detail"}]}` as the distribution-spec and registry:2 write it.
 * Anything that is not a RegistryError is a bug: it is logged with its stack and answered as a bare
 * 500 UNKNOWN, never echoed.
 */
import type { Context } from 'koa';
import { NoRouteError, type OciCode, RegistryError, StorageFullError, TooLargeError, UnauthorizedError } from '../errors.js';

export const ERROR_STATUS: Readonly<Record<OciCode, number>> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

/**
 * The status of `err`: 413 for a refused size, 404 for a path that is no endpoint, 507 for a full storage
 * (see StorageFullError), else its code's.
 */
function statusOf(err: RegistryError): number {
  if (err instanceof TooLargeError) return 413;
  if (err instanceof StorageFullError) return 507;
  if (err instanceof NoRouteError) return 404;
  return ERROR_STATUS[err.code];
}

export interface ErrorBody {
  errors: { code: OciCode; message: string; detail?: unknown }[];
}

/** The status and body for `err`; `report` is called for errors that are bugs (not RegistryErrors). */
export function errorResponse(err: unknown, report: (err: unknown) => void): { status: number; body: ErrorBody } {
  if (err instanceof RegistryError) {
    const entry: ErrorBody['errors'][number] = { code: err.code, message: err.message };
    if (err.detail !== undefined) entry.detail = err.detail;
    return { status: statusOf(err), body: { errors: [entry] } };
  }
  report(err);
  return { status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'unknown error' }] } };
}

/** Writes the error to the response, unless headers have gone already: then the socket is cut. */
export function sendError(ctx: Context, err: unknown, report: (err: unknown) => void): void {
  if (ctx.headerSent) {
    report(err);
    ctx.res.destroy(); // the socket with it (ctx.req.socket may already be gone)
    return;
  }
  const { status, body } = errorResponse(err, report);
  if (err instanceof UnauthorizedError) ctx.set('WWW-Authenticate', err.challenge);
  ctx.status = status;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = body;
}
