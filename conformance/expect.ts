/**
 * Assertions for check bodies. Each throws a CheckFailure whose two halves read as `<expected> vs
 * <actual>` on a FAIL line, with the actual answer summarised: status, error codes or the start of the
 * body, so a failure says what the registry did without a debugger.
 *
 * Error bodies follow the spec's "Error Codes": a 4XX body in JSON MUST be
 * `{"errors":[{"code","message","detail"}, …]}`, `code` only uppercase letters and underscores,
 * `message` optional (a string). The suite expects JSON error bodies where it expects an error code.
 */
import { CheckFailure } from './check.js';
import type { Response } from './client.js';
import { digestOf } from './content.js';

const SNIPPET = 100;

/** Throws a CheckFailure. */
export function fail(expected: string, actual: string): never {
  throw new CheckFailure(expected, actual);
}

/** The error codes of a spec-shaped error body, or undefined when the body is not one. */
export function errorCodes(res: Response): string[] | undefined {
  try {
    const doc = JSON.parse(res.body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return undefined;
    return doc.errors.map((e: unknown) => (typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '?'));
  } catch {
    return undefined;
  }
}

/** A short account of an answer for a FAIL line: status, then error codes or the start of the body. */
export function summarize(res: Response): string {
  if (res.body.length === 0) return `${res.status} (no body)`;
  const codes = errorCodes(res);
  if (codes !== undefined) return `${res.status} ${codes.join(',')}`;
  const text = res.body.toString('utf8');
  return `${res.status} ${JSON.stringify(text.length > SNIPPET ? `${text.slice(0, SNIPPET)}…` : text)}`;
}

/** The answer's status is one of `statuses`. */
export function expectStatus(res: Response, ...statuses: number[]): void {
  if (!statuses.includes(res.status)) fail(statuses.join(' or '), summarize(res));
}

/** What is wrong with an error body per the spec's error format, or undefined when nothing is. */
export function errorBodyProblem(body: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return 'a body that is not JSON';
  }
  const errors = typeof doc === 'object' && doc !== null && 'errors' in doc ? doc.errors : undefined;
  if (!Array.isArray(errors) || errors.length === 0) return 'no non-empty "errors" array';
  for (const e of errors as unknown[]) {
    if (typeof e !== 'object' || e === null) return 'an "errors" entry that is not an object';
    const code = 'code' in e ? e.code : undefined;
    if (typeof code !== 'string' || !/^[A-Z_]+$/.test(code)) return `code ${JSON.stringify(code)} (not uppercase letters and underscores)`;
    if ('message' in e && typeof e.message !== 'string') return `a "message" that is not a string in ${code}`;
  }
  return undefined;
}

/**
 * An error answer: status one of `statuses`, and (except for HEAD, which has no body) a spec-shaped
 * JSON error body with one of `codes` among its codes (any code when `codes` is empty).
 */
export function expectError(res: Response, statuses: readonly number[], codes: readonly string[]): void {
  const want = `${statuses.join(' or ')}${codes.length > 0 ? ` ${codes.join(' or ')}` : ''}`;
  if (!statuses.includes(res.status)) fail(want, summarize(res));
  if (res.method === 'HEAD') return;
  const problem = errorBodyProblem(res.body);
  if (problem !== undefined) fail(`${want} in a {"errors":[{code,message}]} body`, `${summarize(res)}: ${problem}`);
  const got = errorCodes(res) ?? [];
  if (codes.length > 0 && !got.some((c) => codes.includes(c))) fail(want, summarize(res));
}

/** A header's value, which must be present (and match `want` when given: a string is compared exactly). */
export function expectHeader(res: Response, name: string, want?: string | RegExp): string {
  const value = res.header(name);
  const wanted = want === undefined ? `a ${name} header` : `${name}: ${String(want)}`;
  if (value === undefined) fail(wanted, `no ${name} header (${summarize(res)})`);
  if (typeof want === 'string' && value !== want) fail(wanted, `${name}: ${value}`);
  if (want instanceof RegExp && !want.test(value)) fail(wanted, `${name}: ${value}`);
  return value;
}

/** The Content-Type without parameters (which the spec says clients SHOULD ignore). */
export function mediaTypeOf(res: Response): string | undefined {
  return res.header('Content-Type')?.split(';')[0]?.trim();
}

/** The Content-Type, parameters ignored, is `want`. */
export function expectMediaType(res: Response, want: string): void {
  const got = mediaTypeOf(res);
  if (got !== want) fail(`Content-Type: ${want}`, got === undefined ? 'no Content-Type' : `Content-Type: ${got}`);
}

/** The body is exactly `bytes`. */
export function expectBody(res: Response, bytes: Buffer): void {
  if (!res.body.equals(bytes)) {
    fail(`a body of ${bytes.length} bytes (${digestOf(bytes)})`, `${res.body.length} bytes (${digestOf(res.body)})`);
  }
}

/** The body is empty (HEAD, 202, 204). */
export function expectNoBody(res: Response): void {
  if (res.body.length !== 0) fail('no body', `${res.body.length} bytes`);
}

/** The body parsed as JSON. */
export function jsonBody(res: Response): unknown {
  try {
    return JSON.parse(res.body.toString('utf8')) as unknown;
  } catch {
    return fail('a JSON body', summarize(res));
  }
}

/** `actual` equals `expected`, compared as JSON; `what` names the value in the FAIL line. */
export function expectEqual(what: string, expected: unknown, actual: unknown): void {
  const e = JSON.stringify(expected);
  const a = JSON.stringify(actual);
  if (e !== a) fail(`${what} ${e}`, `${what} ${a}`);
}
