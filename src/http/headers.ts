/**
 * Parsing and formatting of the headers the registry API uses: Range (blob reads), Content-Range
 * (upload chunks), the upload Range answer, and Link (pagination).
 */
import { rangeInvalid } from '../errors.js';
import type { ByteRange } from '../storage/registry.js';

/** Inclusive byte range: storage's, the one type for it. */
export type { ByteRange };

/**
 * A request's `Range: bytes=…` against a resource of `size` bytes: a single range, `'unsatisfiable'`
 * (416), or undefined when the header is absent or is not one byte range (the whole body is then sent,
 * which RFC 9110 allows).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  if (end < start) return undefined;
  return { start, end };
}

/**
 * An upload chunk's `Content-Range`: `<start>-<end>` as the distribution-spec writes it (also
 * accepted: `bytes <start>-<end>/<total or *>`). Undefined when absent.
 * @throws RegistryError RANGE_INVALID for anything else, or end < start
 */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined || header === '') return undefined;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) throw rangeInvalid(`malformed Content-Range ${JSON.stringify(header)}`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw rangeInvalid(`Content-Range ${JSON.stringify(header)} is not a range`);
  }
  return { start, end };
}

/** The `Range` header of an upload answer: `0-<last byte>`, and `0-0` for an empty upload (as registry:2). */
export function uploadRange(size: number): string {
  return `0-${Math.max(size - 1, 0)}`;
}

/** `Link: <url>; rel="next"` for the next page of a list. */
export function nextLink(path: string, params: Record<string, string>): string {
  return `<${path}?${new URLSearchParams(params).toString()}>; rel="next"`;
}
