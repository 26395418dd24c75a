/**
 * Registry errors: the codes of the OCI distribution-spec (plus registry:2's extras) and the one error
 * class every layer throws. HTTP status and wire format are decided in one place only,
 * `http/error-response.ts`. This module imports nothing internal.
 */

/**
 * Every error code Berth can answer with: the distribution-spec's (BLOB_UNKNOWN … TOOMANYREQUESTS) and
 * registry:2's additions (TAG_INVALID, RANGE_INVALID, PAGINATION_NUMBER_INVALID, UNAVAILABLE, UNKNOWN).
 * No code of Berth's own: a client written against either must understand every answer.
 */
export type OciCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNAVAILABLE'
  | 'UNKNOWN';

/** A failure the client can be told about. `detail` is sent to the client: never put secrets in it. */
export class RegistryError extends Error {
  constructor(
    readonly code: OciCode,
    message?: string,
    readonly detail?: unknown,
    options?: ErrorOptions,
  ) {
    super(message ?? code, options);
    this.name = 'RegistryError';
  }
}

/** True when `err` is a RegistryError, optionally of the given code. */
export function isRegistryError(err: unknown, code?: OciCode): err is RegistryError {
  return err instanceof RegistryError && (code === undefined || err.code === code);
}

export const blobUnknown = (digest: string): RegistryError =>
  new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });

export const blobUploadUnknown = (id: string): RegistryError =>
  new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id });

export const blobUploadInvalid = (reason: string): RegistryError =>
  new RegistryError('BLOB_UPLOAD_INVALID', `blob upload invalid: ${reason}`);

export const digestInvalid = (reason: string, detail?: unknown): RegistryError =>
  new RegistryError('DIGEST_INVALID', `digest invalid: ${reason}`, detail);

export const manifestBlobUnknown = (digest: string): RegistryError =>
  new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references a blob or manifest unknown to this repository', {
    digest,
  });

export const manifestInvalid = (reason: string): RegistryError =>
  new RegistryError('MANIFEST_INVALID', `manifest invalid: ${reason}`);

export const manifestUnknown = (reference: string): RegistryError =>
  new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { reference });

export const nameInvalid = (reason: string): RegistryError =>
  new RegistryError('NAME_INVALID', `invalid repository name: ${reason}`);

export const nameUnknown = (name: string): RegistryError =>
  new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { name });

export const tagInvalid = (tag: string): RegistryError =>
  new RegistryError('TAG_INVALID', 'invalid tag', { tag });

export const sizeInvalid = (reason: string): RegistryError =>
  new RegistryError('SIZE_INVALID', `provided length did not match content length: ${reason}`);

export const rangeInvalid = (reason: string): RegistryError =>
  new RegistryError('RANGE_INVALID', `invalid content range: ${reason}`);

export const unsupported = (what: string): RegistryError =>
  new RegistryError('UNSUPPORTED', `the operation is unsupported: ${what}`);

/** The service cannot do this now (503): e.g. the index a figure comes from is rebuilding. */
export const unavailable = (what: string, detail?: unknown): RegistryError => new RegistryError('UNAVAILABLE', what, detail);

/** Refused by policy (403): a quota, an immutable tag. `message` names the rule and the figures. */
export const denied = (message: string, detail?: unknown): RegistryError => new RegistryError('DENIED', message, detail);

export const paginationInvalid = (reason: string): RegistryError =>
  new RegistryError('PAGINATION_NUMBER_INVALID', `invalid number of results requested: ${reason}`);

/**
 * A body over a size limit: answered 413 with the spec's code for what was refused, MANIFEST_INVALID for
 * a manifest, SIZE_INVALID for anything else (neither spec nor registry:2 has a code of its own for it).
 */
export class TooLargeError extends RegistryError {
  constructor(
    readonly limit: number,
    code: 'MANIFEST_INVALID' | 'SIZE_INVALID',
  ) {
    super(code, `payload exceeds the limit of ${limit} bytes`, { limit });
    this.name = 'TooLargeError';
  }
}

/** A body over `limit` bytes; `code` says what it was (default SIZE_INVALID). */
export const tooLarge = (limit: number, code: 'MANIFEST_INVALID' | 'SIZE_INVALID' = 'SIZE_INVALID'): TooLargeError =>
  new TooLargeError(limit, code);

/** True when `err` refused a body (or stored object) for its size. */
export const isTooLarge = (err: unknown): err is TooLargeError => err instanceof TooLargeError;

/**
 * The storage has no room left (ENOSPC, EDQUOT) for what a write needed. Neither the spec nor registry:2
 * has a code for it; UNAVAILABLE is registry:2's code for "the service cannot do this now", and it is
 * answered with 507 Insufficient Storage (RFC 4918 §11.5), which says exactly why, so a client or proxy
 * does not take it for a passing 503 and retry at once, nor for a bug (500). `where` (the storage path)
 * is for the log only, never sent.
 */
export class StorageFullError extends RegistryError {
  constructor(
    readonly where: string,
    options?: ErrorOptions,
  ) {
    super('UNAVAILABLE', 'the registry storage is full: no space left for this upload');
    this.name = 'StorageFullError';
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** Error codes of a storage without room left. */
const NO_SPACE_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/**
 * `err` as a StorageFullError when it, or an error in its `cause` chain, is an out-of-space error;
 * undefined otherwise.
 */
export function asStorageFull(err: unknown): StorageFullError | undefined {
  if (err instanceof StorageFullError) return err;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = 'code' in e ? e.code : undefined;
    if (typeof code === 'string' && NO_SPACE_CODES.has(code)) {
      return new StorageFullError(err instanceof Error ? err.message : String(err), { cause: err });
    }
  }
  return undefined;
}

/**
 * A path that is no endpoint: answered 404 with the code that fits what the path looks like
 * (NAME_INVALID, DIGEST_INVALID, BLOB_UNKNOWN…), whatever that code's usual status.
 */
export class NoRouteError extends RegistryError {
  constructor(code: OciCode, message: string, detail?: unknown) {
    super(code, message, detail);
    this.name = 'NoRouteError';
  }
}

/**
 * 401 with a challenge for the WWW-Authenticate header (`Bearer realm="…",service="…",scope="…"` or
 * `Basic realm="…"`), as registry:2 sends it. The message never says why a credential failed beyond
 * what the challenge's `error` parameter says.
 */
export class UnauthorizedError extends RegistryError {
  constructor(
    readonly challenge: string,
    message = 'authentication required',
    detail?: unknown,
  ) {
    super('UNAUTHORIZED', message, detail);
    this.name = 'UnauthorizedError';
  }
}
